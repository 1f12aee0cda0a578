// The TLSRPT record parser, following RFC 8460 section 3 literally:
//   tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//   field-delim      = *WSP ";" *WSP
//   tlsrpt-field     = tlsrpt-rua / tlsrpt-extension
//   tlsrpt-version   = %s"v=TLSRPTv1"
//   tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//   tlsrpt-uri       = URI   ; "," "!" ";" within a URI are %-encoded
//   tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
//   tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//   tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
// The record comes from anyone's DNS and its mailto: address ends up in a message header and
// in sendmail's argv: a mailto: is accepted only as one plain addr-spec (dot-atom local part,
// a host name), after %-decoding, with no hfields, so that nothing a record says can add a
// header, a recipient or a command-line option. What is not usable is skipped with a warning;
// a record that is malformed as a whole, or leaves nowhere to send, is an error.
#include "common/tlsrpt/record.hpp"

#include <cstddef>

#include "common/sts/domain.hpp"

namespace mtasts::tlsrpt {
namespace {

constexpr std::string_view kVersion = "v=TLSRPTv1";
constexpr std::size_t kMaxRecordLength = 32768;  // a real record is well under 1 KiB
constexpr std::size_t kMaxUriLength = 1024;
constexpr std::size_t kMaxRua = 10;               // URIs used; more are skipped with a warning
constexpr std::size_t kMaxWarnings = 12;          // warnings kept (the rest are counted)
constexpr std::size_t kMaxLocalPart = 64;         // RFC 5321 section 4.5.3.1.1
constexpr std::size_t kMaxAddress = 254;

bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }
bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_alnum(char c) noexcept { return is_alpha(c) || is_digit(c); }
bool is_ext_name_char(char c) noexcept { return is_alnum(c) || c == '_' || c == '-' || c == '.'; }
bool is_ext_value_char(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u <= 0x7e && c != ';' && c != '=';
}
// RFC 5322 atext: what a dot-atom local part may hold. No quotes, brackets, commas, angle
// brackets, colons, semicolons, backslashes, spaces or controls: nothing that means
// something in a header or an address list.
bool is_atext(char c) noexcept {
  if (is_alnum(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}
// RFC 3986 characters a URI may hold (unreserved, reserved, "%").
bool is_uri_char(char c) noexcept {
  if (is_alnum(c)) return true;
  switch (c) {
    case '-': case '.': case '_': case '~': case ':': case '/': case '?': case '#': case '[':
    case ']': case '@': case '!': case '$': case '&': case '\'': case '(': case ')': case '*':
    case '+': case ',': case ';': case '=': case '%':
      return true;
    default:
      return false;
  }
}

std::size_t skip_wsp(std::string_view s, std::size_t i) noexcept {
  while (i < s.size() && is_wsp(s[i])) ++i;
  return i;
}

std::string at(std::size_t pos) { return " at offset " + std::to_string(pos); }

bool starts_with_nocase(std::string_view s, std::string_view prefix) noexcept {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

// A record is a TLSRPT record when it begins with "v=TLSRPTv1" followed by the end, or by
// *WSP ";" (section 3: "records that do not begin with v=TLSRPTv1; are discarded").
bool is_tlsrpt_record(std::string_view rec) noexcept {
  if (!rec.starts_with(kVersion)) return false;
  std::size_t i = skip_wsp(rec, kVersion.size());
  return i == rec.size() || rec[i] == ';';
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %-decodes `s`; false on a malformed escape.
bool percent_decode(std::string_view s, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = hex_value(s[i + 1]);
    const int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// A mailto: URI (RFC 6068) narrowed to what a report may be sent to: one addr-spec, a
// dot-atom local part and a host name, no hfields. The address returned is what goes into
// the To: header and sendmail's argv.
bool mailto_target(std::string_view uri, std::string* target, std::string* why) {
  std::string_view rest = uri.substr(7);  // after "mailto:"
  if (rest.find('?') != std::string_view::npos) {
    *why = "mailto: with header fields (\"?\") is not used";
    return false;
  }
  std::string addr;
  if (!percent_decode(rest, &addr)) {
    *why = "malformed %-escape in mailto:";
    return false;
  }
  if (addr.size() > kMaxAddress) {
    *why = "mailto: address longer than " + std::to_string(kMaxAddress) + " octets";
    return false;
  }
  const std::size_t atsign = addr.rfind('@');
  if (atsign == std::string::npos || atsign == 0 || atsign + 1 == addr.size()) {
    *why = "mailto: is not one local-part@domain address";
    return false;
  }
  const std::string_view local = std::string_view(addr).substr(0, atsign);
  const std::string_view host = std::string_view(addr).substr(atsign + 1);
  if (local.size() > kMaxLocalPart) {
    *why = "mailto: local part longer than 64 octets";
    return false;
  }
  // dot-atom: atext runs separated by single dots, none at either end. Every character that
  // could end a header, start another address or a comment, or reach a shell is refused
  // here (CR, LF, NUL, ",", "<", ">", quotes, spaces, ...).
  bool prev_dot = true;
  for (char c : local) {
    if (c == '.') {
      if (prev_dot) {
        *why = "mailto: local part is not a dot-atom";
        return false;
      }
      prev_dot = true;
      continue;
    }
    if (!is_atext(c)) {
      *why = "mailto: address holds a character that is not allowed in a report address";
      return false;
    }
    prev_dot = false;
  }
  if (prev_dot) {
    *why = "mailto: local part is not a dot-atom";
    return false;
  }
  if (local.front() == '-') {
    // Allowed by RFC 5322, but an argument that looks like an option to every sendmail.
    *why = "mailto: local part begins with \"-\"";
    return false;
  }
  for (char c : host) {
    // Domain::parse accepts U-labels; a host here must already be ASCII LDH (an IDN is
    // published %-encoded as its A-label form) and never an address literal.
    if (!is_alnum(c) && c != '-' && c != '.') {
      *why = "mailto: domain is not a host name";
      return false;
    }
  }
  DomainParse d = Domain::parse(host);
  if (!d.domain) {
    *why = "mailto: domain is not a host name: " + d.error;
    return false;
  }
  *target = std::string(local) + "@" + d.domain->str();
  return true;
}

// An https: URI: an authority, URI characters only (no spaces, controls, quotes or angle
// brackets), no user information.
bool https_target(std::string_view uri, std::string* target, std::string* why) {
  std::string_view rest = uri.substr(8);  // after "https://"
  const std::size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (authority.empty()) {
    *why = "https: URI without a host";
    return false;
  }
  if (authority.find('@') != std::string_view::npos) {
    *why = "https: URI with user information is not used";
    return false;
  }
  if (rest.find('#') != std::string_view::npos) {
    *why = "https: URI with a fragment is not used";
    return false;
  }
  *target = "https://" + std::string(rest);
  return true;
}

}  // namespace

RecordParse parse_record(std::string_view txt) {
  RecordParse p;
  if (txt.size() > kMaxRecordLength) {
    p.error = "record longer than " + std::to_string(kMaxRecordLength) + " octets";
    return p;
  }
  if (!is_tlsrpt_record(txt)) {
    p.error = "record does not begin with \"v=TLSRPTv1\"";
    return p;
  }
  for (std::size_t k = 0; k < txt.size(); ++k) {
    const auto c = static_cast<unsigned char>(txt[k]);
    if (c >= 0x80 || (c < 0x20 && c != '\t') || c == 0x7f) {
      p.error = "control or non-ASCII octet" + at(k);
      return p;
    }
  }

  Record record;
  bool have_rua = false;
  std::size_t skipped_warnings = 0;
  std::size_t over_cap = 0;
  auto warn = [&](std::string w) {
    if (p.warnings.size() < kMaxWarnings) p.warnings.push_back(std::move(w));
    else ++skipped_warnings;
  };

  std::size_t i = kVersion.size();
  for (;;) {
    if (i == txt.size()) break;
    std::size_t j = skip_wsp(txt, i);
    if (j == txt.size()) break;
    if (txt[j] != ';') {
      p.error = "expected \";\" between fields" + at(j);
      return p;
    }
    i = skip_wsp(txt, j + 1);
    if (i == txt.size()) break;  // trailing delimiter

    const std::size_t name_start = i;
    if (!is_alnum(txt[i])) {
      p.error = "field name must begin with a letter or digit" + at(i);
      return p;
    }
    while (i < txt.size() && is_ext_name_char(txt[i])) ++i;
    const std::string_view name = txt.substr(name_start, i - name_start);
    if (name.size() > 32) {
      p.error = "field name longer than 32 characters" + at(name_start);
      return p;
    }
    if (i == txt.size() || txt[i] != '=') {
      p.error = "expected \"=\" after field name" + at(i);
      return p;
    }
    ++i;

    if (name != "rua") {  // case-sensitive: %s"rua="; anything else is an extension
      const std::size_t value_start = i;
      while (i < txt.size() && is_ext_value_char(txt[i])) ++i;
      if (i == value_start) {
        p.error = "field has an empty value" + at(value_start);
        return p;
      }
      continue;
    }

    // rua: URIs separated by *WSP "," *WSP, up to the next ";" (or the end).
    const bool first_rua = !have_rua;
    if (have_rua) warn("repeated rua field ignored (the first one counts)");
    have_rua = true;
    std::size_t uri_index = 0;
    for (;;) {
      const std::size_t uri_start = i;
      while (i < txt.size() && txt[i] != ',' && txt[i] != ';' && !is_wsp(txt[i])) ++i;
      const std::string_view uri = txt.substr(uri_start, i - uri_start);
      if (uri.empty()) {
        p.error = "empty URI in rua" + at(uri_start);
        return p;
      }
      ++uri_index;
      if (first_rua) {
        const std::string which = "rua URI " + std::to_string(uri_index);
        std::string why;
        ReportUri r;
        bool ok = true;
        if (uri.size() > kMaxUriLength) {
          why = "longer than " + std::to_string(kMaxUriLength) + " octets";
          ok = false;
        }
        for (char c : uri) {
          if (ok && !is_uri_char(c)) {
            why = "holds a character that is not allowed in a URI";
            ok = false;
          }
        }
        if (ok) {
          if (starts_with_nocase(uri, "mailto:")) {
            r.scheme = ReportUri::Scheme::mailto;
            ok = mailto_target(uri, &r.target, &why);
          } else if (starts_with_nocase(uri, "https://")) {
            r.scheme = ReportUri::Scheme::https;
            ok = https_target(uri, &r.target, &why);
          } else {
            why = uri.find(':') == std::string_view::npos ? "has no scheme"
                                                         : "scheme is neither mailto: nor https:";
            ok = false;
          }
        }
        if (!ok) {
          warn(which + " skipped: " + why);
          ++p.skipped;
        } else if (record.rua.size() >= kMaxRua) {
          ++over_cap;
          ++p.skipped;
        } else {
          r.uri = std::string(uri);
          bool dup = false;
          for (const auto& have : record.rua) dup = dup || have.target == r.target;
          if (dup) {
            warn(which + " skipped: the same address twice");
            ++p.skipped;
          } else {
            record.rua.push_back(std::move(r));
          }
        }
      }
      const std::size_t k = skip_wsp(txt, i);
      if (k < txt.size() && txt[k] == ',') {
        i = skip_wsp(txt, k + 1);
        continue;
      }
      break;
    }
  }
  if (over_cap > 0)
    warn(std::to_string(over_cap) + " more rua URIs skipped (at most " + std::to_string(kMaxRua) + " are used)");
  if (skipped_warnings > 0) p.warnings.push_back(std::to_string(skipped_warnings) + " more warnings");
  if (!have_rua) {
    p.error = "required field rua is missing";
    return p;
  }
  if (record.rua.empty()) {
    p.error = "no usable rua URI (mailto: or https:)";
    return p;
  }
  p.record = std::move(record);
  return p;
}

RecordParse select_record(const std::vector<std::string>& txts) {
  const std::string* found = nullptr;
  std::size_t count = 0;
  for (const auto& t : txts) {
    if (is_tlsrpt_record(t)) {
      ++count;
      if (found == nullptr) found = &t;
    }
  }
  if (count == 0) {
    RecordParse p;
    p.error = "no TXT record begins with \"v=TLSRPTv1\"";
    return p;
  }
  if (count > 1) {
    RecordParse p;
    p.found = true;
    p.error = std::to_string(count) + " TXT records begin with \"v=TLSRPTv1\"; exactly one is allowed";
    return p;
  }
  RecordParse p = parse_record(*found);
  p.found = true;
  return p;
}

}  // namespace mtasts::tlsrpt
