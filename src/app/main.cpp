// xwin: one MPI binary, one subcommand per phase. MPI is initialised here; rank 0 logs. A usage
// error is detected identically on every rank, so each exits with 2 on its own; any other error
// is printed by the rank that saw it and brings every rank down with exit code 1.
#include <mpi.h>

#include <cstdio>

#include "app/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/threads.h"

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  xwin::set_log_rank(rank);
  int code = 0;
  try {
    boost::program_options::variables_map vm;
    const xwin::cli::Phase* phase = xwin::cli::parse(argc, argv, vm);
    if (phase) {
      xwin::warn_if_oversubscribed(MPI_COMM_WORLD);
      code = phase->run(vm);
    }
  } catch (const xwin::Preempted&) {
    code = xwin::kExitPreempted;
  } catch (const xwin::cli::UsageError& e) {
    if (rank == 0) std::fprintf(stderr, "xwin: error: %s\n", e.what());
    code = 2;
  } catch (const std::exception& e) {
    xwin::log_error("%s", e.what());
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, 1);
    code = 1;
  }
  MPI_Finalize();
  return code;
}
