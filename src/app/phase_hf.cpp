// xwin import / export: Hugging Face model directories (config.json + safetensors) <-> xwin
// checkpoints, so that xwin starts from released Llama weights and its results load in
// transformers and vLLM. The work is in io/hf; this file is the command line.
#include "app/cli.h"
#include "core/error.h"
#include "core/log.h"
#include "io/checkpoint.h"
#include "io/hf.h"

namespace xwin::cli {

Phase phase_import() {
  Phase p;
  p.name = "import";
  p.summary = "Hugging Face Llama directory (config.json + safetensors) -> xwin checkpoint";
  p.details =
      "Reads config.json and model.safetensors (or the shards listed in\n"
      "model.safetensors.index.json); F32, F16 and BF16 tensors convert exactly to fp32. The\n"
      "checkpoint records the source directory in its run_config.";
  p.add_options = [](po::options_description& d) {
    d.add_options()("hf", po::value<std::string>(), "Hugging Face model directory (required)")(
        "out", po::value<std::string>(), "checkpoint directory to write (required)");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string hf_dir = required(vm, "hf", p), out = required(vm, "out", p);
    if (log_rank() != 0) return 0;
    const Llama model = hf::import_model(hf_dir);
    TrainState st;
    st.run_config = {{"imported_from", hf_dir}};
    save_checkpoint(out, model, nullptr, nullptr, st);
    log0("import: %s -> %s", model.cfg.to_json().dump().c_str(), out.c_str());
    return 0;
  };
  return p;
}

static safetensors::DType parse_dtype(const std::string& s) {
  if (s == "fp32" || s == "float32") return safetensors::DType::F32;
  if (s == "bf16" || s == "bfloat16") return safetensors::DType::BF16;
  if (s == "fp16" || s == "float16") return safetensors::DType::F16;
  throw UsageError("--dtype '" + s + "' is not one of fp32, bf16, fp16");
}

Phase phase_export() {
  Phase p;
  p.name = "export";
  p.summary = "xwin checkpoint -> Hugging Face Llama directory (transformers, vLLM)";
  p.details =
      "Writes config.json (LlamaForCausalLM), generation_config.json, the weights as\n"
      "model.safetensors or, above --max_shard_size, model-0000K-of-0000N.safetensors with\n"
      "model.safetensors.index.json, and the --tokenizer files. The directory is written as\n"
      "DIR.tmp and renamed when complete.";
  p.add_options = [](po::options_description& d) {
    d.add_options()("ckpt", po::value<std::string>(), "checkpoint directory to read (required)")(
        "hf", po::value<std::string>(), "Hugging Face model directory to write (required)")(
        "dtype", po::value<std::string>()->default_value("fp32"),
        "weight dtype: fp32 (lossless), bf16 or fp16 (rounded to nearest even)")(
        "max_shard_size", po::value<std::string>()->default_value("5GB"),
        "largest safetensors file (KB/MB/GB: powers of 1000; KiB/MiB/GiB: of 1024)")(
        "tokenizer", po::value<std::vector<std::string>>()->composing(),
        "tokenizer file to copy (e.g. tokenizer.model), or a folder whose tokenizer files to "
        "copy; repeatable")(
        "value_head",
        po::value<bool>()->default_value(false, "false")->implicit_value(true, "true"),
        "also write a reward model's value_head.weight/bias (extra tensors HF ignores)")(
        "bos_token_id", po::value<int>()->default_value(1), "config.json bos_token_id")(
        "eos_token_id", po::value<int>()->default_value(2), "config.json eos_token_id");
  };
  p.run = [p](const po::variables_map& vm) {
    const std::string ckpt = required(vm, "ckpt", p), hf_dir = required(vm, "hf", p);
    hf::ExportOptions o;
    o.dtype = parse_dtype(vm["dtype"].as<std::string>());
    try {
      o.max_shard_bytes =
          hf::parse_size(vm["max_shard_size"].as<std::string>(), "--max_shard_size");
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    if (vm.count("tokenizer")) o.tokenizer_files = vm["tokenizer"].as<std::vector<std::string>>();
    o.value_head = vm["value_head"].as<bool>();
    o.bos_token_id = vm["bos_token_id"].as<int>();
    o.eos_token_id = vm["eos_token_id"].as<int>();
    if (log_rank() != 0) return 0;
    Llama model(checkpoint_config(ckpt));
    load_checkpoint(ckpt, model);
    hf::export_model(model, hf_dir, o);
    return 0;
  };
  return p;
}

}  // namespace xwin::cli
