// bench_null_milter: the cheapest filter libmilter allows, for bench_milter's floor: it asks
// for no action, switches off every step the protocol lets it switch off and answers the end
// of message with "continue". What Postfix loses with it is the cost of having a milter at
// all (a connection per SMTP session, the negotiation, macros for every stage, the end of
// message round trip), which no filter can go below.
//   bench_null_milter unix:/path/to/socket
#include <libmilter/mfapi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace {

extern "C" sfsistat null_negotiate(SMFICTX*, unsigned long, unsigned long f1, unsigned long, unsigned long,
                                   unsigned long* pf0, unsigned long* pf1, unsigned long* pf2, unsigned long* pf3) {
  *pf0 = 0;
  *pf1 = f1 & (SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NOMAIL | SMFIP_NORCPT | SMFIP_NOHDRS | SMFIP_NOEOH |
               SMFIP_NOBODY | SMFIP_NODATA | SMFIP_NOUNKNOWN);
  *pf2 = 0;
  *pf3 = 0;
  return SMFIS_CONTINUE;
}

extern "C" sfsistat null_eom(SMFICTX*) { return SMFIS_CONTINUE; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::strncmp(argv[1], "unix:", 5) != 0) {
    std::fprintf(stderr, "usage: bench_null_milter unix:/path/to/socket\n");
    return 2;
  }
  static char name[] = "bench-null-milter";
  smfiDesc d{};
  d.xxfi_name = name;
  d.xxfi_version = SMFI_VERSION;
  d.xxfi_flags = 0;
  d.xxfi_negotiate = null_negotiate;
  d.xxfi_eom = null_eom;
  ::unlink(argv[1] + 5);
  ::umask(0);  // the socket must be writable by Postfix's unprivileged processes
  if (smfi_setconn(argv[1]) != MI_SUCCESS || smfi_register(d) != MI_SUCCESS) {
    std::fprintf(stderr, "bench_null_milter: cannot register on %s\n", argv[1]);
    return 1;
  }
  return smfi_main() == MI_SUCCESS ? 0 : 1;
}
