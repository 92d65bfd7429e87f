"""Hugging Face model directories for testing `xwin import` / `xwin export`, independent of xwin.

A pure-Python safetensors reader and writer (the format: 8-byte little-endian header length,
JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, raw little-endian
data), a generator of tiny random HF Llama directories, directory comparison, corruptions for
the bad-input tests, and a float64 log-prob computation straight from the safetensors.

usage:
  hf_tools.py make DIR [--dtype fp32|bf16|fp16] [--shards N] [--seed S] [--tied] [--mha]
                       [--all-bits] [--inv-freq] [--value-head]
  hf_tools.py compare ORIG OUT [--widen | --narrow] [--max-shard BYTES] [--min-files N]
                               [--value-head]
  hf_tools.py corrupt SRC DST MODE
  hf_tools.py tokens JSONL [--vocab V] [--seed S]
  hf_tools.py logprobs HFDIR JSONL XWIN_LOGPROBS_H5 [--tol 1e-5]

Tensors are kept raw: F32 as float32, F16 as float16, BF16 as uint16 bit patterns, so that
comparisons are bit-exact (NaN payloads included).
"""

import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

NP_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
             "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8}
NAMES = {"fp32": "F32", "bf16": "BF16", "fp16": "F16"}
TORCH_DTYPE = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}
BITS = {"F32": np.uint32, "F16": np.uint16, "BF16": np.uint16}


# ----------------------------------------------------------------------------- safetensors


PT = {"format": "pt"}  # the __metadata__ transformers writes (and requires when loading)


def write_safetensors(path, tensors, metadata=PT):
    """tensors: {name: (dtype string, numpy array of the raw element type)}, written in order."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, arr) in tensors.items():
        raw = np.ascontiguousarray(arr, dtype=np.dtype(arr.dtype).newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path, strict=True):
    """Returns ({name: (dtype, array)}, metadata, header order by offset).

    strict: also check what the reference safetensors library checks (data offsets cover the
    data section contiguously, no gaps or overlaps), so files xwin writes must pass it.
    """
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    metadata = header.pop("__metadata__", None)
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        arr = np.frombuffer(data[base + begin:base + end], dtype=NP_DTYPES[e["dtype"]])
        tensors[name] = (e["dtype"], arr.reshape(e["shape"]))
    if strict:
        spans = sorted(tuple(e["data_offsets"]) for e in header.values())
        pos = 0
        for begin, end in spans:
            if begin != pos:
                raise ValueError(f"{path}: data offsets not contiguous at byte {pos}")
            pos = end
        if pos != len(data) - base:
            raise ValueError(f"{path}: data section is {len(data) - base} bytes, tensors {pos}")
        if n % 8:
            raise ValueError(f"{path}: header length {n} is not 8-byte aligned")
    return tensors, metadata


def model_files(d):
    """[(file name, {tensor: (dtype, array)}, metadata)] of an HF directory, and the index."""
    index_path = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(os.path.join(d, "model.safetensors")):
        t, m = read_safetensors(os.path.join(d, "model.safetensors"))
        return [("model.safetensors", t, m)], None
    with open(index_path) as f:
        index = json.load(f)
    files = sorted(set(index["weight_map"].values()))
    out = []
    for name in files:
        t, m = read_safetensors(os.path.join(d, name))
        out.append((name, t, m))
    return out, index


def load_model(d):
    """{name: (dtype, array)} over all files of an HF directory."""
    files, _ = model_files(d)
    out = {}
    for _, t, _ in files:
        out.update(t)
    return out


def to_float64(dtype, arr):
    if dtype == "BF16":
        return (arr.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return arr.astype(np.float64)


def widen_bits(dtype, arr):
    """Exact fp32 bit patterns of a F32/F16/BF16 tensor (numpy's float16 -> float32 is exact)."""
    if dtype == "BF16":
        return arr.astype(np.uint32) << 16
    return arr.astype(np.float32).view(np.uint32)


def narrow_bits(dtype, f32):
    """fp32 -> F16/BF16 bits, rounded to nearest even, by numpy (F16) and torch (BF16)."""
    if dtype == "F16":
        return f32.astype(np.float16).view(np.uint16)
    import torch

    bf = torch.from_numpy(np.ascontiguousarray(f32)).to(torch.bfloat16)
    return bf.view(torch.int16).numpy().view(np.uint16)


# ----------------------------------------------------------------------------- make


def hf_config(V, C, L, NH, NKV, F, T, dtype, tied, mha):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V,
           "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": NH, "num_key_value_heads": NKV,
           "max_position_embeddings": T, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
           "tie_word_embeddings": tied, "hidden_act": "silu", "bos_token_id": 1,
           "eos_token_id": 2, "torch_dtype": TORCH_DTYPE[dtype], "rope_scaling": None,
           "attention_bias": False, "initializer_range": 0.02, "pretraining_tp": 1,
           "use_cache": True}
    if mha:  # transformers' defaults apply: num_key_value_heads = num_attention_heads
        del cfg["num_key_value_heads"]
    return cfg


def encode(values, dtype):
    """float64 values -> raw array of dtype (round to nearest even)."""
    f32 = values.astype(np.float32)
    if dtype == "F32":
        return f32
    if dtype == "F16":
        return f32.astype(np.float16)
    u = f32.view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def make(args):
    dtype = NAMES[args.dtype]
    rng = np.random.default_rng(args.seed)
    # --all-bits: a 1024 x 64 embedding holds every 16-bit pattern once (F16/BF16) or random
    # 32-bit patterns (F32), NaNs, infinities and subnormals included.
    V, C, L, NH, F, T = (1024, 64, 2, 4, 96, 64) if args.all_bits else (97, 48, 2, 4, 128, 64)
    NKV = NH if args.mha else 2
    HD = C // NH
    shapes = {"model.embed_tokens.weight": (V, C)}
    for i in range(L):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "self_attn.q_proj.weight"] = (NH * HD, C)
        shapes[p + "self_attn.k_proj.weight"] = (NKV * HD, C)
        shapes[p + "self_attn.v_proj.weight"] = (NKV * HD, C)
        shapes[p + "self_attn.o_proj.weight"] = (C, NH * HD)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "mlp.gate_proj.weight"] = (F, C)
        shapes[p + "mlp.up_proj.weight"] = (F, C)
        shapes[p + "mlp.down_proj.weight"] = (C, F)
        if args.inv_freq:
            shapes[p + "self_attn.rotary_emb.inv_freq"] = (HD // 2,)
    shapes["model.norm.weight"] = (C,)
    if not args.tied:
        shapes["lm_head.weight"] = (V, C)
    if args.value_head:
        shapes["value_head.weight"] = (1, C)
        shapes["value_head.bias"] = (1,)
    tensors = {}
    for name, shape in shapes.items():
        if name.endswith("norm.weight"):
            values = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith("inv_freq"):
            values = 1.0 / 10000.0 ** (np.arange(0, HD, 2) / HD)
        else:  # O(1) activations and attention scores, so every part of the model matters
            values = rng.standard_normal(shape) / np.sqrt(shape[-1]) * 1.5
        tensors[name] = (dtype, encode(values, dtype))
    if args.all_bits:
        name = "model.embed_tokens.weight"
        if dtype == "F32":
            bits = rng.integers(0, 2**32, size=V * C, dtype=np.uint64).astype(np.uint32)
            bits[:8] = [0x7F800000, 0xFF800000, 0x7FC00001, 0xFFBFFFFF, 0x00000001, 0x80000000,
                        0x007FFFFF, 0x7F7FFFFF]
            tensors[name] = (dtype, bits.view(np.float32).reshape(V, C))
        else:
            bits = rng.permutation(2**16).astype(np.uint16)
            tensors[name] = (dtype, (bits if dtype == "BF16" else bits.view(np.float16)).reshape(V, C))

    os.makedirs(args.dir, exist_ok=True)
    with open(os.path.join(args.dir, "config.json"), "w") as f:
        json.dump(hf_config(V, C, L, NH, NKV, F, T, dtype, args.tied, args.mha), f, indent=2)
    names = list(tensors)
    if args.shards <= 1:
        write_safetensors(os.path.join(args.dir, "model.safetensors"), tensors)
        return
    weight_map, total = {}, 0
    for k in range(args.shards):
        file = f"model-{k + 1:05d}-of-{args.shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[k::args.shards]}  # interleaved: order not assumed
        write_safetensors(os.path.join(args.dir, file), part)
        for n, (_, arr) in part.items():
            weight_map[n] = file
            total += arr.nbytes
    with open(os.path.join(args.dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ----------------------------------------------------------------------------- compare

CONFIG_DEFAULTS = {"num_key_value_heads": None, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
                   "tie_word_embeddings": False}
CONFIG_KEYS = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads", "max_position_embeddings"] + list(CONFIG_DEFAULTS)


def effective(cfg, key):
    if key in cfg:
        return cfg[key]
    if key == "num_key_value_heads":
        return cfg["num_attention_heads"]
    return CONFIG_DEFAULTS[key]


def compare(args):
    problems = []
    with open(os.path.join(args.orig, "config.json")) as f:
        a_cfg = json.load(f)
    with open(os.path.join(args.out, "config.json")) as f:
        b_cfg = json.load(f)
    for key in CONFIG_KEYS:
        if effective(a_cfg, key) != b_cfg.get(key):
            problems.append(f"config {key}: {effective(a_cfg, key)} -> {b_cfg.get(key)}")
    if b_cfg.get("architectures") != ["LlamaForCausalLM"] or b_cfg.get("model_type") != "llama":
        problems.append("config: architectures/model_type are not LlamaForCausalLM/llama")

    a = load_model(args.orig)
    files, index = model_files(args.out)
    b = {}
    for name, t, meta in files:
        if meta is None or meta.get("format") != "pt":
            problems.append(f"{name}: __metadata__ lacks format 'pt' (transformers needs it)")
        size = os.path.getsize(os.path.join(args.out, name))
        if args.max_shard and len(files) > 1 and size > args.max_shard + 4096 and len(t) > 1:
            problems.append(f"{name}: {size} bytes exceeds the shard limit {args.max_shard}")
        for n in t:
            if index is not None and index["weight_map"].get(n) != name:
                problems.append(f"index maps {n} to {index['weight_map'].get(n)}, found in {name}")
        b.update(t)
    if len(files) < args.min_files:
        problems.append(f"{len(files)} safetensors file(s), expected at least {args.min_files}")
    if index is not None and set(index["weight_map"]) != set(b):
        problems.append("index weight_map does not list exactly the tensors in the shards")

    expect = {n for n in a if not n.endswith("rotary_emb.inv_freq")
              and (args.value_head or not n.startswith("value_head."))}
    if set(b) != expect:
        problems.append(f"tensors: missing {sorted(expect - set(b))}, extra {sorted(set(b) - expect)}")
    dtypes = {d for d, _ in b.values()}
    if len(dtypes) != 1 or TORCH_DTYPE[dtypes.pop()] != b_cfg.get("torch_dtype"):
        problems.append(f"torch_dtype {b_cfg.get('torch_dtype')} vs tensor dtypes "
                        f"{sorted({d for d, _ in b.values()})}")
    for n in sorted(expect & set(b)):
        (da, xa), (db, xb) = a[n], b[n]
        if xa.shape != xb.shape:
            problems.append(f"{n}: shape {xa.shape} -> {xb.shape}")
            continue
        if args.narrow:  # b must be a rounded to nearest even (any NaN for a NaN)
            want, got, what = narrow_bits(db, xa), xb.view(BITS[db]), f"{db}(rounded F32)"
            nan = np.isnan(to_float64(db, xb)) & np.isnan(xa.astype(np.float64))
            want, got = want[~nan], got[~nan]
            if da != "F32":
                problems.append(f"{n}: source dtype {da}, --narrow needs F32")
                continue
        elif args.widen:  # b must be the exact fp32 value of a
            want, got, what = widen_bits(da, xa), xb.view(np.uint32), f"F32(widened {da})"
            if db != "F32":
                problems.append(f"{n}: dtype {db}, expected F32")
                continue
        else:
            want, got, what = xa.view(BITS[da]), xb.view(BITS[db]), da
            if da != db:
                problems.append(f"{n}: dtype {da} -> {db}")
                continue
        diff = int(np.sum(want != got))
        if diff:
            problems.append(f"{n}: {diff} of {want.size} elements differ in their {what} bits")
    if os.path.exists(args.out.rstrip("/") + ".tmp"):
        problems.append(f"{args.out}.tmp was left behind")
    for p in problems:
        print("FAIL:", p)
    print(f"compare {args.orig} -> {args.out}: {len(b)} tensors in {len(files)} file(s), "
          f"{'bit-identical' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


# ----------------------------------------------------------------------------- corrupt


def corrupt(args):
    """Copies SRC to DST and damages it one way (see MODES)."""
    shutil.copytree(args.src, args.dst)
    d, mode = args.dst, args.mode
    victim = "model.layers.1.mlp.up_proj.weight"
    files, index = model_files(d)
    file = next(f for f, t, _ in files if victim in t)
    path = os.path.join(d, file)
    tensors, meta = read_safetensors(path)
    if mode == "missing":  # gone from the file (and from the index, when there is one)
        del tensors[victim]
        if index is not None:
            del index["weight_map"][victim]
    elif mode == "missing_in_shard":  # the index still names the shard, the shard lacks it
        del tensors[victim]
    elif mode == "shape":
        dt, arr = tensors[victim]
        tensors[victim] = (dt, arr.reshape(arr.shape[::-1]))
    elif mode == "int32":
        tensors[victim] = ("I32", np.zeros(tensors[victim][1].shape, dtype=np.int32))
    elif mode == "unexpected":
        tensors["model.layers.0.self_attn.q_proj.bias"] = ("F32", np.zeros(8, np.float32))
        if index is not None:
            index["weight_map"]["model.layers.0.self_attn.q_proj.bias"] = file
    elif mode == "missing_shard":
        os.remove(path)
        return 0
    elif mode in ("trunc_header", "trunc_data"):
        with open(path, "rb") as f:
            data = f.read()
        n = struct.unpack("<Q", data[:8])[0]
        cut = 8 + n // 2 if mode == "trunc_header" else len(data) - 100
        with open(path, "wb") as f:
            f.write(data[:cut])
        return 0
    elif mode.startswith("config_"):
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        if mode == "config_missing":
            del cfg["hidden_size"]
        elif mode == "config_rope_scaling":
            cfg["rope_scaling"] = {"type": "linear", "factor": 2.0}
        elif mode == "config_bad_json":
            with open(os.path.join(d, "config.json"), "w") as f:
                f.write('{"hidden_size": 48,')
            return 0
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        return 0
    else:
        raise SystemExit(f"corrupt: unknown mode {mode}")
    write_safetensors(path, tensors, meta)
    if index is not None:
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f)
    return 0


# ----------------------------------------------------------------------------- log-probs


def tokens(args):
    rng = np.random.default_rng(args.seed)
    with open(args.jsonl, "w") as f:
        for n in (5, 17, 33, 64, 2):
            f.write(json.dumps({"tokens": rng.integers(0, args.vocab, n).tolist()}) + "\n")
    return 0


def hf_logprobs(hf_dir, records):
    """Per-record float64 log p(token i | tokens < i), i >= 1, from the HF files alone."""
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import reference  # the float64 Llama forward in HF conventions (validation/reference.py)

    with open(os.path.join(hf_dir, "config.json")) as f:
        hf = json.load(f)
    cfg = {"vocab_size": hf["vocab_size"], "d_model": hf["hidden_size"],
           "n_layers": hf["num_hidden_layers"], "n_heads": hf["num_attention_heads"],
           "n_kv_heads": effective(hf, "num_key_value_heads"), "d_ff": hf["intermediate_size"],
           "norm_eps": effective(hf, "rms_norm_eps"), "rope_theta": effective(hf, "rope_theta"),
           "tie_embeddings": effective(hf, "tie_word_embeddings")}
    params = {n: torch.tensor(to_float64(d, a)) for n, (d, a) in load_model(hf_dir).items()}
    out = []
    with torch.no_grad():
        for toks in records:
            t = torch.tensor([toks], dtype=torch.long)
            logits, _ = reference.forward(cfg, params, t)
            logp = torch.log_softmax(logits[0, :-1], dim=-1)
            out.append(logp.gather(-1, t[0, 1:, None])[:, 0].numpy())
    return out


def logprobs(args):
    import h5py

    with open(args.jsonl) as f:
        records = [json.loads(line)["tokens"] for line in f if line.strip()]
    ref = hf_logprobs(args.hf_dir, records)
    with h5py.File(args.xwin_h5, "r") as f:
        lp, off = f["logprobs"][()], f["offsets"][()]
    got = [lp[off[r]:off[r + 1]].astype(np.float64) for r in range(len(records))]
    if [len(g) for g in got] != [len(r) for r in ref]:
        print(f"FAIL: record lengths {[len(g) for g in got]} vs {[len(r) for r in ref]}")
        return 1
    a, b = np.concatenate(got), np.concatenate(ref)
    rel = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
    ok = np.all(np.isfinite(a)) and rel <= args.tol
    print(f"logprobs {args.hf_dir}: {a.size} tokens, max|xwin - torch| / max|torch| = "
          f"{rel:.3g} ({'ok' if ok else 'FAIL'}, tol {args.tol:g})")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("--dtype", choices=list(NAMES), default="fp32")
    m.add_argument("--shards", type=int, default=1)
    m.add_argument("--seed", type=int, default=1)
    for flag in ("--tied", "--mha", "--all-bits", "--inv-freq", "--value-head"):
        m.add_argument(flag, action="store_true")
    c = sub.add_parser("compare")
    c.add_argument("orig")
    c.add_argument("out")
    c.add_argument("--widen", action="store_true")
    c.add_argument("--narrow", action="store_true")
    c.add_argument("--value-head", action="store_true")
    c.add_argument("--max-shard", type=int, default=0)
    c.add_argument("--min-files", type=int, default=1)
    k = sub.add_parser("corrupt")
    k.add_argument("src")
    k.add_argument("dst")
    k.add_argument("mode")
    t = sub.add_parser("tokens")
    t.add_argument("jsonl")
    t.add_argument("--vocab", type=int, default=97)
    t.add_argument("--seed", type=int, default=3)
    lp = sub.add_parser("logprobs")
    lp.add_argument("hf_dir")
    lp.add_argument("jsonl")
    lp.add_argument("xwin_h5")
    lp.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()
    if args.cmd == "make":
        make(args)
        return 0
    return {"compare": compare, "corrupt": corrupt, "tokens": tokens, "logprobs": logprobs}[
        args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
