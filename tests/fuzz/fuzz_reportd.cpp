// mta-sts-reportd's collector input: MTA log lines (Postfix and Sendmail parsers, with their
// saved state read back), libtlsrpt datagrams and the JSON reader under them. The first byte
// picks the target; the rest is the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/util/json_parse.hpp"
#include "reportd/collect/datagram.hpp"
#include "reportd/collect/postfix.hpp"
#include "reportd/collect/sendmail.hpp"

namespace {

template <class Parser>
void lines(std::string_view text) {
  mtasts::reportd::ParserOptions o;
  o.sender_address = "reports@example.net";
  Parser p(o);
  std::vector<mtasts::reportd::Outcome> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    p.feed(text.substr(0, nl), out);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  // The saved state is read back as untrusted text too.
  Parser q(o);
  q.restore_state(p.save_state());
  q.restore_state(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: lines<mtasts::reportd::PostfixParser>(in); break;
    case 1: lines<mtasts::reportd::SendmailParser>(in); break;
    case 2: {
      std::vector<mtasts::reportd::Outcome> out;
      std::string error;
      mtasts::reportd::parse_datagram(in, 0, "", out, &error);
      break;
    }
    case 3: {
      std::string error;
      (void)mtasts::json::parse(in, &error);
      break;
    }
    case 4: {
      mtasts::reportd::ParserOptions o;
      mtasts::reportd::PostfixParser p(o);
      p.restore_state(std::string("postfix-state 1\n") + std::string(in));
      std::vector<mtasts::reportd::Outcome> out;
      p.feed("Dec 08 00:20:40 mta postfix/smtp[1]: AAAAA11111: to=<x@a.test>, relay=mx.a.test[10.0.0.1]:25, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent (ok)", out);
      break;
    }
  }
  return 0;
}
