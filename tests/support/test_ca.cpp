// Test support: the test CA of the loopback world. Everything is made with the openssl CLI,
// EC P-256 keys (cheap), one openssl process per leaf where possible, and cached per process,
// so a whole test binary pays for each (name, kind) once.
#include <algorithm>
#include <stdexcept>
#include <thread>

#include "tests/support/world.hpp"

namespace mtasts::test {

namespace fs = std::filesystem;

namespace {

// Any name under the reserved .invalid TLD can never be a host the tests ask for.
constexpr const char* kWrongName = "wrong-name.invalid";

const std::vector<std::string> kNewKey = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                          "-nodes"};

void run_checked(const std::vector<std::string>& argv) {
  RunResult r = run(argv, std::chrono::seconds(30));
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error("TestCa: command failed (" + std::to_string(r.exit_code) + "): " + cmd +
                             "\n" + r.err + r.out);
  }
}

std::string san_of(const std::vector<std::string>& names) {
  std::string san = "subjectAltName=";
  for (std::size_t i = 0; i < names.size(); ++i) san += (i ? ",DNS:" : "DNS:") + names[i];
  return san;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

const char* to_string(CertKind k) noexcept {
  switch (k) {
    case CertKind::valid: return "valid";
    case CertKind::expired: return "expired";
    case CertKind::wrong_name: return "wrong-name";
    case CertKind::untrusted: return "untrusted";
    case CertKind::self_signed: return "self-signed";
    case CertKind::cn_only: return "cn-only";
  }
  return "?";
}

std::optional<CertKind> cert_kind_from_string(const std::string& s) {
  for (CertKind k : {CertKind::valid, CertKind::expired, CertKind::wrong_name, CertKind::untrusted,
                     CertKind::self_signed, CertKind::cn_only}) {
    std::string name = to_string(k);
    std::string underscored = name;
    std::replace(underscored.begin(), underscored.end(), '-', '_');
    if (s == name || s == underscored) return k;
  }
  return std::nullopt;
}

struct TestCa::Job {
  std::string cache_key;
  CertFiles files;
  std::vector<std::vector<std::string>> steps;
  bool uses_ca_db = false;  // the step list contains `openssl ca`
};

TestCa::TestCa(fs::path dir) : dir_(std::move(dir)) {
  fs::create_directories(dir_ / "leaves");
  fs::create_directories(dir_ / "issued");
  ca_file_ = dir_ / "root.pem";
  ca_key_ = dir_ / "root.key";
  untrusted_ca_file_ = dir_ / "untrusted-root.pem";
  untrusted_ca_key_ = dir_ / "untrusted-root.key";
  const std::string d = dir_.string();
  // A private config: the system openssl.cnf would add CA:TRUE extensions to every
  // `req -x509` certificate, leaves included.
  write_file(dir_ / "openssl.cnf",
             "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
             "[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
             "subjectKeyIdentifier = hash\n"
             "[v3_leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n"
             "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
             "[ca]\ndefault_ca = test_ca\n"
             "[test_ca]\ndatabase = " + d + "/index.txt\nnew_certs_dir = " + d + "/issued\n"
             "certificate = " + d + "/root.pem\nprivate_key = " + d + "/root.key\n"
             "rand_serial = yes\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
             "copy_extensions = copy\nemail_in_dn = no\n"
             "[any]\ncommonName = optional\n");
  write_file(dir_ / "index.txt", "");
  const std::string cnf = (dir_ / "openssl.cnf").string();
  auto make_root = [&](const fs::path& cert, const fs::path& key, const std::string& cn) {
    return concat(concat({"openssl", "req", "-x509", "-config", cnf}, kNewKey),
                  {"-keyout", key.string(), "-out", cert.string(), "-subj", "/CN=" + cn, "-days", "3650",
                   "-extensions", "v3_ca"});
  };
  // Both roots at once: each openssl start costs more than the key generation.
  std::thread other([&, argv = make_root(untrusted_ca_file_, untrusted_ca_key_, "MTA-STS Untrusted Test CA")] {
    RunResult r = run(argv, std::chrono::seconds(30));
    if (r.exit_code != 0) write_file(dir_ / "untrusted-root.err", r.err + r.out + "\n");
  });
  std::string err;
  try {
    run_checked(make_root(ca_file_, ca_key_, "MTA-STS Test Root CA"));
  } catch (const std::exception& e) {
    err = e.what();
  }
  other.join();
  if (!err.empty()) throw std::runtime_error(err);
  if (!fs::exists(untrusted_ca_file_))
    throw std::runtime_error("TestCa: untrusted CA failed: " + read_file(dir_ / "untrusted-root.err"));
}

TestCa& TestCa::shared() {
  // The TempDir is declared first, so it is destroyed after the CA that lives in it.
  static TempDir dir("mtasts-ca");
  static TestCa ca(dir.path());
  return ca;
}

TestCa::Job TestCa::make_job(const std::vector<std::string>& names_in, CertKind kind, const std::string& stem) {
  std::vector<std::string> names = names_in;
  if (kind == CertKind::wrong_name) names = {kWrongName};
  Job job;
  job.cache_key = std::string(to_string(kind)) + "|";
  for (const auto& n : names) job.cache_key += n + ",";
  job.files.cert = dir_ / "leaves" / (stem + ".pem");
  job.files.key = dir_ / "leaves" / (stem + ".key");
  const std::string cnf = (dir_ / "openssl.cnf").string();
  // CN is informational only (clients check the SAN); it must fit in 64 characters.
  const std::string subj = "/CN=" + names.front().substr(0, 60);
  std::vector<std::string> common = {"-keyout", job.files.key.string(), "-subj", subj};
  // cn_only: the name in the subject CN alone, which RFC 6125 clients must not accept.
  if (kind != CertKind::cn_only) common = concat(common, {"-addext", san_of(names)});
  switch (kind) {
    case CertKind::valid:
    case CertKind::wrong_name:
    case CertKind::cn_only:
    case CertKind::untrusted: {
      const bool trusted = kind != CertKind::untrusted;
      job.steps.push_back(concat(
          concat(concat({"openssl", "req", "-x509", "-config", cnf, "-CA",
                         (trusted ? ca_file_ : untrusted_ca_file_).string(), "-CAkey",
                         (trusted ? ca_key_ : untrusted_ca_key_).string()},
                        kNewKey),
                 common),
          {"-out", job.files.cert.string(), "-days", "825", "-extensions", "v3_leaf"}));
      break;
    }
    case CertKind::self_signed:
      job.steps.push_back(concat(concat(concat({"openssl", "req", "-x509", "-config", cnf}, kNewKey), common),
                                 {"-out", job.files.cert.string(), "-days", "825", "-extensions", "v3_leaf"}));
      break;
    case CertKind::expired: {
      // `req -x509` cannot backdate; `openssl ca` can, and copies the SAN from the request.
      const std::string csr = (dir_ / "leaves" / (stem + ".csr")).string();
      job.steps.push_back(concat(concat(concat({"openssl", "req", "-new", "-config", cnf}, kNewKey), common),
                                 {"-out", csr}));
      job.steps.push_back({"openssl", "ca", "-config", cnf, "-batch", "-notext", "-in", csr, "-out",
                           job.files.cert.string(), "-startdate", "20200101000000Z", "-enddate",
                           "20210101000000Z", "-extensions", "v3_leaf"});
      job.uses_ca_db = true;
      break;
    }
  }
  return job;
}

void TestCa::prepare(const std::vector<std::pair<std::string, CertKind>>& wanted) {
  std::vector<Job> jobs;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> seen;
    for (const auto& [name, kind] : wanted) {
      Job job = make_job({name}, kind, "leaf-" + std::to_string(counter_));
      if (leaves_.count(job.cache_key) || !seen.insert(job.cache_key).second) continue;
      ++counter_;
      jobs.push_back(std::move(job));
    }
  }
  if (jobs.empty()) return;
  // A few openssl processes at a time: their start-up, not the crypto, is the cost.
  const std::size_t workers = std::min<std::size_t>(jobs.size(), 4);
  std::atomic<std::size_t> next{0};
  std::mutex err_mu;
  std::string first_error;
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (std::size_t i = next++; i < jobs.size(); i = next++) {
        try {
          for (const auto& step : jobs[i].steps) {
            if (jobs[i].uses_ca_db && step[1] == "ca") {
              std::lock_guard db(ca_db_mu_);
              run_checked(step);
            } else {
              run_checked(step);
            }
          }
          std::lock_guard lock(mu_);
          leaves_.emplace(jobs[i].cache_key, jobs[i].files);
        } catch (const std::exception& e) {
          std::lock_guard lock(err_mu);
          if (first_error.empty()) first_error = e.what();
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  if (!first_error.empty()) throw std::runtime_error(first_error);
}

CertFiles TestCa::leaf(const std::string& name, CertKind kind) {
  prepare({{name, kind}});
  std::lock_guard lock(mu_);
  return leaves_.at(make_job({name}, kind, "unused").cache_key);
}

CertFiles TestCa::leaf_for_names(const std::vector<std::string>& names, CertKind kind) {
  if (names.empty()) throw std::invalid_argument("TestCa::leaf_for_names: no names");
  Job job;
  {
    std::lock_guard lock(mu_);
    job = make_job(names, kind, "multi-" + std::to_string(counter_));
    if (auto it = leaves_.find(job.cache_key); it != leaves_.end()) return it->second;
    ++counter_;
  }
  for (const auto& step : job.steps) {
    if (job.uses_ca_db && step[1] == "ca") {
      std::lock_guard db(ca_db_mu_);
      run_checked(step);
    } else {
      run_checked(step);
    }
  }
  std::lock_guard lock(mu_);
  leaves_.emplace(job.cache_key, job.files);
  return job.files;
}

}  // namespace mtasts::test
