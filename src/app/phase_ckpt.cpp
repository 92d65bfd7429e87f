// xwin ckpt info: what a checkpoint holds, and whether every dataset passes its checksum.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"

namespace xwin::cli {

Phase phase_ckpt_info() {
  Phase p;
  p.name = "ckpt info";
  p.summary = "print a checkpoint's step, layout, configs, sizes and checksum status";
  p.details =
      "PATH is a checkpoint directory, or a run directory (its newest checkpoint is shown).\n"
      "Exits 1 when any dataset fails its checksum or shape check.";
  p.add_options = [](po::options_description& d) {
    d.add_options()("path", po::value<std::string>(), "checkpoint or run directory (required)");
  };
  p.positional = "path";
  p.run = [p](const po::variables_map& vm) {
    std::string path = required(vm, "path", p);
    namespace fs = std::filesystem;
    if (!fs::exists(fs::path(path) / "index.json")) {
      RunCheckpoints run(path);
      const auto all = run.complete();
      if (!all.empty())
        path = all.front();
      else if (fs::exists(fs::path(path) / "final" / "index.json"))
        path = (fs::path(path) / "final").string();
    }
    const std::string info = checkpoint_info(path);
    if (log_rank() == 0) std::cout << info << std::flush;
    return info.find(" BAD: ") == std::string::npos ? 0 : 1;
  };
  return p;
}

}  // namespace xwin::cli
