// The policy file parser (RFC 8461 section 3.2) with the decisions of RFC-NOTES.md. It never
// stops at the first problem: a domain owner running lint should see every error and warning,
// each with its line, in one pass.
#include "common/sts/policy.hpp"

#include "common/sts/domain.hpp"

#include <cstdint>

namespace mtasts {
namespace {

bool is_wsp(char c) noexcept { return c == ' ' || c == '\t'; }
bool is_alnum(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// sts-policy-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
bool valid_key(std::string_view k) noexcept {
  if (k.empty() || k.size() > 32 || !is_alnum(k.front())) return false;
  for (char c : k) {
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.') return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto l = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (l(a[i]) != l(b[i])) return false;
  }
  return true;
}

// The first control character of a value (sts-policy-ext-value excludes them), or -1.
int first_control(std::string_view v) noexcept {
  for (char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return c;
  }
  return -1;
}

// Untrusted text quoted for a diagnostic: printable ASCII kept, the rest as \xNN, cut short.
std::string show(std::string_view v) {
  constexpr std::size_t kMax = 64;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < v.size() && i < kMax; ++i) {
    auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (v.size() > kMax) out += "...";
  out += '"';
  return out;
}

struct Parser {
  PolicyParseResult r;
  std::size_t line = 0;
  std::size_t version_line = 0, mode_line = 0, max_age_line = 0;
  std::optional<Mode> mode;
  std::optional<std::chrono::seconds> max_age;
  bool version_ok = false;
  std::size_t mx_lines = 0;
  std::vector<MxPattern> mx;

  void error(std::string m) { r.errors.push_back({line, std::move(m)}); }
  void warn(std::string m) { r.warnings.push_back({line, std::move(m)}); }

  // First occurrence counts (RFC-NOTES.md); returns false for a repeat.
  bool first(std::size_t& seen, std::string_view key) {
    if (seen != 0) {
      warn("repeated key \"" + std::string(key) + "\" ignored (line " + std::to_string(seen) +
           " counts)");
      return false;
    }
    seen = line;
    return true;
  }

  void field(std::string_view key, std::string_view value) {
    if (key == "version") {
      if (!first(version_line, key)) return;
      if (value == "STSv1") version_ok = true;
      else error("version must be \"STSv1\" (case-sensitive), not " + show(value));
    } else if (key == "mode") {
      if (!first(mode_line, key)) return;
      mode = mode_from_string(value);
      if (!mode) error("mode must be enforce, testing or none (case-sensitive), not " + show(value));
    } else if (key == "max_age") {
      if (!first(max_age_line, key)) return;
      bool digits = !value.empty() && value.size() <= 10;
      for (char c : value) digits = digits && c >= '0' && c <= '9';
      if (!digits) {
        error("max_age must be 1 to 10 digits, not " + show(value));
        return;
      }
      std::int64_t n = 0;
      for (char c : value) n = n * 10 + (c - '0');
      if (n > kMaxAgeLimit.count()) {
        warn("max_age " + std::string(value) + " is above the limit of 31557600 seconds; clamped");
        n = kMaxAgeLimit.count();
      }
      max_age = std::chrono::seconds(n);
    } else if (key == "mx") {
      ++mx_lines;
      std::string why;
      bool dot = false;
      auto p = MxPattern::parse(value, &why, &dot);
      if (!p) {
        warn("mx pattern " + show(value) + " dropped: " + why);
        return;
      }
      if (dot) warn("mx pattern " + show(value) + " has a trailing dot; removed");
      mx.push_back(std::move(*p));
    } else {
      for (std::string_view known : {"version", "mode", "max_age", "mx"}) {
        if (iequals(key, known)) {
          warn("key " + show(key) + " ignored: keys are case-sensitive (did you mean \"" +
               std::string(known) + "\"?)");
          return;
        }
      }
      // Say what is wrong: a domain owner fixes the policy from this text.
      static constexpr char hex[] = "0123456789abcdef";
      if (const int c = first_control(value); c >= 0)
        warn("value of unknown key " + show(key) + " contains a control character (0x" + hex[c >> 4] +
             hex[c & 0xf] + "); ignored");
      else if (!is_utf8(value)) warn("value of unknown key " + show(key) + " is not valid UTF-8 text; ignored");
      else warn("unknown key " + show(key) + " ignored");
    }
  }

  void record(std::string_view text) {
    std::size_t k = 0;
    while (k < text.size() && is_wsp(text[k])) ++k;
    if (k == text.size()) {
      warn("blank line ignored");
      return;
    }
    std::size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
      error("line has no \":\" (expected key: value)");
      return;
    }
    std::string_view key = text.substr(0, colon);
    if (!valid_key(key)) {
      error("invalid key " + show(key) +
            " (a letter or digit, then up to 31 letters, digits, '_', '-', '.'; no spaces)");
      return;
    }
    std::string_view value = text.substr(colon + 1);
    while (!value.empty() && is_wsp(value.front())) value.remove_prefix(1);
    while (!value.empty() && is_wsp(value.back())) value.remove_suffix(1);
    field(key, value);
  }

  void finish() {
    line = 0;
    if (version_line == 0) error("required key \"version\" is missing");
    if (mode_line == 0) error("required key \"mode\" is missing");
    if (max_age_line == 0) error("required key \"max_age\" is missing");
    if (mode && *mode != Mode::none && mx.empty()) {
      error(mx_lines == 0 ? "mx is required unless mode is none"
                          : "no valid mx pattern remains (every mx line was dropped)");
    }
    if (r.errors.empty() && version_ok && mode && max_age) {
      r.policy = Policy{*mode, *max_age, std::move(mx)};
    }
  }
};

}  // namespace

const char* to_string(Mode m) noexcept {
  switch (m) {
    case Mode::enforce: return "enforce";
    case Mode::testing: return "testing";
    case Mode::none: return "none";
  }
  return "unknown";
}

std::optional<Mode> mode_from_string(std::string_view s) noexcept {
  if (s == "enforce") return Mode::enforce;
  if (s == "testing") return Mode::testing;
  if (s == "none") return Mode::none;
  return std::nullopt;
}

bool Policy::mx_matches(std::string_view host) const noexcept {
  for (const auto& p : mx) {
    if (p.matches(host)) return true;
  }
  return false;
}

PolicyParseResult parse_policy(std::string_view text) {
  Parser p;
  if (text.size() > kMaxPolicyBytes) {
    p.error("policy is " + std::to_string(text.size()) + " bytes, more than the limit of 65536");
    return std::move(p.r);
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++p.line;
    std::size_t lf = text.find('\n', pos);
    std::size_t end = lf == std::string_view::npos ? text.size() : lf;
    std::string_view rec = text.substr(pos, end - pos);
    if (lf != std::string_view::npos && !rec.empty() && rec.back() == '\r') rec.remove_suffix(1);
    p.record(rec);
    pos = lf == std::string_view::npos ? text.size() : lf + 1;
  }
  p.finish();
  return std::move(p.r);
}

std::string summarize(const Policy& p) {
  std::string s = "mode=";
  s += to_string(p.mode);
  s += "; max_age=" + std::to_string(p.max_age.count()) + "; mx=";
  for (std::size_t i = 0; i < p.mx.size(); ++i) {
    if (i) s += ',';
    s += p.mx[i].str();
  }
  return s;
}

}  // namespace mtasts
