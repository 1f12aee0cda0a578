// The [reportd] section: defaults as documented, values derived from others (submitter,
// sender-address), what sending needs, and bad values rejected with the file and line.
#include <gtest/gtest.h>

#include "common/daemon/config.hpp"
#include "tests/support/process.hpp"

namespace mtasts {
namespace {

using namespace std::chrono;
using test::TempDir;
using test::write_file;

class ReportdConfig_ : public ::testing::Test {
 protected:
  std::string file(const std::string& content) {
    const std::string p = (dir_ / ("c" + std::to_string(n_++) + ".conf")).string();
    write_file(p, content);
    return p;
  }
  Config load(std::vector<std::string> args) {
    std::vector<const char*> argv{"mta-sts-reportd"};
    for (const auto& a : args) argv.push_back(a.c_str());
    return load_config(Program::reportd, static_cast<int>(argv.size()), argv.data(), nullptr);
  }
  std::string error_of(const std::vector<std::string>& args) {
    try {
      load(args);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "<no error>";
  }
  TempDir dir_{"reportd-config-test"};
  int n_ = 0;
};

TEST_F(ReportdConfig_, DefaultsCollectAndNeverSend) {
  const Config c = load({"-c", file("[reportd]\n")});
  const ReportdConfig& r = c.reportd;
  EXPECT_TRUE(r.sources.empty());
  EXPECT_FALSE(r.send);
  EXPECT_EQ(r.state_directory, "/var/lib/mta-sts-reportd");
  EXPECT_EQ(r.flush_interval, seconds{30});
  EXPECT_EQ(r.sendmail_command, "/usr/sbin/sendmail -i");
  EXPECT_EQ(r.keep, seconds{8 * 86400});
  EXPECT_EQ(r.send_delay_max, seconds{3600});
  EXPECT_EQ(r.max_failure_details, 1000u);
  EXPECT_TRUE(r.submitter.empty());
  EXPECT_TRUE(r.sender_address.empty());
}

TEST_F(ReportdConfig_, EveryOptionFromTheFile) {
  const Config c = load({"-c", file("[reportd]\n"
                                    "source = postfix-log:/var/log/mail.log\n"
                                    "source = tlsrpt-socket:/run/mta-sts/tlsrpt.sock\n"
                                    "source = journal\n"
                                    "state-directory = /srv/rpt\n"
                                    "host-id = mx7\n"
                                    "sending-mta-ip = 2001:db8::25\n"
                                    "flush-interval = 5s\n"
                                    "send = yes\n"
                                    "organization-name = Example Mail Ltd\n"
                                    "contact-info = mailto:postmaster@example.net\n"
                                    "only-failures = yes\n"
                                    "exclude = partner.example\n"
                                    "exclude = Other.Example.\n"
                                    "send-delay-max = 30m\n"
                                    "https-timeout = 20s\n"
                                    "resolver = 127.0.0.53\n"
                                    "keep = 10d\n"
                                    "max-failure-details = 50\n")});
  const ReportdConfig& r = c.reportd;
  EXPECT_EQ(r.sources, (std::vector<std::string>{"postfix-log:/var/log/mail.log",
                                                 "tlsrpt-socket:/run/mta-sts/tlsrpt.sock", "journal"}));
  EXPECT_EQ(r.state_directory, "/srv/rpt");
  EXPECT_EQ(r.host_id, "mx7");
  EXPECT_EQ(r.sending_mta_ip, "2001:db8::25");
  EXPECT_EQ(r.flush_interval, seconds{5});
  EXPECT_TRUE(r.send);
  EXPECT_TRUE(r.only_failures);
  EXPECT_EQ(r.exclude, (std::vector<std::string>{"partner.example", "other.example"}));
  EXPECT_EQ(r.send_delay_max, seconds{1800});
  EXPECT_EQ(r.https_timeout, seconds{20});
  EXPECT_EQ(r.resolvers.size(), 1u);
  EXPECT_EQ(r.keep, seconds{10 * 86400});
  EXPECT_EQ(r.max_failure_details, 50u);
  // Derived: the submitter is contact-info's domain, the sender an address there.
  EXPECT_EQ(r.submitter, "example.net");
  EXPECT_EQ(r.sender_address, "noreply-tlsrpt@example.net");
}

TEST_F(ReportdConfig_, SendingNeedsWhoSends) {
  EXPECT_NE(error_of({"-c", file("[reportd]\nsend = yes\n")}).find("needs organization-name and contact-info"),
            std::string::npos);
  EXPECT_NE(error_of({"-c", file("[reportd]\nsend = yes\norganization-name = X\ncontact-info = +1 555 0100\n")})
                .find("needs submitter"),
            std::string::npos);
  const Config c = load({"-c", file("[reportd]\nsend = yes\norganization-name = X\ncontact-info = +1 555 0100\n"
                                    "submitter = mail.example.org\nsender-address = tlsrpt@example.org\n")});
  EXPECT_EQ(c.reportd.submitter, "mail.example.org");
  EXPECT_EQ(c.reportd.sender_address, "tlsrpt@example.org");
}

TEST_F(ReportdConfig_, BadValuesNameTheLine) {
  const struct {
    const char* line;
    const char* says;
  } cases[] = {
      {"source = /var/log/mail.log", "expected postfix-log:/PATH"},
      {"source = postfix-log:mail.log", "absolute path"},
      {"state-directory = var/lib/x", "absolute path"},
      {"sending-mta-ip = mx.example.net", "not an IPv4 or IPv6 address"},
      {"sender-address = a b@example.net", "not a plain address"},
      {"sender-address = <a@b.example>", "not a plain address"},
      {"sender-address = nobody", "expected local-part@domain"},
      {"sendmail-command = sendmail -i", "absolute path"},
      {"keep = 1d", "must be between"},
      {"exclude = not a domain", ""},
  };
  for (const auto& k : cases) {
    const std::string e = error_of({"-c", file(std::string("[reportd]\n") + k.line + "\n")});
    EXPECT_NE(e.find(":2: [reportd]"), std::string::npos) << k.line << " -> " << e;
    EXPECT_NE(e.find(k.says), std::string::npos) << k.line << " -> " << e;
  }
}

TEST_F(ReportdConfig_, NoHeaderFieldCanBeSmuggledIntoTheSenderAddress) {
  for (const char* v : {"a@b.example\r\nBcc: x@evil.example", "a@b.example\nBcc: x@evil.example"}) {
    const std::string e = error_of({"--sender-address", v});
    EXPECT_NE(e.find("--sender-address: bad value"), std::string::npos) << e;
  }
}

TEST_F(ReportdConfig_, TheCommandLineOverridesAndListsReplace) {
  const Config c = load({"-c", file("[reportd]\nsource = postfix-log:/var/log/mail.log\n"),
                         "--source", "sendmail-log:/var/log/maillog", "--send-delay-max", "0"});
  EXPECT_EQ(c.reportd.sources, (std::vector<std::string>{"sendmail-log:/var/log/maillog"}));
  EXPECT_EQ(c.reportd.send_delay_max, seconds{0});
}

}  // namespace
}  // namespace mtasts
