// libFuzzer target for the milter's header-field checks: the header fields of a message
// (TLS-Required, Content-Type, forged X-MTA-STS) and the plan at end of message. Never
// crashes; whatever the incoming fields, every forged field is removed, and every field the
// milter adds is printable ASCII apart from its own folding (LF TAB).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "milter/decision.hpp"
#include "tests/fuzz/fuzz_check.hpp"

// decide() names the lookup source; the lookup itself (Redis) is not part of this target.
const char* mtasts::to_string(mtasts::LookupSource) noexcept { return "fuzz"; }

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Input: fields separated by NUL, each "name:value"; the first field is also the policy
  // id and the second a pattern of a tag decision, so that unsafe ids reach the plan too.
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  mtasts::milter::MessageOptions o;
  mtasts::milter::Message m(o);
  int forged = 0;
  std::size_t start = 0;
  int n = 0;
  std::string id = "abc", mx = "mx.example.com";
  while (start <= in.size()) {
    std::size_t end = in.find('\0', start);
    if (end == std::string_view::npos) end = in.size();
    const std::string_view field = in.substr(start, end - start);
    const std::size_t colon = field.find(':');
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = colon == std::string_view::npos ? std::string_view{} : field.substr(colon + 1);
    (void)mtasts::milter::is_tls_required_no(value);
    (void)mtasts::milter::is_tlsrpt_report(value);
    m.header(name, value);
    if (name.size() == 9 && (name[0] | 0x20) == 'x' && (name[1] == '-') && (name[2] | 0x20) == 'm' &&
        (name[3] | 0x20) == 't' && (name[4] | 0x20) == 'a' && name[5] == '-' && (name[6] | 0x20) == 's' &&
        (name[7] | 0x20) == 't' && (name[8] | 0x20) == 's')
      ++forged;
    if (n == 0) id = std::string(value);
    if (n == 1) mx = std::string(value);
    ++n;
    start = end + 1;
  }
  mtasts::milter::Decision d;
  d.domain = "example.com";
  d.status = mtasts::milter::Status::enforce;
  d.action = mtasts::milter::Action::tag;
  d.policy_id = id;
  d.mx = {mx, "*.example.net"};
  m.accept(d);
  const mtasts::milter::HeaderPlan p = m.plan();
  FUZZ_CHECK(static_cast<int>(p.delete_indices.size()) == forged);
  for (const auto& f : p.add) {
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      const auto c = static_cast<unsigned char>(f.value[i]);
      if (c == '\n') {
        FUZZ_CHECK(i + 1 < f.value.size() && f.value[i + 1] == '\t');
        continue;
      }
      FUZZ_CHECK(c == '\t' ? i > 0 && f.value[i - 1] == '\n' : c >= 0x20 && c < 0x7f);
    }
  }
  (void)m.log_fields(p);
  return 0;
}
