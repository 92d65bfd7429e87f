#!/usr/bin/env bash
# The alignment phases end to end on the reverse task (tokens: 0 pad, 1 BOS, 2 EOS, 3 SEP,
# 4.. symbols): SFT -> RM on correct-vs-corrupted pairs -> sample an Xwin-Set -> RS -> DPO.
# Checks with h5py: RM held-out accuracy, the Xwin-Set's shape and uniqueness, RS picks the
# best-scored response, DPO stores reference log-probs; sample and dpo killed with SIGKILL and
# restarted, and sample preempted with SIGTERM (exit 75) and rerun, give the same outputs as
# uninterrupted runs.
# Usage: phases_chain.sh XWIN WORKDIR
set -euo pipefail
XWIN=$1 WORK=$2
source "$(dirname "${BASH_SOURCE[0]}")/signal_lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
MODEL=(--model.vocab_size 12 --model.d_model 64 --model.n_layers 2 --model.n_heads 4
       --model.n_kv_heads 2 --model.d_ff 128 --model.max_seq_len 24)
"$XWIN" data synth --out train.h5 --records 2048 --symbols 8 --min_len 2 --max_len 6 >/dev/null
"$XWIN" sft --data train.h5 --out sft "${MODEL[@]}" --train.steps 250 --train.batch_size 16 \
  --train.micro_batch_size 16 --train.lr 3e-3 --train.warmup_steps 20 --train.log_every 50

/usr/bin/python3 - <<'PY'
import h5py, numpy as np
rng = np.random.default_rng(0)
def ragged(f, group, rows):
    f[f"{group}/tokens"] = np.concatenate(rows).astype(np.int32)
    f[f"{group}/offsets"] = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
def task():
    s = rng.integers(4, 12, rng.integers(2, 7))
    return np.concatenate([[1], s, [3]]), s
def pairs(path, n):
    P, C, R = [], [], []
    for _ in range(n):
        p, s = task()
        good = s[::-1].copy()
        # Rejected: a reply that stops early or runs on (the oracle's "wrong answer").
        bad = good[:-1] if rng.random() < 0.5 else np.append(good, rng.integers(4, 12))
        P.append(p); C.append(np.append(good, 2)); R.append(np.append(bad, 2))
    with h5py.File(path, "w") as f:
        ragged(f, "prompt", P); ragged(f, "chosen", C); ragged(f, "rejected", R)
        f.attrs["schema"] = "xwin.pairs"; f.attrs["version"] = 1
def prompts(path, n):
    with h5py.File(path, "w") as f:
        ragged(f, "prompt", [task()[0] for _ in range(n)])
        f.attrs["schema"] = "xwin.prompts"; f.attrs["version"] = 1
pairs("pairs.h5", 1200); pairs("pairs_heldout.h5", 200); prompts("prompts.h5", 24)
PY

"$XWIN" rm --data pairs.h5 --eval_data pairs_heldout.h5 --init sft/final --out rm \
  --train.steps 150 --train.batch_size 16 --train.micro_batch_size 8 --train.lr 2e-3 \
  --train.warmup_steps 10 --eval_every 50 --train.log_every 50

SAMPLE=(--prompts prompts.h5 --policy sft/final --rm rm/final --num_samples 8 --max_new_tokens 12
        --batch 16 --temperature 1.2 --seed 5)
"$XWIN" sample "${SAMPLE[@]}" --chunk 4 --out set_full.h5
# Best-of-N's draws: K independent ones, duplicates kept (same seed, so the same draw stream).
"$XWIN" sample "${SAMPLE[@]}" --chunk 4 --unique false --out set_iid.h5 >/dev/null
# Killed after a finished part, then restarted: no lost or duplicated work (the same as the
# uninterrupted set_c1). One prompt per part (--chunk 1) keeps the run going long enough after its
# first part to be cut short; a run that still finishes first is retried. Parts do not change the
# responses; the RM scores them in batches padded to the batch's longest, so scores and log-probs
# agree with --chunk 4's to rounding.
"$XWIN" sample "${SAMPLE[@]}" --chunk 1 --out set_c1.h5 >/dev/null
signal_after KILL 'compgen -G "set.h5.parts/part-*.h5"' '[ -e set.h5 ]' 'rm -rf set.h5 set.h5.parts' sample1.log \
  "$XWIN" sample "${SAMPLE[@]}" --chunk 1 --out set.h5
parts_before=$(ls set.h5.parts | grep -c '^part-.*\.h5$' || true)
"$XWIN" sample "${SAMPLE[@]}" --chunk 1 --out set.h5 >sample2.log
echo "sample: restarted with $parts_before finished part(s)"
# Preempted by SIGTERM (what Slurm sends at the time limit) after a finished part: it stops
# before its next chunk, keeps its parts, exits 75 and writes no set; the rerun completes it (the
# same as set_c1). A run that finished before the signal is retried.
signal_after TERM 'compgen -G "set_pre.h5.parts/part-*.h5"' '[ -e set_pre.h5 ]' \
  'rm -rf set_pre.h5 set_pre.h5.parts' pre1.log "$XWIN" sample "${SAMPLE[@]}" --chunk 1 --out set_pre.h5
[ $SIGNAL_EXIT = 75 ] || { echo "FAIL: sample preempted by SIGTERM exited $SIGNAL_EXIT, want 75"; cat pre1.log; exit 1; }
grep -E "sample: preempted: [0-9]+ of 24 chunks written" pre1.log ||
  { echo "FAIL: no preemption message"; cat pre1.log; exit 1; }
compgen -G "set_pre.h5.parts/part-*.h5" >/dev/null
"$XWIN" sample "${SAMPLE[@]}" --chunk 1 --out set_pre.h5 >pre2.log
# Prompts are sharded over data-parallel ranks; every sample depends only on (seed, prompt,
# attempt), so 2 ranks write the same Xwin-Set as 1 at the same thread count. (Across thread
# counts the float rounding differs, and a rounding difference can flip a sampled token.)
OMP_NUM_THREADS=1 "$XWIN" sample "${SAMPLE[@]}" --chunk 4 --out set_t1.h5 >/dev/null
OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  OMPI_MCA_rmaps_base_oversubscribe=1 mpiexec -n 2 "$XWIN" sample "${SAMPLE[@]}" --chunk 4 --out set_np2.h5 >/dev/null

"$XWIN" rs --data set.h5 --init sft/final --out rs --train.steps 30 --train.batch_size 8 \
  --train.micro_batch_size 8 --train.lr 1e-3 --train.warmup_steps 5 --train.log_every 10

DPO=(--data set.h5 --init sft/final --train.steps 30 --train.batch_size 8 --train.micro_batch_size 4
     --train.lr 5e-4 --train.warmup_steps 5 --eval_every 10 --eval_every_nth 6 --save-every 5)
"$XWIN" dpo "${DPO[@]}" --out dpo_full >/dev/null
signal_after KILL '[ -f dpo/ckpt/latest ] && [ "$(grep -c "\"loss\"" dpo/metrics.jsonl)" -ge 12 ]' \
  '[ -e dpo/final ]' 'rm -rf dpo' dpo1.log "$XWIN" dpo "${DPO[@]}" --out dpo
"$XWIN" dpo "${DPO[@]}" --out dpo >dpo2.log
grep -q "dpo: .* pairs with stored reference log-probs" dpo2.log
grep -q "resumed from" dpo2.log

/usr/bin/python3 - <<'PY'
import h5py, json, numpy as np
ev = [json.loads(l)["eval"] for l in open("rm/metrics.jsonl") if '"eval"' in l]
print("rm held-out:", ev[-1])
assert ev[-1]["accuracy"] >= 0.8, "reward model did not learn correct-vs-corrupted"
def rows(f, g):
    t, o = f[f"{g}/tokens"][...], f[f"{g}/offsets"][...]
    return [tuple(t[o[i]:o[i+1]]) for i in range(len(o) - 1)]
with h5py.File("set.h5") as f, h5py.File("set_c1.h5") as g, h5py.File("set_full.h5") as c4:
    assert f.attrs["schema"] == "xwin.xwin_set" and f.attrs["K"] == 8
    P = len(f["prompt/offsets"]) - 1
    assert P == 24 and f["scores"].shape == (24, 8) and f["policy_logp"].shape == (24, 8)
    names = ("prompt/tokens", "responses/tokens", "responses/offsets", "scores", "policy_logp",
             "duplicates")
    with h5py.File("set_pre.h5") as pre:
        for name in names:
            assert np.array_equal(pre[name][...], g[name][...]), f"preempted sample differs in {name}"
    for name in names:
        assert np.array_equal(f[name][...], g[name][...]), f"restarted sample differs in {name}"
        if name in ("scores", "policy_logp"):
            assert np.allclose(g[name][...], c4[name][...], rtol=1e-5, atol=1e-5), name
        else:
            assert np.array_equal(g[name][...], c4[name][...]), f"--chunk 1 differs in {name}"
    with h5py.File("set_np2.h5") as h, h5py.File("set_t1.h5") as t1:
        for name in names:
            assert np.array_equal(h[name][...], t1[name][...]), f"2-rank sample differs in {name}"
    resp = rows(f, "responses"); dups = f["duplicates"][...]
    for p in range(P):
        mine = resp[p * 8:(p + 1) * 8]
        assert len(set(mine)) == 8 or dups[p] > 0, p
    assert np.isfinite(f["scores"][...]).all() and (f["policy_logp"][...] <= 0).all()
    with h5py.File("set_iid.h5") as h:
        iid, idups, repeats = rows(h, "responses"), h["duplicates"][...], 0
        for p in range(P):
            draws = iid[p * 8:(p + 1) * 8]
            first = list(dict.fromkeys(draws))  # distinct draws, in draw order
            assert idups[p] == 8 - len(first), (p, idups[p], len(first))
            # The unique set keeps the first round's distinct draws, then re-draws the rest.
            assert resp[p * 8:p * 8 + len(first)] == first, f"unique set of prompt {p} is not the iid draws' distinct prefix"
            repeats += 8 - len(first)
        print(f"sample --unique false: {repeats} repeated draws kept over {P} prompts")
        assert repeats > 0, "no prompt drew the same response twice: the test shows nothing"
    scores = f["scores"][...]
    prompts = rows(f, "prompt")
with h5py.File("rs/rs_selected.h5") as s:
    sel = rows(s, "")
    for p in range(P):
        best = int(np.argmax(scores[p]))
        assert sel[p] == prompts[p] + resp[p * 8 + best], f"rs picked the wrong response for prompt {p}"
with h5py.File("dpo/dpo_pairs.h5") as d:
    n = len(d["prompt/offsets"]) - 1
    assert n > 0 and d["ref_logp_chosen"].shape == (n,) and (d["ref_logp_chosen"][...] < 0).all()
def losses(d):
    return {j["step"]: j["loss"] for j in map(json.loads, open(f"{d}/metrics.jsonl")) if "loss" in j}
a, b = losses("dpo_full"), losses("dpo")
assert sorted(b) == list(range(1, 31)) and all(a[s] == b[s] for s in a), "dpo resume differs"
with h5py.File("dpo_full/final/shard-pp0-tp0.h5") as x, h5py.File("dpo/final/shard-pp0-tp0.h5") as y:
    for k in x["params"]:
        assert np.array_equal(x["params"][k][...], y["params"][k][...]), k
dev = [json.loads(l)["eval"] for l in open("dpo/metrics.jsonl") if '"eval"' in l]
print("dpo held-out:", dev[-1])
print("phases_chain: ok")
PY
