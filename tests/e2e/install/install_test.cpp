// End to end: the .deb that CPack builds from this tree installs on this machine and gives an
// operator working manuals, binaries, configuration and units; then it is removed and purged.
// Needs root (dpkg). Skipped when an mta-sts package is already installed, so that the test
// never replaces or removes an operator's own installation.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace mtasts::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

bool package_installed() {
  RunResult r = run({"dpkg-query", "-W", "-f=${Status}", "mta-sts"}, 30s);
  return r.exit_code == 0 && r.out.find("install ok installed") != std::string::npos;
}

class InstallDeb : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "installing a .deb needs root";
    if (package_installed()) GTEST_SKIP() << "an mta-sts package is already installed; not touching it";
  }
  void TearDown() override {
    // Whatever happened above, leave the machine as it was.
    if (installed_) {
      RunResult r = run({"dpkg", "--purge", "mta-sts"}, 120s);
      EXPECT_EQ(r.exit_code, 0) << describe(r);
    }
  }
  bool installed_ = false;
};

TEST_F(InstallDeb, PackageInstallsWorksAndRemoves) {
  // ---- build the package from this build tree ----
  TempDir out("mtasts-deb");
  const fs::path config = build_dir() / "CPackConfig.cmake";
  ASSERT_TRUE(fs::exists(config)) << config;
  RunResult r = run({"cpack", "-G", "DEB", "--config", config.string(), "-B", out.path().string()}, 280s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  fs::path deb;
  for (const auto& e : fs::directory_iterator(out.path()))
    if (e.path().extension() == ".deb") deb = e.path();
  ASSERT_FALSE(deb.empty()) << "cpack made no .deb:\n" << r.out;

  // The control data an operator and apt rely on.
  r = run({"dpkg-deb", "-f", deb.string(), "Package", "Depends"}, 30s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("Package: mta-sts"), std::string::npos) << r.out;
  for (const char* dep : {"libmilter1.0.1", "libhiredis0.14", "libldns3", "libcurl4",
                          "libboost-program-options1.74.0", "libidn2-0", "libssl3"}) {
    EXPECT_NE(r.out.find(dep), std::string::npos) << dep << " missing from Depends: " << r.out;
  }
  r = run({"dpkg-deb", "-I", deb.string(), "conffiles"}, 30s);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("/etc/mta-sts/mta-sts.conf"), std::string::npos) << r.out;

  // ---- install ----
  r = run({"dpkg", "-i", deb.string()}, 120s);
  installed_ = true;
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_TRUE(package_installed());

  // Manuals: found by man, and readable.
  for (const char* page : {"mta-sts-milter", "mta-sts-cached", "mta-sts-ctl", "mta-sts-tlsmap", "mta-sts.conf"}) {
    r = run({"man", "-w", page}, 30s);
    EXPECT_EQ(r.exit_code, 0) << page << ": " << describe(r);
    EXPECT_EQ(r.out.rfind("/usr/share/man/", 0), 0u) << page << " found at " << r.out;
  }
  r = run({"sh", "-c", "MANPAGER=cat MANWIDTH=80 man mta-sts-milter | head -n 20"}, 60s);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("NAME"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mta-sts-milter"), std::string::npos) << r.out;
  r = run({"sh", "-c", "MANPAGER=cat man 5 mta-sts.conf | grep -c redis-budget"}, 60s);
  EXPECT_EQ(r.exit_code, 0) << describe(r);

  // Every binary runs from its installed place and knows its version.
  for (const auto& [bin, name] : std::vector<std::pair<std::string, std::string>>{
           {"/usr/sbin/mta-sts-milter", "mta-sts-milter"},
           {"/usr/sbin/mta-sts-cached", "mta-sts-cached"},
           {"/usr/sbin/mta-sts-tlsmap", "mta-sts-tlsmap"},
           {"/usr/bin/mta-sts-ctl", "mta-sts-ctl"}}) {
    r = run({bin, "--version"}, 30s);
    EXPECT_EQ(r.exit_code, 0) << bin << ": " << describe(r);
    EXPECT_EQ(r.out, name + " " + MTASTS_VERSION + "\n") << bin;
  }

  // The installed configuration is the commented example, valid for every program, and only
  // readable by root and group mta-sts (it may hold a password).
  struct stat st{};
  ASSERT_EQ(stat("/etc/mta-sts/mta-sts.conf", &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  const group* g = getgrnam("mta-sts");
  ASSERT_NE(g, nullptr) << "postinst did not create group mta-sts";
  EXPECT_EQ(st.st_gid, g->gr_gid);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(run({"getent", "passwd", "mta-sts"}, 30s).exit_code, 0) << "postinst did not create user mta-sts";
  for (const char* bin : {"/usr/sbin/mta-sts-milter", "/usr/sbin/mta-sts-cached", "/usr/sbin/mta-sts-tlsmap", "/usr/bin/mta-sts-ctl"}) {
    r = run({bin, "--check"}, 30s);
    EXPECT_EQ(r.exit_code, 0) << bin << " --check: " << describe(r);
  }

  // Units point at the installed daemons; examples are where the manuals say.
  for (const char* unit : {"mta-sts-milter.service", "mta-sts-cached.service", "mta-sts-tlsmap.service"}) {
    const fs::path p = fs::path("/usr/lib/systemd/system") / unit;
    ASSERT_TRUE(fs::exists(p)) << p;
    const std::string text = read_file(p);
    const std::string daemon = std::string(unit).substr(0, std::string(unit).find('.'));
    EXPECT_NE(text.find("ExecStart=/usr/sbin/" + daemon + "\n"), std::string::npos) << text;
  }
  if (run({"sh", "-c", "command -v systemd-analyze"}, 10s).exit_code == 0) {
    r = run({"systemd-analyze", "verify", "/usr/lib/systemd/system/mta-sts-milter.service",
             "/usr/lib/systemd/system/mta-sts-cached.service", "/usr/lib/systemd/system/mta-sts-tlsmap.service"}, 60s);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
  }
  for (const char* ex : {"mta-sts.conf", "postfix-main.cf", "sendmail.mc", "sendmail-tlsmap.mc", "redis-acl.conf",
                         "warm-list.example", "mta-sts-milter.service", "mta-sts-cached.service",
                         "mta-sts-tlsmap.service"}) {
    EXPECT_TRUE(fs::exists(fs::path("/usr/share/doc/mta-sts/examples") / ex)) << ex;
  }

  // ---- remove: binaries and manuals go, the conffile stays until purge ----
  r = run({"dpkg", "-r", "mta-sts"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_FALSE(fs::exists("/usr/sbin/mta-sts-milter"));
  EXPECT_FALSE(fs::exists("/usr/bin/mta-sts-ctl"));
  EXPECT_FALSE(fs::exists("/usr/sbin/mta-sts-tlsmap"));
  EXPECT_NE(run({"man", "-w", "mta-sts-milter"}, 30s).exit_code, 0);
  EXPECT_TRUE(fs::exists("/etc/mta-sts/mta-sts.conf"));
  r = run({"dpkg", "--purge", "mta-sts"}, 120s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  installed_ = false;
  EXPECT_FALSE(fs::exists("/etc/mta-sts/mta-sts.conf"));
}

}  // namespace
}  // namespace mtasts::test
