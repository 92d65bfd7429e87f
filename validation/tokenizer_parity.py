#!/usr/bin/python3
"""Tokenizer parity: xwin's token ids equal python3-sentencepiece's, and its decoding equals
sentencepiece's, for every MT-bench turn and reference answer and every AlpacaEval instruction
and output under ../shared/data, with the Llama-2 tokenizer.

usage: tokenizer_parity.py XWIN DATA_DIR WORKDIR
"""
import json
import os
import subprocess
import sys

import sentencepiece as spm


def texts(data):
    out = []
    with open(f"{data}/mt_bench/question.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            out += [(f"mt_bench q{q['question_id']} turn {i + 1}", t) for i, t in enumerate(q["turns"])]
    with open(f"{data}/mt_bench/reference_answer_gpt-4.jsonl", encoding="utf-8") as f:
        for line in f:
            a = json.loads(line)
            for c in a["choices"]:
                out += [(f"mt_bench answer {a['question_id']}", t) for t in c["turns"]]
    ae = f"{data}/alpaca_eval"
    for name in sorted(os.listdir(ae)):
        with open(f"{ae}/{name}", encoding="utf-8") as f:
            records = json.load(f)
        for i, r in enumerate(records):
            for key in ("instruction", "output", "output_1", "output_2"):
                if isinstance(r.get(key), str):
                    out.append((f"{name}[{i}].{key}", r[key]))
    return out


def run(xwin, args):
    subprocess.run([xwin] + args, check=True, stdout=subprocess.DEVNULL)


def main():
    xwin, data, work = sys.argv[1:4]
    model = f"{data}/llama2_tokenizer/tokenizer.model"
    if not os.path.exists(model):
        print(f"skip: no tokenizer at {model}")
        return
    os.makedirs(work, exist_ok=True)
    sp = spm.SentencePieceProcessor(model_file=model)
    items = texts(data)
    with open(f"{work}/texts.jsonl", "w", encoding="utf-8") as f:
        for _, t in items:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    run(xwin, ["tokenizer", "encode", "--tokenizer.model", model, "--in", f"{work}/texts.jsonl",
               "--out", f"{work}/ids.jsonl"])
    run(xwin, ["tokenizer", "decode", "--tokenizer.model", model, "--in", f"{work}/ids.jsonl",
               "--out", f"{work}/decoded.jsonl"])
    with open(f"{work}/ids.jsonl", encoding="utf-8") as f:
        got = [json.loads(line)["ids"] for line in f]
    with open(f"{work}/decoded.jsonl", encoding="utf-8") as f:
        decoded = [json.loads(line)["text"] for line in f]
    assert len(got) == len(items) == len(decoded), (len(got), len(items), len(decoded))
    bad, tokens = 0, 0
    for (where, t), ids, text in zip(items, got, decoded):
        want = sp.encode(t)
        tokens += len(want)
        if ids != want or text != sp.decode(want):
            bad += 1
            if bad <= 5:
                print(f"MISMATCH {where}: xwin {ids[:12]}... vs sentencepiece {want[:12]}...")
    n_mt = sum(w.startswith("mt_bench") for w, _ in items)
    print(f"tokenizer parity: {len(items)} texts ({n_mt} MT-bench, {len(items) - n_mt} AlpacaEval),"
          f" {tokens} tokens, {bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
