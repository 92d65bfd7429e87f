// Logging: rank 0 prints progress; any rank may print an error. The rank is set once by the app.
#pragma once
#include <cstdio>
#include <string>

namespace xwin {

void set_log_rank(int rank);
int log_rank();

// printf-style line on rank 0 only, flushed (Slurm output files must show progress promptly).
void log0(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// printf-style line to stderr from any rank, prefixed with the rank.
void log_error(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// The same with "warning:" for a problem that does not stop the run.
void log_warning(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Human-readable duration for ETAs: "42s", "3m07s", "2h05m".
std::string format_duration(double seconds);

}  // namespace xwin
