#!/usr/bin/env bash
# SFT from random initialisation does real work on the reverse task (tests/e2e/reverse.ini):
# held-out loss after SFT is well below the loss of the initial model, read back with h5py
# (independently of xwin).
# Usage: demo_learns.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
DECK=$SRC/tests/e2e/reverse.ini
mkdir -p run/demo
"$XWIN" data synth --config "$DECK"
"$XWIN" data synth --config "$DECK" --out run/demo/heldout.h5 --records 256 --seed 99
"$XWIN" init --config "$DECK"
"$XWIN" logprobs --ckpt run/demo/init --data run/demo/heldout.h5 --out run/demo/heldout_init.h5
"$XWIN" sft --config "$DECK"
"$XWIN" logprobs --ckpt run/demo/sft/final --data run/demo/heldout.h5 --out run/demo/heldout_sft.h5
/usr/bin/python3 - <<'PY'
import h5py, json
def mean_nll(path):
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "xwin.logprobs", path
        return -f["sum_logp"][:].sum() / f["n_scored"][:].sum()
before, after = mean_nll("run/demo/heldout_init.h5"), mean_nll("run/demo/heldout_sft.h5")
lines = [json.loads(l) for l in open("run/demo/sft/metrics.jsonl")]
steps = [j for j in lines if "loss" in j]
evals = [j for j in lines if "eval" in j]
assert [j["step"] for j in evals] == [100, 200, 300], evals
assert evals[-1]["eval"]["heldout_loss"] < 0.5 * before, evals
print(f"held-out loss: {before:.4f} -> {after:.4f}; train loss {steps[0]['loss']:.4f} -> {steps[-1]['loss']:.4f} over {len(steps)} steps")
assert len(steps) == 300 and [s["step"] for s in steps] == list(range(1, 301))
assert after < 0.5 * before, "SFT did not learn the reverse task"
with h5py.File("run/demo/sft/final/shard-pp0-tp0.h5", "r") as f:
    cfg = json.loads(f.attrs["model_config"])
    assert f.attrs["step"] == 300 and cfg["n_kv_heads"] == 2
    assert f["params/model.embed_tokens.weight"].shape == (cfg["vocab_size"], cfg["d_model"])
    assert "optim/m/lm_head.weight" in f and "optim/v/lm_head.weight" in f
print("demo_learns: ok")
PY
