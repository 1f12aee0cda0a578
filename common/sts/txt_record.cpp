// The `_mta-sts` TXT RRset parser, following the ABNF of RFC 8461 section 3.1 literally:
//   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//   sts-field-delim = *WSP ";" *WSP        WSP = SP / HTAB
//   sts-version     = %s"v=STSv1"
//   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//   sts-extension   = sts-ext-name "=" sts-ext-value
//   sts-ext-name    = (ALPHA / DIGIT) 0*31(ALPHA / DIGIT / "_" / "-" / ".")
//   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
#include "common/sts/txt_record.hpp"

namespace mtasts {
namespace {

constexpr std::string_view kVersion = "v=STSv1";

bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }
bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_ext_name_char(char c) noexcept { return is_alnum(c) || c == '_' || c == '-' || c == '.'; }
bool is_ext_value_char(char c) noexcept {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x21 && u <= 0x7e && c != ';' && c != '=';
}

std::size_t skip_wsp(std::string_view s, std::size_t i) noexcept {
  while (i < s.size() && is_wsp(s[i])) ++i;
  return i;
}

// A record is an STS record when it begins with "v=STSv1" *WSP ";" (section 3.1).
bool is_sts_record(std::string_view rec) noexcept {
  if (!rec.starts_with(kVersion)) return false;
  std::size_t i = skip_wsp(rec, kVersion.size());
  return i < rec.size() && rec[i] == ';';
}

// Shows where parsing stopped without copying untrusted bytes verbatim into messages.
std::string at(std::size_t pos) { return " at offset " + std::to_string(pos); }

struct Parsed {
  std::string id;
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

Parsed parse_one(std::string_view rec) {
  Parsed p;
  for (std::size_t k = 0; k < rec.size(); ++k) {
    auto c = static_cast<unsigned char>(rec[k]);
    if (c >= 0x80) {
      p.errors.push_back("non-ASCII octet" + at(k));
      return p;
    }
  }
  bool have_id = false;
  std::size_t i = kVersion.size();
  for (;;) {
    // Here we stand right after the version or a field: a delimiter must follow, or the end.
    if (i == rec.size()) break;
    std::size_t j = skip_wsp(rec, i);
    if (j == rec.size() || rec[j] != ';') {
      p.errors.push_back("expected \";\" between fields" + at(j));
      return p;
    }
    i = skip_wsp(rec, j + 1);
    if (i == rec.size()) break;  // trailing delimiter

    std::size_t name_start = i;
    if (!is_alnum(rec[i])) {
      p.errors.push_back("field name must begin with a letter or digit" + at(i));
      return p;
    }
    while (i < rec.size() && is_ext_name_char(rec[i])) ++i;
    std::string_view name = rec.substr(name_start, i - name_start);
    if (name.size() > 32) {
      p.errors.push_back("field name longer than 32 characters" + at(name_start));
      return p;
    }
    if (i == rec.size() || rec[i] != '=') {
      p.errors.push_back("expected \"=\" after field name" + at(i));
      return p;
    }
    ++i;
    std::size_t value_start = i;
    while (i < rec.size() && is_ext_value_char(rec[i])) ++i;
    std::string_view value = rec.substr(value_start, i - value_start);
    if (value.empty()) {
      p.errors.push_back("field \"" + std::string(name) + "\" has an empty value" + at(value_start));
      return p;
    }

    if (name == "id") {  // case-sensitive: %s"id="
      if (have_id) {
        p.warnings.push_back("repeated id field ignored (the first one counts)");
        continue;
      }
      bool ok = value.size() <= 32;
      for (char c : value) ok = ok && is_alnum(c);
      if (!ok) {
        p.errors.push_back("id must be 1 to 32 letters or digits" + at(value_start));
        return p;
      }
      p.id = std::string(value);
      have_id = true;
    }
    // Any other well-formed name=value is an extension: allowed and ignored.
  }
  if (!have_id) p.errors.push_back("required field id is missing");
  return p;
}

}  // namespace

TxtResult parse_sts_txt(const std::vector<std::vector<std::string>>& records) {
  std::vector<std::string> joined;
  joined.reserve(records.size());
  for (const auto& strings : records) {
    std::string r;
    for (const auto& s : strings) r += s;
    joined.push_back(std::move(r));
  }
  return parse_sts_txt_records(joined);
}

TxtResult parse_sts_txt_records(const std::vector<std::string>& records) {
  TxtResult result;
  std::vector<std::size_t> sts;
  for (std::size_t n = 0; n < records.size(); ++n) {
    if (is_sts_record(records[n])) {
      sts.push_back(n);
    } else {
      result.warnings.push_back("TXT record " + std::to_string(n + 1) +
                                " ignored: it does not begin with \"v=STSv1;\"");
    }
  }
  if (sts.empty()) {
    result.status = TxtStatus::no_policy;
    return result;
  }
  if (sts.size() > 1) {
    result.status = TxtStatus::invalid;
    result.errors.push_back(std::to_string(sts.size()) +
                            " TXT records begin with \"v=STSv1;\"; exactly one is allowed");
    return result;
  }
  Parsed p = parse_one(records[sts.front()]);
  for (auto& w : p.warnings) result.warnings.push_back(std::move(w));
  if (!p.errors.empty()) {
    result.status = TxtStatus::invalid;
    result.errors = std::move(p.errors);
    return result;
  }
  result.status = TxtStatus::policy;
  result.id = std::move(p.id);
  return result;
}

const char* to_string(TxtStatus s) noexcept {
  switch (s) {
    case TxtStatus::policy: return "policy";
    case TxtStatus::no_policy: return "no-policy";
    case TxtStatus::invalid: return "invalid";
  }
  return "unknown";
}

}  // namespace mtasts
