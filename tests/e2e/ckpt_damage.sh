#!/usr/bin/env bash
# Damaged checkpoints: truncate the newest one's shard and flip bytes inside a tensor of the one
# before; --resume auto must warn about both and fall back to the newest sound one, --resume
# PATH on a damaged one must fail naming file and dataset, `xwin ckpt info` must say BAD, and
# h5py must read a sound checkpoint and confirm its CRC-32s without xwin.
# Usage: ckpt_damage.sh XWIN WORKDIR
set -euo pipefail
XWIN=$1 WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
"$XWIN" data synth --out data.h5 --records 256 >/dev/null
ARGS=(--data data.h5 --out run --model.vocab_size 24 --model.d_model 32 --model.n_layers 2
      --model.n_heads 4 --model.d_ff 64 --model.max_seq_len 32 --train.batch_size 4
      --train.micro_batch_size 4 --save-every 5)
"$XWIN" sft "${ARGS[@]}" --train.steps 20 >/dev/null
ls run/ckpt
[ "$(cat run/ckpt/latest)" = step-00000020 ]
shard20=run/ckpt/step-00000020/shard-pp0-tp0.h5
shard15=run/ckpt/step-00000015/shard-pp0-tp0.h5
truncate -s $(($(stat -c %s $shard20) / 2)) $shard20
/usr/bin/python3 - "$shard15" <<'PY'
import sys, h5py
path = sys.argv[1]
with h5py.File(path, "r") as f:
    off = f["optim/v/model.layers.1.mlp.up_proj.weight"].id.get_offset()
with open(path, "r+b") as f:
    f.seek(off + 40)
    b = f.read(4)
    f.seek(off + 40)
    f.write(bytes(x ^ 0x5A for x in b))
PY
if "$XWIN" ckpt info run/ckpt/step-00000015 >info.txt 2>&1; then
  echo "ckpt info passed a damaged checkpoint"; cat info.txt; exit 1; fi
grep -q "optim/v/model.layers.1.mlp.up_proj.weight .*BAD: .*CRC-32" info.txt

# --resume PATH on a damaged checkpoint: clear failure naming file and dataset.
set +e
"$XWIN" sft "${ARGS[@]}" --train.steps 25 --resume run/ckpt/step-00000015 >path.log 2>&1
code=$?
set -e
[ $code = 1 ] || { echo "want exit 1, got $code"; cat path.log; exit 1; }
grep -q "step-00000015/shard-pp0-tp0.h5: dataset /optim/v/model.layers.1.mlp.up_proj.weight fails its CRC-32" path.log

# --resume auto: skip 20 (truncated) and 15 (flipped), resume from 10.
"$XWIN" sft "${ARGS[@]}" --train.steps 25 --resume auto >auto.log 2>&1
grep -q "warning: skipping damaged checkpoint run/ckpt/step-00000020" auto.log
grep -q "warning: skipping damaged checkpoint run/ckpt/step-00000015" auto.log
grep -q "resumed from run/ckpt/step-00000010 at step 10" auto.log
[ "$(cat run/ckpt/latest)" = step-00000025 ]

# Readable without xwin: h5py opens a checkpoint and checks every CRC-32 with zlib.
/usr/bin/python3 - <<'PY'
import h5py, json, zlib, numpy as np
idx = json.load(open("run/ckpt/step-00000025/index.json"))
assert idx["step"] == 25 and idx["layout"] == {"pp": 1, "tp": 1}
n = 0
with h5py.File("run/ckpt/step-00000025/" + idx["shards"][0]["file"], "r") as f:
    assert f.attrs["step"] == 25 and f.attrs["schema"] == "xwin.checkpoint.shard"
    cfg = json.loads(f.attrs["model_config"])
    def check(name, obj):
        global n
        if isinstance(obj, h5py.Dataset):
            data = np.ascontiguousarray(obj[...], dtype="<f4")
            assert zlib.crc32(data.tobytes()) == int(obj.attrs["crc32"]), name
            assert list(obj.attrs["logical_shape"]) == list(obj.shape), name
            n += 1
    f.visititems(check)
assert n == 3 * (3 + 9 * cfg["n_layers"]), n  # embed, layers, norm, lm_head; x (params, m, v)
print(f"h5py: {n} datasets, CRC-32 verified with zlib")
PY
# And with h5dump, the HDF5 command-line tool.
step=$(h5dump -a /step run/ckpt/step-00000025/shard-pp0-tp0.h5)
grep -q "(0): 25" <<<"$step"
header=$(h5dump -H run/ckpt/step-00000025/shard-pp0-tp0.h5)  # not piped: grep -q would SIGPIPE it
grep -q 'DATASET "model.norm.weight"' <<<"$header"
echo "ckpt_damage: ok"
