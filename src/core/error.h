// Errors: one exception type whose message names the problem and the fix. The app catches it,
// prints it from the rank that saw it, and aborts every rank with a non-zero code.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace xwin {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void cat(std::ostringstream&) {}
template <typename T, typename... Rest>
void cat(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  cat(os, rest...);
}
}  // namespace detail

// Builds a message from the pieces with operator<< and throws xwin::Error.
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  detail::cat(os, args...);
  throw Error(os.str());
}

template <typename... Args>
void require(bool ok, const Args&... args) {
  if (!ok) fail(args...);
}

}  // namespace xwin
