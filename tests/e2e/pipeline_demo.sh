#!/usr/bin/env bash
# xwin pipeline end to end on a reduced demo deck: every stage runs, the report and its numbers
# exist and are read back independently (h5py, json), the oracle's pairs are re-judged from the
# decoded text by the tasks' own answers, and a rerun resumes (every stage skipped) while a run
# killed in the middle of SFT resumes from its checkpoint to the same weights, and one preempted
# (SIGUSR1, exit 75) in the middle of the pairs stage's sampling reruns to the same pairs.
# Usage: pipeline_demo.sh XWIN SOURCE_DIR WORKDIR
set -euo pipefail
XWIN=$1 SRC=$2 WORK=$3
source "$SRC/tests/e2e/signal_lib.sh"
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
# One thread: this small model gains little from two, and one is robust on a busy machine.
export OMP_NUM_THREADS=1
SMALL=(--n_sft 3000 --sft_steps 300 --n_pairs 300 --pair_candidates 4 --rm_steps 60 --n_rl 24 --num_samples 16
       --n_eval 80 --n_rm_eval 60 --n_bon 16 --rs_steps 30 --dpo_steps 30 --rs_candidates 4
       --dpo_rejected_ablation median --max_new_tokens 16 --train.warmup_steps 5
       --train.log_every 50)
"$XWIN" pipeline --config "$SRC/inputs/demo.ini" --run_dir run "${SMALL[@]}" >run1.log 2>&1 ||
  { tail -30 run1.log; exit 1; }
grep -q "pipeline: finished" run1.log
# The pipeline's own [train] overrides reach every training stage; the stage's steps stay its
# own, and its warm-up is train.warmup_steps capped at a tenth of its steps (RS, DPO: 30 -> 3).
for sw in "sft 300 5" "rm 60 5" "rs 30 3" "dpo 30 3"; do
  read -r stage steps warmup <<<"$sw"
  grep -E "pipeline: xwin $stage .*--train.steps $steps .*--train.warmup_steps $warmup .*--train.log_every 50 " \
    run1.log >/dev/null ||
    { echo "FAIL: xwin $stage did not get --train.warmup_steps $warmup and --train.log_every 50"; exit 1; }
done
for s in prepare sft pairs rm sample rs dpo eval; do test -f run/stages/$s.done; done
# A rerun skips every finished stage.
"$XWIN" pipeline --config "$SRC/inputs/demo.ini" --run_dir run "${SMALL[@]}" >run2.log 2>&1
test "$(grep -c 'done before, skipped' run2.log)" -eq 8

# SFT killed (SIGKILL) after a checkpoint, then the command rerun: it resumes from the newest
# checkpoint and ends with the weights of the uninterrupted run.
RUNK=("$XWIN" pipeline --config "$SRC/inputs/demo.ini" --run_dir killed "${SMALL[@]}" --save_every 40)
"${RUNK[@]}" --stage prepare >/dev/null 2>&1
signal_after KILL '[ -f killed/sft/ckpt/latest ]' '[ -f killed/stages/sft.done ]' \
  'rm -rf killed/sft killed/stages/sft.done' killed1.log "${RUNK[@]}" --stage sft
"${RUNK[@]}" --stage sft >killed2.log 2>&1
grep -q "resumed from" killed2.log
# (tokenizer.model also records its output path, so compare the pieces and scores)
cmp run/tokenizer/tokenizer.vocab killed/tokenizer/tokenizer.vocab
# Preempted (SIGUSR1, as the Slurm templates forward it) while the pairs stage samples: exit 75,
# the finished parts kept and the stage not marked done; the rerun completes the stage with the
# uninterrupted run's pairs (checked below). A stage that finished before the signal is retried.
signal_after USR1 'compgen -G "killed/pairs/*.parts/part-*.h5"' '[ -f killed/stages/pairs.done ]' \
  'rm -rf killed/pairs killed/stages/pairs.done' pre1.log "${RUNK[@]}" --stage pairs
[ $SIGNAL_EXIT = 75 ] || { echo "FAIL: preempted pairs stage exited $SIGNAL_EXIT, want 75"; tail pre1.log; exit 1; }
grep -q "preempted" pre1.log && test ! -f killed/stages/pairs.done
"${RUNK[@]}" --stage pairs >pre2.log 2>&1 || { tail pre2.log; exit 1; }
# `xwin eval --suite tasks` scores any checkpoint: the RS model on the run's held-out tasks, with
# the deck's template and the pipeline's decoding settings, must get the pipeline's own numbers.
# SFT and DPO too: their per-task outcomes check the report's paired differences below.
for m in sft rs dpo; do
  "$XWIN" eval --suite tasks --config "$SRC/inputs/demo.ini" --ckpt run/$m/final \
    --tasks run/tasks/heldout.jsonl --tokenizer.model run/tokenizer/tokenizer.model \
    --max_new_tokens 16 --batch 64 --out ${m}_eval.jsonl >eval.log 2>&1 || { cat eval.log; exit 1; }
done
PY=/usr/bin/python3
$PY - <<'PYEOF'
import h5py, json, numpy as np, os, statistics
res = json.load(open("run/report/results.json"))
models = res["models"]
for m in ("sft", "rs", "dpo", "ablations/rs_n4", "ablations/dpo_median"):
    assert m in models and models[m]["n"] == 80, m
    fam = models[m]["by_family"]
    # The deck's six families (inputs/demo.ini [pipeline] families)
    assert sorted(fam) == ["add", "compare", "convert", "count", "format", "subtract"], fam
    assert sum(f["n"] for f in fam.values()) == 80, fam
    acc = sum(f["accuracy"] * f["n"] for f in fam.values()) / 80
    assert abs(acc - models[m]["accuracy"]) < 1e-9, (m, acc)
assert 0 <= res["rm"]["accuracy"] <= 1 and res["rm"]["pairs"] > 0
ev = [json.loads(l) for l in open("rs_eval.jsonl")]
assert ev[0]["suite"] == "tasks" and ev[0]["n"] == 80, ev[0]
for k in ("accuracy", "credit"):
    assert abs(ev[0][k] - models["rs"][k]) < 1e-12, (k, ev[0][k], models["rs"][k])
assert sum(r["correct"] for r in ev[1:]) == round(80 * models["rs"]["accuracy"]), ev[1:]
held = [json.loads(l) for l in open("run/tasks/heldout.jsonl")]
for r in ev[1:]:  # a reply that is exactly the task's own answer is graded correct
    if r["reply"].strip().rstrip(".") == held[r["task"]]["answer"]:
        assert r["correct"], r
bon = res["best_of_n"]
assert bon["n"] == [1, 4, 16], bon
# The oracle upper bound (any correct among the first N draws) can only grow with N.
assert all(a <= b for a, b in zip(bon["oracle"], bon["oracle"][1:])), bon
assert all(r <= o + 1e-12 for r, o in zip(bon["rm"], bon["oracle"])), bon
# Per family: the prompts add up, and each family's curves average (weighted by prompts) to the
# overall ones; a single draw is never better than any of 16; rankings are shares or absent.
bf = bon["by_family"]
assert sorted(bf) == ["add", "compare", "convert", "count", "format", "subtract"], bf
total = sum(f["prompts"] for f in bf.values())
assert total == 16, total  # --n_bon
for key in ("rm", "oracle"):
    for j in range(len(bon["n"])):
        avg = sum(f[key][j] * f["prompts"] for f in bf.values()) / total
        assert abs(avg - bon[key][j]) < 1e-9, (key, j, avg, bon[key][j])
for name, f in bf.items():
    assert 0 <= f["draw"] <= f["oracle"][-1] + 1e-12, (name, f)
    for k in ("rm_ranks_correct_above_wrong", "rm_ranks_correct_above_near_miss"):
        assert f[k] is None or 0 <= f[k] <= 1, (name, k, f[k])
# Per-task outcomes: the pipeline's match xwin eval's grading of each checkpoint, the best-of-16
# column covers the first 16 tasks (the best-of-N prompts) with the RM pick's accuracy, and the
# paired differences (mean, and mean +- 1.96 standard errors) are recomputed from them.
out = [json.loads(l) for l in open("run/report/outcomes.jsonl")]
assert [o["task"] for o in out] == list(range(80)), out[:3]
got = {}
for m in ("sft", "rs", "dpo"):
    ev_m = [json.loads(l) for l in open(f"{m}_eval.jsonl")][1:]
    got[m] = [bool(r["correct"]) for r in sorted(ev_m, key=lambda r: r["task"])]
    assert [o[m] for o in out] == got[m], m
picks = [o["best_of_16"] for o in out if "best_of_16" in o]
assert len(picks) == 16 and all("best_of_16" in o for o in out[:16]), out[:17]
assert abs(sum(picks) / 16 - bon["rm"][-1]) < 1e-12, (picks, bon["rm"])
def paired(a, b):
    d = [float(x) - float(y) for x, y in zip(a, b)]
    half = 1.96 * statistics.stdev(d) / len(d) ** 0.5
    return len(d), statistics.fmean(d), statistics.fmean(d) - half, statistics.fmean(d) + half
want = {"RS - SFT": paired(got["rs"], got["sft"]), "DPO - RS": paired(got["dpo"], got["rs"]),
        "best-of-16 - RS": paired(picks, got["rs"][:16])}
assert [d["name"] for d in res["differences"]] == list(want), res["differences"]
for d in res["differences"]:
    n, diff, lo, hi = want[d["name"]]
    assert d["n"] == n and abs(d["diff"] - diff) < 1e-12, (d, want[d["name"]])
    assert abs(d["ci95"][0] - lo) < 1e-9 and abs(d["ci95"][1] - hi) < 1e-9, (d, want[d["name"]])
log = open("run1.log").read()
for d in res["differences"]:
    line = "%-22s %+.1f points (95%% CI %+.1f to %+.1f; %d paired tasks)" % (
        d["name"], 100 * d["diff"], 100 * d["ci95"][0], 100 * d["ci95"][1], d["n"])
    assert line in log, line
report = open("run/report/report.md").read()
assert "| DPO - RS | 80 | %+.1f |" % (100 * res["differences"][1]["diff"]) in report, report
assert "Held-out oracle accuracy" in report and "Best of N" in report
assert "| family | prompts | one draw | RM pick of 16 |" in report, report
# Xwin-Pair: chosen and rejected differ, and the pair count matches the annotations journal.
with h5py.File("run/pairs/pairs.h5") as f:
    assert f.attrs["schema"] == "xwin.pairs"
    n = len(f["prompt/offsets"]) - 1
    skipped = int(f.attrs["n_skipped"])
    co, ro = f["chosen/offsets"][...], f["rejected/offsets"][...]
    ct, rt = f["chosen/tokens"][...], f["rejected/tokens"][...]
    for i in range(n):
        assert not np.array_equal(ct[co[i]:co[i+1]], rt[ro[i]:ro[i+1]]), i
# 4 draws a prompt, judged two by two in the order (0,1) (0,2) (0,3) (1,2) (1,3) (2,3): the draw
# with the most wins (the first of equals) makes one pair with each draw it beat.
ann = [json.loads(l) for l in open("run/pairs/pairs.h5.annotations.jsonl")]
matches = [(i, j) for i in range(4) for j in range(i + 1, 4)]
assert len(ann) == 300 * len(matches), len(ann)
expected = 0
for p in range(300):
    group = ann[p * len(matches):(p + 1) * len(matches)]
    assert len({a["prompt"] for a in group}) == 1, p
    wins = [0] * 4
    for (i, j), a in zip(matches, group):
        wins[i] += a["winner"] == "A"
        wins[j] += a["winner"] == "B"
    best = wins.index(max(wins))
    expected += sum((i == best and a["winner"] == "A") or (j == best and a["winner"] == "B")
                    for (i, j), a in zip(matches, group))
assert expected == n, (expected, n)
assert skipped == len(ann) - n, (skipped, len(ann), n)  # the verdicts that made no pair
assert res["rm"]["train_pairs"] == n and res["rm"]["pair_candidates"] == 4, res["rm"]
# Re-judge with the tasks' canonical answers: a reply equal to the answer must win or tie.
tasks = {t["messages"][-1]["content"]: t for t in map(json.loads, open("run/tasks/pairs.jsonl"))}
checked = 0
for a in ann:
    t = tasks[a["prompt"]]
    ok = [a[k].strip().rstrip(".") == t["answer"] for k in ("A", "B")]
    if ok[0] != ok[1]:
        assert a["winner"] == ("A" if ok[0] else "B"), a
        checked += 1
print(f"pipeline_demo: {n} pairs, {checked} decided by correctness re-checked; accuracies",
      {m: round(v["accuracy"], 3) for m, v in models.items()}, "RM", round(res["rm"]["accuracy"], 3))
with h5py.File("run/sft/final/shard-pp0-tp0.h5") as x, h5py.File("killed/sft/final/shard-pp0-tp0.h5") as y:
    for k in x["params"]:
        assert np.array_equal(x["params"][k][...], y["params"][k][...]), f"resumed SFT differs in {k}"
for f in ("pairs.h5", "rm_heldout.h5"):
    with h5py.File("run/pairs/" + f) as x, h5py.File("killed/pairs/" + f) as y:
        for g in ("prompt", "chosen", "rejected"):
            for k in ("tokens", "offsets"):
                assert np.array_equal(x[g][k][...], y[g][k][...]), f"preempted pairs differ: {f} {g}"
for png in ("accuracy.png", "best_of_n.png", "training.png"):
    p = "run/report/" + png
    if os.path.exists("/usr/bin/gnuplot"):
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n", p
PYEOF
echo "pipeline_demo: ok"
