// Domain name normalization: the single place where untrusted text becomes a Domain.
// Everything here returns errors as values; nothing throws on bad input.
#include "common/sts/domain.hpp"

#include <arpa/inet.h>
#include <idn2.h>

#include <cstdint>
#include <cstring>
#include <memory>

namespace mtasts {
namespace {

constexpr std::size_t kMaxName = 253;
constexpr std::size_t kMaxLabel = 63;
// A U-label form can be several times longer than the A-label it maps to (fullwidth letters
// are three octets each); anything longer than this cannot fit in 253 octets afterwards.
constexpr std::size_t kMaxInput = 1024;

bool is_ascii_alnum(unsigned char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

struct IdnFree {
  void operator()(uint8_t* p) const noexcept { idn2_free(p); }
};

// One non-ASCII label (maybe holding Unicode full stops that TR46 maps to '.') to A-label(s).
bool label_to_alabel(const std::string& ulabel, std::string& out, std::string& error) {
  const auto* in = reinterpret_cast<const uint8_t*>(ulabel.c_str());
  uint8_t* raw = nullptr;
  int rc = idn2_lookup_u8(in, &raw, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) {
    // Names registered under IDNA2003 rules (some symbols, sharp s) still resolve through
    // transitional processing; try it before declaring the name unusable.
    uint8_t* raw2 = nullptr;
    int rc2 = idn2_lookup_u8(in, &raw2, IDN2_NFC_INPUT | IDN2_TRANSITIONAL);
    if (rc2 != IDN2_OK) {
      error = std::string("invalid internationalized label: ") + idn2_strerror(rc);
      return false;
    }
    raw = raw2;
  }
  std::unique_ptr<uint8_t, IdnFree> owned(raw);
  out.append(reinterpret_cast<const char*>(owned.get()));
  return true;
}

// Checks the RFC 1123 host name rules on an ASCII, lowercase, dot-free-at-end name.
bool check_ldh(std::string_view name, std::string& error) {
  if (name.empty()) {
    error = "empty name";
    return false;
  }
  if (name.size() > kMaxName) {
    error = "name longer than 253 octets";
    return false;
  }
  std::size_t labels = 0;
  std::size_t start = 0;
  std::string_view last;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    std::string_view label = name.substr(start, dot - start);
    ++labels;
    if (label.empty()) {
      error = "empty label";
      return false;
    }
    if (label.size() > kMaxLabel) {
      error = "label longer than 63 octets";
      return false;
    }
    for (unsigned char c : label) {
      if (!is_ascii_alnum(c) && c != '-') {
        error = c == '_' ? "underscore is not allowed in a host name"
                         : "character not allowed in a host name (letters, digits, hyphen only)";
        return false;
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      error = "label begins or ends with a hyphen";
      return false;
    }
    last = label;
    start = dot + 1;
  }
  if (labels < 2) {
    error = "name has a single label";
    return false;
  }
  bool numeric_tld = true;
  for (unsigned char c : last) numeric_tld = numeric_tld && c >= '0' && c <= '9';
  if (numeric_tld) {
    // RFC 3696 section 2: keeps "1.2.3" and similar IP-like text from being taken as a name.
    error = "top-level label is all-numeric";
    return false;
  }
  return true;
}

}  // namespace

bool is_address_literal(std::string_view text) noexcept {
  return text.size() >= 2 && text.front() == '[' && text.back() == ']';
}

bool is_ip_address(std::string_view text) noexcept {
  char buf[64];
  if (text.empty() || text.size() >= sizeof buf) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  if (std::memchr(buf, '\0', text.size()) != nullptr) return false;
  unsigned char addr[16];
  return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

bool is_utf8(std::string_view v) noexcept {
  std::size_t i = 0;
  while (i < v.size()) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1fu; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0fu; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07u; }
    else return false;
    if (i + n >= v.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(v[i + k]);
      if ((cc & 0xc0u) != 0x80u) return false;
      cp = (cp << 6) | (cc & 0x3fu);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

DomainParse Domain::parse(std::string_view text) {
  DomainParse r;
  if (text.empty()) {
    r.error = "empty name";
    return r;
  }
  if (is_address_literal(text)) {
    r.address_literal = true;
    r.error = "address literal has no MTA-STS policy";
    return r;
  }
  if (text.size() > kMaxInput) {
    r.error = "name too long";
    return r;
  }
  std::string_view body = text;
  if (body.back() == '.') body.remove_suffix(1);
  if (is_ip_address(body)) {
    r.address_literal = true;
    r.error = "IP address has no MTA-STS policy";
    return r;
  }

  bool ascii = true;
  for (unsigned char c : body) {
    if (c <= 0x20 || c == 0x7f) {
      r.error = "name contains a space or control character";
      return r;
    }
    if (c >= 0x80) ascii = false;
  }

  std::string name;
  name.reserve(body.size());
  if (ascii) {
    for (char c : body) name.push_back(ascii_lower(c));
  } else {
    // Label by label, so that ASCII labels are kept as the sender wrote them (libidn2 rejects
    // some names that DNS happily serves, such as "r3--sn-abc").
    std::size_t start = 0;
    while (start <= body.size()) {
      std::size_t dot = body.find('.', start);
      if (dot == std::string_view::npos) dot = body.size();
      std::string_view label = body.substr(start, dot - start);
      bool label_ascii = true;
      for (unsigned char c : label) label_ascii = label_ascii && c < 0x80;
      if (start != 0) name.push_back('.');
      if (label_ascii) {
        for (char c : label) name.push_back(ascii_lower(c));
      } else if (!label_to_alabel(std::string(label), name, r.error)) {
        return r;
      }
      start = dot + 1;
    }
    // A Unicode full stop at the very end maps to a trailing '.': treat it like an ASCII one.
    if (!name.empty() && name.back() == '.' && text.back() != '.') name.pop_back();
  }

  if (!check_ldh(name, r.error)) return r;
  r.domain = Domain(std::move(name));
  return r;
}

bool Domain::is_subdomain_of(const Domain& other) const noexcept {
  const std::string& a = name_;
  const std::string& b = other.name_;
  if (a.size() == b.size()) return a == b;
  if (a.size() < b.size() + 1) return false;
  return a.compare(a.size() - b.size(), b.size(), b) == 0 && a[a.size() - b.size() - 1] == '.';
}

}  // namespace mtasts
