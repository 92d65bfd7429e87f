// Checkpoint save/load speed for a model config, against plain sequential file I/O of the same
// bytes measured in the same process: MB/s of save_checkpoint (params + AdamW m, v, with CRC-32
// and HDF5) and load_checkpoint (read + verify), each followed by fsync so the disk is counted.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "io/checkpoint.h"

using namespace xwin;
namespace fs = std::filesystem;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static void fsync_path(const std::string& p) {
  int fd = open(p.c_str(), O_RDONLY);
  if (fd >= 0) fsync(fd), close(fd);
}

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp/xwin_ckpt_bench";
  ModelConfig c;  // the medium config of the foundation issue
  c.vocab_size = 8192, c.d_model = 512, c.n_layers = 8, c.n_heads = 8, c.n_kv_heads = 8;
  c.d_ff = 1536, c.max_seq_len = 512;
  Llama model(c);
  model.init_random(1);
  std::vector<float> m(model.layout.total, 1e-3f), v(model.layout.total, 1e-6f);
  const double mb = 3.0 * model.layout.total * sizeof(float) / 1e6;
  fs::remove_all(dir);
  fs::create_directories(dir);

  // Plain sequential write and read of the same number of bytes.
  const std::string raw = dir + "/raw.bin";
  double t = now();
  FILE* f = std::fopen(raw.c_str(), "wb");
  for (const auto* buf : {&model.params, &m, &v})
    std::fwrite(buf->data(), sizeof(float), buf->size(), f);
  std::fflush(f);
  fsync(fileno(f));
  std::fclose(f);
  const double raw_write = now() - t;
  t = now();
  f = std::fopen(raw.c_str(), "rb");
  std::vector<float> back(model.layout.total);
  for (int i = 0; i < 3; i++)
    if (std::fread(back.data(), sizeof(float), back.size(), f) != back.size()) return 1;
  std::fclose(f);
  const double raw_read = now() - t;

  TrainState st;
  t = now();
  save_checkpoint(dir + "/ckpt", model, m.data(), v.data(), st);
  fsync_path(dir + "/ckpt/shard-pp0-tp0.h5");
  const double save = now() - t;
  Llama loaded(c);
  t = now();
  load_checkpoint(dir + "/ckpt", loaded, m.data(), v.data());
  const double load = now() - t;

  std::printf("checkpoint of the medium config: %.1f MB (params + m + v)\n", mb);
  std::printf("  sequential write  %8.0f MB/s   xwin save  %8.0f MB/s   ratio %.2f\n",
              mb / raw_write, mb / save, raw_write / save);
  std::printf("  sequential read   %8.0f MB/s   xwin load  %8.0f MB/s   ratio %.2f\n",
              mb / raw_read, mb / load, raw_read / load);
  std::printf(
      "{\"mb\": %.1f, \"raw_write_mbs\": %.0f, \"save_mbs\": %.0f, \"raw_read_mbs\": %.0f, "
      "\"load_mbs\": %.0f}\n",
      mb, mb / raw_write, mb / save, mb / raw_read, mb / load);
  fs::remove_all(dir);
  return loaded.params == model.params ? 0 : 1;
}
