#!/usr/bin/env python3
"""DPO >= RS > SFT on the mean held-out accuracy of the reduced-deck seeds
(pipeline_ordering.sh writes each seed's ordering.json). Usage: pipeline_ordering_mean.py FILE..."""
import json
import sys

runs = [json.load(open(f)) for f in sys.argv[1:]]
mean = {m: sum(r[m] for r in runs) / len(runs) for m in ("sft", "rs", "dpo")}
print(f"mean over {len(runs)} seeds: SFT {mean['sft']:.2f}%  RS {mean['rs']:.2f}%  "
      f"DPO {mean['dpo']:.2f}%")
bad = []
if not mean["rs"] >= mean["sft"] + 3:
    bad.append("RS is not 3 points above SFT")
if not mean["dpo"] >= mean["rs"]:
    bad.append("DPO is below RS")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
