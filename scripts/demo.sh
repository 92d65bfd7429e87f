#!/usr/bin/env bash
# The main job: the whole Xwin-LM recipe on the embedded default deck (inputs/demo.ini) — tasks
# with exact checkers, a tokenizer, SFT of a small Llama from scratch, Xwin-Pair judged by the
# oracle, the reward model, the Xwin-Set, rejection sampling, DPO and the evaluation of every
# stage. Run from the repository root; extra arguments go to `xwin pipeline` (e.g.
# --run_dir run/other --seed 2). Rerunning resumes where the last run stopped.
set -euo pipefail
XWIN=${XWIN:-build/xwin}
DECK=${DECK:-inputs/demo.ini}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
"$XWIN" pipeline --config "$DECK" "$@"
