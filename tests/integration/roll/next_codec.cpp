// mta-sts-next-codec: the next codec version, for the rolling-upgrade test only. This target
// compiles common/sts/cache_entry.cpp a second time with MTASTS_CODEC_VERSION raised by one (and
// `reader` = today's version: the next format only adds fields), so that entries written by
// today's real programs meet a real next reader, and today's programs meet a real next writer.
//   mta-sts-next-codec decode   < entry   "version=N" and every decoded field (entry_dump.hpp)
//   mta-sts-next-codec encode   < entry   the same entry as the next version writes it
// Exit status 1 with the decoder's error on stderr when the entry is not readable.
#include <iostream>
#include <sstream>
#include <string>

#include "common/sts/cache_entry.hpp"
#include "tests/integration/roll/entry_dump.hpp"

static_assert(mtasts::kCodecVersion == 2 && mtasts::kCodecReader == 1,
              "this program is the next codec version: build it with MTASTS_CODEC_VERSION=2");

int main(int argc, char** argv) {
  const std::string mode = argc == 2 ? argv[1] : "";
  if (mode != "decode" && mode != "encode") {
    std::cerr << "usage: mta-sts-next-codec decode|encode < entry\n";
    return 2;
  }
  std::ostringstream buf;
  buf << std::cin.rdbuf();
  const std::string in = buf.str();
  const mtasts::DecodeResult r = mtasts::decode(in);
  if (!r.entry) {
    std::cerr << "version " << r.version << ": " << r.error << "\n";
    return 1;
  }
  if (mode == "decode")
    std::cout << "version=" << r.version << "\n" << mtasts::test::dump(*r.entry);
  else
    std::cout << mtasts::encode(*r.entry);
  return 0;
}
