#include "core/signals.h"

#include <csignal>

namespace xwin {

static volatile std::sig_atomic_t g_preempt = 0;

static void on_signal(int) {
  g_preempt = 1;
}

void install_preemption_handlers() {
  std::signal(SIGUSR1, on_signal);
  std::signal(SIGTERM, on_signal);
}

bool preemption_requested() {
  return g_preempt != 0;
}

}  // namespace xwin
