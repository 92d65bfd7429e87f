#include "io/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "io/h5.h"

namespace xwin {

namespace fs = std::filesystem;
static const char* kShard = "shard-pp0-tp0.h5";

static int64_t crc32_of(const float* p, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const Bytef* b = reinterpret_cast<const Bytef*>(p);
  size_t bytes = n * sizeof(float);
  while (bytes > 0) {  // zlib takes uInt lengths
    const uInt len = (uInt)std::min<size_t>(bytes, 1u << 30);
    crc = crc32(crc, b, len);
    b += len, bytes -= len;
  }
  return (int64_t)crc;
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

static void write_tensor(h5::File& f, const std::string& name, const float* data,
                         const std::vector<int64_t>& shape, size_t numel) {
  f.write(name, data, shape);
  f.set_attr(name, "crc32", crc32_of(data, numel));
  f.set_attr(name, "logical_shape", shape);
  f.set_attr(name, "slice_start", std::vector<int64_t>(shape.size(), 0));
}

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
      write_tensor(f, "/params/" + t.name, model.params.data() + t.offset, t.shape, t.numel);
      if (m) write_tensor(f, "/optim/m/" + t.name, m + t.offset, t.shape, t.numel);
      if (v) write_tensor(f, "/optim/v/" + t.name, v + t.offset, t.shape, t.numel);
    }
    f.set_attr("/", "schema", std::string("xwin.checkpoint.shard"));
    f.set_attr("/", "version", (int64_t)1);
    f.set_attr("/", "model_config", model.cfg.to_json().dump());
    f.set_attr("/", "run_config", state.run_config.dump());
    f.set_attr("/", "step", state.step);
    f.set_attr("/", "tokens_seen", state.tokens_seen);
    f.set_attr("/", "data_cursor", state.data_cursor);
    f.set_attr("/", "rng_seed", (int64_t)state.rng_seed);
    f.set_attr("/", "pp_rank", (int64_t)0);
    f.set_attr("/", "tp_rank", (int64_t)0);
    f.set_attr("/", "has_optimizer", (int64_t)(m && v));
    f.set_attr("/", "xwin_version", std::string(XWIN_VERSION " (" XWIN_GIT_REV ")"));
  }
  nlohmann::json index = {{"schema", "xwin.checkpoint"},
                          {"version", 1},
                          {"step", state.step},
                          {"layout", {{"pp", 1}, {"tp", 1}}},
                          {"shards", {{{"file", kShard}, {"pp", 0}, {"tp", 0}}}},
                          {"model_config", model.cfg.to_json()}};
  {
    std::ofstream out(tmp / "index.json");
    out << index.dump(2) << "\n";
    out.close();
    require(out.good(), (tmp / "index.json").string(), ": write failed (disk full?)");
  }
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  require(!ec, dir, ": cannot rename the finished checkpoint into place (", ec.message(), ")");
}

static std::string shard_path(const std::string& dir) {
  const fs::path index = fs::path(dir) / "index.json";
  require(fs::exists(index), dir, ": not a checkpoint (no index.json); pass a directory ",
          "written by xwin init, sft or another phase");
  nlohmann::json j;
  try {
    std::ifstream in(index);
    j = nlohmann::json::parse(in);
    (void)j.at("shards").at(0);
  } catch (const nlohmann::json::exception& e) {
    fail(index.string(), ": malformed checkpoint index (", e.what(), ")");
  }
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

// Reads one tensor into out, checking shape and checksum.
static void read_tensor(const h5::File& f, const std::string& name, const TensorInfo& t,
                        float* out) {
  require(f.exists(name), f.path(), ": dataset ", name, " is missing");
  require(f.shape(name) == t.shape, f.path(), ": dataset ", name, " has shape ",
          shape_str(f.shape(name)), " but the model config needs ", shape_str(t.shape),
          "; the file is damaged or was edited by hand");
  f.read(name, out, t.numel);
  if (f.has_attr(name, "crc32"))
    require(crc32_of(out, t.numel) == f.attr_int(name, "crc32"), f.path(), ": dataset ", name,
            " fails its CRC-32 check (the file is damaged); use an earlier checkpoint");
}

TrainState load_checkpoint(const std::string& dir, Llama& model, float* m, float* v) {
  h5::File f(shard_path(dir), 'r');
  ModelConfig stored = checkpoint_config(dir);
  require(stored == model.cfg, f.path(), ": the checkpoint's model config ",
          stored.to_json().dump(), " differs from the requested one ", model.cfg.to_json().dump(),
          "; drop the model.* options to use the checkpoint's own config");
  const bool with_optim = m && v && f.has_attr("/", "has_optimizer") &&
                          f.attr_int("/", "has_optimizer") != 0;
  for (const auto& t : model.layout.tensors) {
    read_tensor(f, "/params/" + t.name, t, model.params.data() + t.offset);
    if (with_optim) {
      read_tensor(f, "/optim/m/" + t.name, t, m + t.offset);
      read_tensor(f, "/optim/v/" + t.name, t, v + t.offset);
    }
  }
  TrainState s;
  s.step = f.attr_int("/", "step");
  s.tokens_seen = f.attr_int("/", "tokens_seen");
  if (f.has_attr("/", "data_cursor")) s.data_cursor = f.attr_int("/", "data_cursor");
  if (f.has_attr("/", "rng_seed")) s.rng_seed = (uint64_t)f.attr_int("/", "rng_seed");
  s.run_config = nlohmann::json::parse(f.attr_string("/", "run_config"));
  return s;
}

std::string verify_checkpoint(const std::string& dir) {
  try {
    Llama model(checkpoint_config(dir));
    std::vector<float> m(model.layout.total), v(model.layout.total);
    load_checkpoint(dir, model, m.data(), v.data());
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string checkpoint_info(const std::string& dir) {
  std::ostringstream os;
  const std::string shard = shard_path(dir);
  h5::File f(shard, 'r');
  const ModelConfig cfg = checkpoint_config(dir);
  const ParamLayout layout(cfg);
  os << "checkpoint " << dir << "\n"
     << "  step " << f.attr_int("/", "step") << ", tokens seen " << f.attr_int("/", "tokens_seen")
     << ", layout pp=1 tp=1, written by " << f.attr_string("/", "xwin_version") << "\n"
     << "  model " << cfg.to_json().dump() << "\n"
     << "  run   " << f.attr_string("/", "run_config") << "\n"
     << "  shard " << kShard << ": " << fs::file_size(shard) << " bytes, " << layout.total
     << " parameters\n";
  int bad = 0, checked = 0;
  std::vector<float> buf;
  for (const char* group : {"/params/", "/optim/m/", "/optim/v/"})
    for (const auto& t : layout.tensors) {
      const std::string name = group + t.name;
      if (!f.exists(name)) continue;
      buf.resize(t.numel);
      std::string status = "OK";
      try {
        read_tensor(f, name, t, buf.data());
      } catch (const std::exception& e) {
        status = std::string("BAD: ") + e.what();
        bad++;
      }
      checked++;
      if (status != "OK" || group[1] == 'p')
        os << "    " << name << " " << shape_str(t.shape) << " crc32 " << status << "\n";
    }
  os << "  checksums: " << checked - bad << "/" << checked << " datasets OK\n";
  return os.str();
}

RunCheckpoints::RunCheckpoints(const std::string& run_dir)
    : root_((fs::path(run_dir) / "ckpt").string()) {}

std::string RunCheckpoints::step_dir(int64_t step) const {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", (long long)step);
  return (fs::path(root_) / name).string();
}

std::vector<std::string> RunCheckpoints::complete() const {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) return out;
  for (const auto& e : fs::directory_iterator(root_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0 && name.find(".tmp") == std::string::npos &&
        fs::exists(e.path() / "index.json"))
      out.push_back(e.path().string());
  }
  std::sort(out.rbegin(), out.rend());  // zero-padded names: lexical order is step order
  return out;
}

void RunCheckpoints::save(const Llama& model, const float* m, const float* v,
                          const TrainState& state, int keep_last) const {
  const std::string dir = step_dir(state.step);
  save_checkpoint(dir, model, m, v, state);
  const fs::path latest = fs::path(root_) / "latest", tmp = fs::path(root_) / "latest.tmp";
  {
    std::ofstream out(tmp);
    out << fs::path(dir).filename().string() << "\n";
    out.close();
    require(out.good(), tmp.string(), ": write failed");
  }
  fs::rename(tmp, latest);
  if (keep_last <= 0) return;
  const std::vector<std::string> all = complete();
  for (size_t i = keep_last; i < all.size(); i++) fs::remove_all(all[i]);
}

std::string RunCheckpoints::resolve(const std::string& resume) const {
  if (resume == "none" || resume.empty()) return "";
  if (resume != "auto") {
    const std::string problem = verify_checkpoint(resume);
    require(problem.empty(), "--resume ", resume, ": ", problem);
    return resume;
  }
  for (const std::string& dir : complete()) {
    const std::string problem = verify_checkpoint(dir);
    if (problem.empty()) return dir;
    log0("warning: skipping damaged checkpoint %s: %s; trying the previous one", dir.c_str(),
         problem.c_str());
  }
  return "";
}

}  // namespace xwin
