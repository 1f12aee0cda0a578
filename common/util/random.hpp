// Unpredictable tokens from the kernel (getrandom(2)). A claim token decides which fetcher
// may release a domain's lock in the shared Redis, so it must not be guessable by another
// fetcher and must never repeat between processes: 128 bits straight from the kernel for
// every token, no user-space generator whose state a fork or a 32-bit seed could share.
#pragma once

#include <sys/random.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mtasts {

// Fills `n` bytes from the kernel's CSPRNG; blocks only before the pool is first seeded.
inline void kernel_random(void* buf, std::size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    const ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "getrandom");
    }
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

// `bytes` random bytes from the kernel as lowercase hex (2 * bytes characters).
inline std::string random_hex(std::size_t bytes = 16) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes);
  unsigned char b[64];
  while (bytes > 0) {
    const std::size_t n = bytes < sizeof b ? bytes : sizeof b;
    kernel_random(b, n);
    for (std::size_t i = 0; i < n; ++i) {
      out += hex[b[i] >> 4];
      out += hex[b[i] & 0xf];
    }
    bytes -= n;
  }
  return out;
}

}  // namespace mtasts
