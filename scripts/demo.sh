#!/usr/bin/env bash
# The main job on the embedded default deck (inputs/demo.ini): make the task data, initialise a
# model, score held-out data, finetune, and score again. Run from the repository root.
set -euo pipefail
XWIN=${XWIN:-build/xwin}
DECK=${DECK:-inputs/demo.ini}
mkdir -p run/demo
"$XWIN" data synth --config "$DECK"
"$XWIN" data synth --config "$DECK" --out run/demo/heldout.h5 --records 256 --seed 99
"$XWIN" init --config "$DECK"
"$XWIN" logprobs --ckpt run/demo/init --data run/demo/heldout.h5 --out run/demo/heldout_init.h5
"$XWIN" sft --config "$DECK" "$@"
"$XWIN" logprobs --ckpt run/demo/sft/final --data run/demo/heldout.h5 \
  --out run/demo/heldout_sft.h5
echo "demo: done; held-out loss before and after SFT is in the two 'logprobs:' lines above"
