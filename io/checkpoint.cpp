#include "io/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "io/h5.h"

namespace xwin {

namespace fs = std::filesystem;

static std::string shard_file(int pp, int tp) {
  return "shard-pp" + std::to_string(pp) + "-tp" + std::to_string(tp) + ".h5";
}

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
                         const TensorInfo& t) {
  f.write(name, data, t.shape);
  f.set_attr(name, "crc32", crc32_of(data, t.numel));
  f.set_attr(name, "logical_shape", t.logical_shape);
  f.set_attr(name, "slice_start", t.slice_start);
}

// This rank's shard file: its tensor blocks, their slices, and the run state.
static void write_shard(const fs::path& path, const Llama& model, const float* m, const float* v,
                        const TrainState& state) {
  h5::File f(path.string(), 'w');
  for (const auto& t : model.layout.tensors) {
    write_tensor(f, "/params/" + t.name, model.params.data() + t.offset, t);
    if (m) write_tensor(f, "/optim/m/" + t.name, m + t.offset, t);
    if (v) write_tensor(f, "/optim/v/" + t.name, v + t.offset, t);
  }
  const Shard& s = model.layout.shard;
  f.set_attr("/", "schema", std::string("xwin.checkpoint.shard"));
  f.set_attr("/", "version", (int64_t)1);
  f.set_attr("/", "model_config", model.cfg.to_json().dump());
  f.set_attr("/", "run_config", state.run_config.dump());
  f.set_attr("/", "step", state.step);
  f.set_attr("/", "tokens_seen", state.tokens_seen);
  f.set_attr("/", "data_cursor", state.data_cursor);
  f.set_attr("/", "rng_seed", (int64_t)state.rng_seed);
  f.set_attr("/", "pp_rank", (int64_t)s.pp_rank);
  f.set_attr("/", "tp_rank", (int64_t)s.tp_rank);
  f.set_attr("/", "pp_size", (int64_t)s.pp);
  f.set_attr("/", "tp_size", (int64_t)s.tp);
  f.set_attr("/", "has_optimizer", (int64_t)(m && v));
  f.set_attr("/", "xwin_version", std::string(XWIN_VERSION " (" XWIN_GIT_REV ")"));
}

static void begin_checkpoint(const fs::path& tmp) {
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  require(!ec, tmp.string(), ": cannot create checkpoint directory (", ec.message(), ")");
}

// Writes the index naming every shard, then renames the finished directory into place.
static void finish_checkpoint(const fs::path& tmp, const std::string& dir, const Llama& model,
                              const TrainState& state) {
  const Shard& s = model.layout.shard;
  nlohmann::json shards = nlohmann::json::array();
  for (int p = 0; p < s.pp; p++)
    for (int t = 0; t < s.tp; t++) {
      require(fs::exists(tmp / shard_file(p, t)), (tmp / shard_file(p, t)).string(),
              ": shard missing after the collective save (a rank failed to write it)");
      shards.push_back({{"file", shard_file(p, t)}, {"pp", p}, {"tp", t}});
    }
  nlohmann::json index = {{"schema", "xwin.checkpoint"},
                          {"version", 1},
                          {"step", state.step},
                          {"layout", {{"pp", s.pp}, {"tp", s.tp}}},
                          {"shards", shards},
                          {"model_config", model.cfg.to_json()}};
  {
    std::ofstream out(tmp / "index.json");
    out << index.dump(2) << "\n";
    out.close();
    require(out.good(), (tmp / "index.json").string(), ": write failed (disk full?)");
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::rename(tmp, dir, ec);
  require(!ec, dir, ": cannot rename the finished checkpoint into place (", ec.message(), ")");
}

void save_checkpoint(const std::string& dir, const Llama& model, const float* m, const float* v,
                     const TrainState& state) {
  const Shard& s = model.layout.shard;
  require(s.tp == 1 && s.pp == 1, "internal: single-writer save_checkpoint of a model split ",
          "over tp=", s.tp, " pp=", s.pp, "; use the collective save_checkpoint(..., grid)");
  const fs::path tmp = dir + ".tmp";
  begin_checkpoint(tmp);
  write_shard(tmp / shard_file(0, 0), model, m, v, state);
  finish_checkpoint(tmp, dir, model, state);
}

void save_checkpoint(const std::string& dir, const Llama& model, const float* m, const float* v,
                     const TrainState& state, const Grid& grid) {
  const fs::path tmp = dir + ".tmp";
  if (grid.rank == 0) begin_checkpoint(tmp);
  barrier(grid.world);
  if (grid.dp_rank == 0)
    write_shard(tmp / shard_file(grid.pp_rank, grid.tp_rank), model, m, v, state);
  barrier(grid.world);
  if (grid.rank == 0) finish_checkpoint(tmp, dir, model, state);
  barrier(grid.world);
}

// The shard files of a checkpoint, opened on first use.
class ShardSet {
 public:
  explicit ShardSet(const std::string& dir) : dir_(dir) {
    const fs::path index = fs::path(dir) / "index.json";
    require(fs::exists(index), dir, ": not a checkpoint (no index.json); pass a directory ",
            "written by xwin init, sft or another phase");
    try {
      std::ifstream in(index);
      const nlohmann::json j = nlohmann::json::parse(in);
      for (const auto& s : j.at("shards")) names_.push_back(s.at("file").get<std::string>());
      if (j.contains("layout")) layout_ = j["layout"].dump();
    } catch (const nlohmann::json::exception& e) {
      fail(index.string(), ": malformed checkpoint index (", e.what(), ")");
    }
    require(!names_.empty(), index.string(), ": the index names no shards");
    files_.resize(names_.size());
  }
  size_t size() const { return names_.size(); }
  const std::string& name(size_t i) const { return names_[i]; }
  std::string path(size_t i) const { return (fs::path(dir_) / names_[i]).string(); }
  const std::string& layout() const { return layout_; }
  const h5::File& file(size_t i) {
    if (!files_[i]) files_[i] = std::make_unique<h5::File>(path(i), 'r');
    return *files_[i];
  }

 private:
  std::string dir_, layout_ = "{\"pp\":1,\"tp\":1}";
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<h5::File>> files_;
};

// A stored block: its shape, the logical tensor's shape and where the block starts in it
// (files without the attributes hold whole tensors).
struct Block {
  std::vector<int64_t> shape, logical, start;
};

static Block block_of(const h5::File& f, const std::string& name) {
  Block b;
  b.shape = f.shape(name);
  b.logical = f.has_attr(name, "logical_shape") ? f.attr_ints(name, "logical_shape") : b.shape;
  b.start = f.has_attr(name, "slice_start") ? f.attr_ints(name, "slice_start")
                                            : std::vector<int64_t>(b.shape.size(), 0);
  bool inside = b.logical.size() == b.shape.size() && b.start.size() == b.shape.size();
  for (size_t d = 0; inside && d < b.shape.size(); d++)
    inside = b.start[d] >= 0 && b.start[d] + b.shape[d] <= b.logical[d];
  require(inside, f.path(), ": dataset ", name, " of shape ", shape_str(b.shape),
          " does not fit its slice_start ", shape_str(b.start), " in logical_shape ",
          shape_str(b.logical), "; the file is damaged or was edited by hand");
  return b;
}

// Reads a whole stored block, checking its checksum.
static void read_block(const h5::File& f, const std::string& name, std::vector<float>& buf) {
  size_t n = 1;
  for (int64_t d : f.shape(name)) n *= (size_t)d;
  buf.resize(n);
  f.read(name, buf.data(), n);
  if (f.has_attr(name, "crc32"))
    require(crc32_of(buf.data(), n) == f.attr_int(name, "crc32"), f.path(), ": dataset ", name,
            " fails its CRC-32 check (the file is damaged); use an earlier checkpoint");
}

// Assembles this rank's block of tensor t (group "/params/", "/optim/m/" or "/optim/v/") from
// every stored block that overlaps it. Blocks of one checkpoint tile the tensor (replicated
// ones repeat exactly), so distinct overlaps adding up to the block's size cover it.
static void load_tensor(ShardSet& shards, const std::string& group, const TensorInfo& t,
                        float* out) {
  const std::string name = group + t.name;
  const size_t dims = t.shape.size();
  std::vector<std::vector<int64_t>> done;  // lo corners of the overlaps already copied
  size_t filled = 0;
  bool found = false;
  std::vector<float> buf;
  for (size_t i = 0; i < shards.size() && filled < t.numel; i++) {
    const h5::File& f = shards.file(i);
    if (!f.exists(name)) continue;
    found = true;
    const Block b = block_of(f, name);
    require(b.logical == t.logical_shape, f.path(), ": dataset ", name, " has shape ",
            shape_str(b.logical), " but the model config needs ", shape_str(t.logical_shape),
            "; the file is damaged or was edited by hand");
    std::vector<int64_t> lo(dims), hi(dims);
    bool overlap = true;
    for (size_t d = 0; d < dims; d++) {
      lo[d] = std::max(b.start[d], t.slice_start[d]);
      hi[d] = std::min(b.start[d] + b.shape[d], t.slice_start[d] + t.shape[d]);
      overlap &= lo[d] < hi[d];
    }
    if (!overlap || std::find(done.begin(), done.end(), lo) != done.end()) continue;
    done.push_back(lo);
    if (b.shape == t.shape && b.start == t.slice_start) {  // the same layout: straight in
      read_block(f, name, buf);
      std::copy(buf.begin(), buf.end(), out);
      filled = t.numel;
      continue;
    }
    read_block(f, name, buf);
    const int64_t rows = dims == 2 ? hi[0] - lo[0] : 1, cols = hi[dims - 1] - lo[dims - 1];
    const int64_t src_cols = b.shape[dims - 1], dst_cols = t.shape[dims - 1];
    for (int64_t r = 0; r < rows; r++) {
      const int64_t src_r = dims == 2 ? lo[0] - b.start[0] + r : 0;
      const int64_t dst_r = dims == 2 ? lo[0] - t.slice_start[0] + r : 0;
      std::copy_n(&buf[src_r * src_cols + lo[dims - 1] - b.start[dims - 1]], cols,
                  out + dst_r * dst_cols + lo[dims - 1] - t.slice_start[dims - 1]);
    }
    filled += (size_t)(rows * cols);
  }
  require(found, shards.path(0), ": dataset ", name, " is missing");
  require(filled == t.numel, shards.path(0), ": the shards of this checkpoint (layout ",
          shards.layout(), ") cover only ", filled, " of the ", t.numel, " elements of ", name,
          " this rank needs; a shard file is missing or damaged");
}

ModelConfig checkpoint_config(const std::string& dir) {
  ShardSet shards(dir);
  const h5::File& f = shards.file(0);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f.attr_string("/", "model_config"));
  } catch (const nlohmann::json::exception& e) {
    fail(f.path(), ": attribute model_config is not valid JSON (", e.what(), ")");
  }
  return ModelConfig::from_json(j, f.path());
}

static bool has_optimizer(ShardSet& shards) {
  for (size_t i = 0; i < shards.size(); i++) {
    const h5::File& f = shards.file(i);
    if (!f.has_attr("/", "has_optimizer") || f.attr_int("/", "has_optimizer") == 0) return false;
  }
  return true;
}

TrainState load_checkpoint(const std::string& dir, Llama& model, float* m, float* v) {
  ShardSet shards(dir);
  ModelConfig stored = checkpoint_config(dir);
  require(stored == model.cfg, shards.path(0), ": the checkpoint's model config ",
          stored.to_json().dump(), " differs from the requested one ", model.cfg.to_json().dump(),
          "; drop the model.* options to use the checkpoint's own config");
  const bool with_optim = m && v && has_optimizer(shards);
  for (const auto& t : model.layout.tensors) {
    load_tensor(shards, "/params/", t, model.params.data() + t.offset);
    if (with_optim) {
      load_tensor(shards, "/optim/m/", t, m + t.offset);
      load_tensor(shards, "/optim/v/", t, v + t.offset);
    }
  }
  const h5::File& f = shards.file(0);
  TrainState s;
  s.step = f.attr_int("/", "step");
  s.tokens_seen = f.attr_int("/", "tokens_seen");
  if (f.has_attr("/", "data_cursor")) s.data_cursor = f.attr_int("/", "data_cursor");
  if (f.has_attr("/", "rng_seed")) s.rng_seed = (uint64_t)f.attr_int("/", "rng_seed");
  s.run_config = nlohmann::json::parse(f.attr_string("/", "run_config"));
  return s;
}

// Every logical tensor (and its moments, when stored) assembles from the shards with sound
// checksums.
std::string verify_checkpoint(const std::string& dir) {
  try {
    ShardSet shards(dir);
    const ParamLayout whole(checkpoint_config(dir));
    const bool optim = has_optimizer(shards);
    std::vector<float> buf;
    for (const char* group : {"/params/", "/optim/m/", "/optim/v/"}) {
      if (group[1] == 'o' && !optim) continue;
      for (const auto& t : whole.tensors) {
        buf.resize(t.numel);
        load_tensor(shards, group, t, buf.data());
      }
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string checkpoint_info(const std::string& dir) {
  std::ostringstream os;
  ShardSet shards(dir);
  const h5::File& f0 = shards.file(0);
  const ModelConfig cfg = checkpoint_config(dir);
  const ParamLayout whole(cfg);
  os << "checkpoint " << dir << "\n"
     << "  step " << f0.attr_int("/", "step") << ", tokens seen " << f0.attr_int("/", "tokens_seen")
     << ", layout " << shards.layout() << " (" << shards.size() << " shard"
     << (shards.size() > 1 ? "s" : "") << "), written by " << f0.attr_string("/", "xwin_version")
     << "\n"
     << "  model " << cfg.to_json().dump() << "\n"
     << "  run   " << f0.attr_string("/", "run_config") << "\n";
  int bad = 0, checked = 0;
  std::vector<float> buf;
  for (size_t i = 0; i < shards.size(); i++) {
    const h5::File& f = shards.file(i);
    int64_t n_params = 0;
    for (const auto& t : whole.tensors)
      if (f.exists("/params/" + t.name)) {
        int64_t n = 1;
        for (int64_t d : f.shape("/params/" + t.name)) n *= d;
        n_params += n;
      }
    os << "  shard " << shards.name(i) << ": " << fs::file_size(shards.path(i)) << " bytes, "
       << n_params << " parameters\n";
    for (const char* group : {"/params/", "/optim/m/", "/optim/v/"})
      for (const auto& t : whole.tensors) {
        const std::string name = group + t.name;
        if (!f.exists(name)) continue;
        std::string status = "OK", shape;
        try {
          const Block b = block_of(f, name);
          shape = shape_str(b.shape) + (b.shape == b.logical ? "" : " of " + shape_str(b.logical));
          require(b.logical == t.logical_shape, f.path(), ": dataset ", name, " has shape ",
                  shape_str(b.logical), " but the model config needs ", shape_str(t.logical_shape));
          read_block(f, name, buf);
        } catch (const std::exception& e) {
          status = std::string("BAD: ") + e.what();
          bad++;
        }
        checked++;
        if (status != "OK" || group[1] == 'p')
          os << "    " << name << " " << shape << " crc32 " << status << "\n";
      }
  }
  const std::string problem = verify_checkpoint(dir);
  if (!problem.empty() && bad == 0) {
    os << "  BAD: " << problem << "\n";
    bad++;
  }
  os << "  " << whole.total << " parameters; checksums: " << checked - bad << "/" << checked
     << " datasets OK\n";
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
                          const TrainState& state, int keep_last, const Grid& grid) const {
  save_checkpoint(step_dir(state.step), model, m, v, state, grid);
  if (grid.rank == 0) point_latest(state.step, keep_last);
  barrier(grid.world);
}

void RunCheckpoints::save(const Llama& model, const float* m, const float* v,
                          const TrainState& state, int keep_last) const {
  save_checkpoint(step_dir(state.step), model, m, v, state);
  point_latest(state.step, keep_last);
}

void RunCheckpoints::point_latest(int64_t step, int keep_last) const {
  const std::string dir = step_dir(step);
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
