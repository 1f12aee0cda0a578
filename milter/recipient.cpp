// Envelope recipient parsing; see recipient.hpp. Only the domain matters here, so the local
// part is skipped with just enough grammar (RFC 5321 section 4.1.2) to find the '@' that ends
// it: a quoted string may itself contain '@' and escaped quotes.
#include "milter/recipient.hpp"

namespace mtasts::milter {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

RecipientDomain no_domain(std::string reason) {
  RecipientDomain r;
  r.reason = std::move(reason);
  return r;
}

}  // namespace

RecipientDomain recipient_domain(std::string_view text) {
  std::string_view s = trim(text);
  const bool open = !s.empty() && s.front() == '<';
  const bool close = !s.empty() && s.back() == '>';
  if (open != close || (open && s.size() < 2)) return no_domain("unbalanced angle brackets");
  if (open) s = trim(s.substr(1, s.size() - 2));
  if (s.empty()) return no_domain("null address");

  // A source route ("@relay1,@relay2:user@domain") names hosts to pass through; the mail is
  // for the final mailbox, whose domain is the policy domain. Domains cannot contain ':'.
  if (s.front() == '@') {
    const auto colon = s.find(':');
    if (colon == std::string_view::npos) return no_domain("source route without mailbox");
    s = s.substr(colon + 1);
  }

  std::size_t at = std::string_view::npos;
  if (!s.empty() && s.front() == '"') {
    std::size_t i = 1;
    for (; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;  // quoted-pair: the next octet is literal, even '"'
      } else if (s[i] == '"') {
        break;
      }
    }
    if (i >= s.size()) return no_domain("unterminated quoted local part");
    if (i + 1 >= s.size() || s[i + 1] != '@') return no_domain("no domain part");
    at = i + 1;
  } else {
    at = s.find('@');
    if (at == std::string_view::npos) return no_domain("no domain part");
  }

  const std::string_view dom = s.substr(at + 1);
  if (dom.empty()) return no_domain("empty domain part");
  if (dom.front() == '[') {
    RecipientDomain r;
    r.address_literal = true;
    r.reason = dom.back() == ']' ? "address literal" : "malformed address literal";
    return r;
  }
  DomainParse p = Domain::parse(dom);
  if (p.domain) {
    RecipientDomain r;
    r.domain = std::move(p.domain);
    return r;
  }
  RecipientDomain r;
  r.address_literal = p.address_literal;
  r.reason = p.address_literal ? "address literal" : "invalid domain: " + p.error;
  return r;
}

}  // namespace mtasts::milter
