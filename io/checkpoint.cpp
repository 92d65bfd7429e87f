#include "io/checkpoint.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/version.h"
#include "io/h5.h"

namespace xwin {

namespace fs = std::filesystem;
static const char* kShard = "shard-pp0-tp0.h5";

void save_checkpoint(const std::string& dir, const Llama& model, const float* m, const float* v,
                     const TrainState& state) {
  const fs::path final_dir(dir);
  const fs::path tmp = final_dir.string() + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  require(!ec, tmp.string(), ": cannot create checkpoint directory (", ec.message(), ")");
  {
    h5::File f((tmp / kShard).string(), 'w');
    for (const auto& t : model.layout.tensors) {
      f.write("/params/" + t.name, model.params.data() + t.offset, t.shape);
      if (m) f.write("/optim/m/" + t.name, m + t.offset, t.shape);
      if (v) f.write("/optim/v/" + t.name, v + t.offset, t.shape);
    }
    f.set_attr("/", "schema", std::string("xwin.checkpoint.shard"));
    f.set_attr("/", "version", (int64_t)1);
    f.set_attr("/", "model_config", model.cfg.to_json().dump());
    f.set_attr("/", "run_config", state.run_config.dump());
    f.set_attr("/", "step", state.step);
    f.set_attr("/", "tokens_seen", state.tokens_seen);
    f.set_attr("/", "pp_rank", (int64_t)0);
    f.set_attr("/", "tp_rank", (int64_t)0);
    f.set_attr("/", "xwin_version", std::string(XWIN_VERSION " (" XWIN_GIT_REV ")"));
  }
  nlohmann::json index = {{"schema", "xwin.checkpoint"},
                          {"version", 1},
                          {"step", state.step},
                          {"layout", {{"pp", 1}, {"tp", 1}}},
                          {"shards", {kShard}},
                          {"model_config", model.cfg.to_json()}};
  {
    std::ofstream out(tmp / "index.json");
    out << index.dump(2) << "\n";
    require(out.good(), (tmp / "index.json").string(), ": write failed (disk full?)");
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  require(!ec, dir, ": cannot rename the finished checkpoint into place (", ec.message(), ")");
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

static std::string shard_path(const std::string& dir) {
  const fs::path index = fs::path(dir) / "index.json";
  require(fs::exists(index), dir, ": not a checkpoint (no index.json); pass a directory ",
          "written by xwin init, sft or another phase");
  return (fs::path(dir) / kShard).string();
}

ModelConfig checkpoint_config(const std::string& dir) {
  h5::File f(shard_path(dir), 'r');
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f.attr_string("/", "model_config"));
  } catch (const nlohmann::json::exception& e) {
    fail(f.path(), ": attribute model_config is not valid JSON (", e.what(), ")");
  }
  return ModelConfig::from_json(j, f.path());
}

TrainState load_checkpoint(const std::string& dir, Llama& model, float* m, float* v) {
  h5::File f(shard_path(dir), 'r');
  ModelConfig stored = checkpoint_config(dir);
  require(stored == model.cfg, f.path(), ": the checkpoint's model config ",
          stored.to_json().dump(), " differs from the requested one ", model.cfg.to_json().dump(),
          "; drop the model.* options to use the checkpoint's own config");
  for (const auto& t : model.layout.tensors) {
    const std::string name = "/params/" + t.name;
    require(f.exists(name), f.path(), ": parameter ", t.name, " is missing");
    require(f.shape(name) == t.shape, f.path(), ": parameter ", t.name, " has shape ",
            shape_str(f.shape(name)), " but the model config needs ", shape_str(t.shape),
            "; the file is damaged or was edited by hand");
    f.read(name, model.params.data() + t.offset, t.numel);
    if (m && f.exists("/optim/m/" + t.name)) f.read("/optim/m/" + t.name, m + t.offset, t.numel);
    if (v && f.exists("/optim/v/" + t.name)) f.read("/optim/v/" + t.name, v + t.offset, t.numel);
  }
  TrainState s;
  s.step = f.attr_int("/", "step");
  s.tokens_seen = f.attr_int("/", "tokens_seen");
  s.run_config = nlohmann::json::parse(f.attr_string("/", "run_config"));
  return s;
}

}  // namespace xwin
