#include "core/log.h"

#include <cstdarg>

namespace xwin {

static int g_rank = 0;

void set_log_rank(int rank) {
  g_rank = rank;
}
int log_rank() {
  return g_rank;
}

void log0(const char* fmt, ...) {
  if (g_rank != 0) return;
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stdout, fmt, ap);
  va_end(ap);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// "xwin[rank R]: KIND: message" on stderr, flushed.
static void log_stderr(const char* kind, const char* fmt, va_list ap) {
  std::fprintf(stderr, "xwin[rank %d]: %s: ", g_rank, kind);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  std::fflush(stderr);
}

void log_error(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_stderr("error", fmt, ap);
  va_end(ap);
}

void log_warning(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_stderr("warning", fmt, ap);
  va_end(ap);
}

std::string format_duration(double s) {
  char buf[32];
  if (s < 0 || s != s) return "?";
  long t = static_cast<long>(s + 0.5);
  if (t < 60)
    std::snprintf(buf, sizeof buf, "%lds", t);
  else if (t < 3600)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  return buf;
}

}  // namespace xwin
