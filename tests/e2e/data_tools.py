#!/usr/bin/python3
"""Test data and independent checks for `xwin data` (tests/e2e/data_*.sh).

  data_tools.py make DIR [N]              synthetic conversations, pairs, prompts, Xwin-Set JSONL
  data_tools.py roundtrip DIR [KIND...]   DIR/<kind>.jsonl equals DIR/<kind>_out.jsonl (all kinds
                                          by default); --no-system: the template has no default
                                          system prompt, so an empty system turn is no turn
  data_tools.py ids TOKENIZER H5 JSONL    the SFT ids and loss mask equal SentencePiece's ids of
                                          the Vicuna template string (independent of xwin)
  data_tools.py same A.h5 B.h5            two datasets hold the same arrays and counts
  data_tools.py conversations PATH N SEED large synthetic conversations (throughput)

Conversations are compared as lists of (role, text), whatever their JSON form.
"""
import json
import random
import sys

import h5py
import numpy as np

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant "
          "gives helpful, detailed, and polite answers to the user's questions.")
WORDS = ("the of and to in is was for on are with as I his they be at one have this from or had "
         "by hot word but what some we can out other were all there when up use your how said an "
         "each she which do their time if will way about many then them write would like so these "
         "her long make thing see him two has look more day could go come did number sound no most "
         "people my over know water than call first who may down side been now find Grüße naïve "
         "café 東京 данные 😀 🚀 x=1; def f(): return 42 3.14159 #include <vector> \\n").split(" ")
ROLE = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
        "system": "system"}


def text(rng, lo=1, hi=40):
    words = [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]
    s = " ".join(words)
    r = rng.random()
    if r < 0.1:
        s = s.replace(" ", "\n", 2)
    elif r < 0.15:
        s = "```\n    " + s + "\n```"
    return s


def conversation(rng, last="assistant", system=None):
    turns = []
    if system is None and rng.random() < 0.3:
        system = rng.choice(["", "You are terse.", "Answer in French. " + text(rng, 1, 8)])
    if system is not None:
        turns.append(("system", system))
    n = rng.randint(1, 3)
    for i in range(n):
        turns.append(("user", text(rng)))
        if i < n - 1 or last == "assistant":
            turns.append(("assistant", text(rng)))
    return turns


def as_json(turns, form):
    if form == "openai":
        return {"messages": [{"role": r, "content": t} for r, t in turns]}
    names = {"user": "human", "assistant": "gpt", "system": "system"}
    return {"conversations": [{"from": names[r], "value": t} for r, t in turns]}


def norm_turns(turns):
    return [(ROLE[t.get("from", t.get("role"))], t.get("value", t.get("content"))) for t in turns]


EMPTY_SYSTEM_IS_NONE = False


def norm_conv(rec):
    """(role, text) turns of a record; the template's default system prompt is no turn."""
    if "conversations" in rec or "messages" in rec:
        turns = norm_turns(rec.get("conversations", rec.get("messages")))
    elif isinstance(rec.get("prompt"), str):
        turns = [("user", rec["prompt"])]
    elif "prompt" in rec:
        turns = norm_turns(rec["prompt"])
    else:
        turns = []
    if turns and turns[0] == ("system", "" if EMPTY_SYSTEM_IS_NONE else SYSTEM):
        turns = turns[1:]
    return turns


def norm_reply(r):
    return r if isinstance(r, str) else norm_turns(r)[-1][1]


def norm_pair(rec):
    if "prompt" not in rec and "conversations" not in rec and "messages" not in rec:
        chosen, rejected = norm_turns(rec["chosen"]), norm_turns(rec["rejected"])
        return (norm_conv({"conversations": rec["chosen"][:-1]}), chosen[-1][1], rejected[-1][1],
                rec.get("margin"))
    return (norm_conv(rec), norm_reply(rec["chosen"]), norm_reply(rec["rejected"]),
            rec.get("margin"))


def norm_xwin_set(rec):
    return (norm_conv(rec), rec["responses"], [round(s, 4) for s in rec["scores"]],
            [round(s, 4) for s in rec.get("ref_logp", [])])


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def pair_record(rng, i):
    prompt = conversation(rng, last="user")
    chosen, rejected = text(rng), text(rng)
    form = i % 4
    if form == 0 and len(prompt) == 1:
        rec = {"prompt": prompt[0][1], "chosen": chosen, "rejected": rejected}
    elif form == 1:
        rec = {"prompt": as_json(prompt, "openai")["messages"],
               "chosen": [{"role": "assistant", "content": chosen}], "rejected": rejected}
    elif form == 2:
        rec = {"chosen": as_json(prompt + [("assistant", chosen)], "openai")["messages"],
               "rejected": as_json(prompt + [("assistant", rejected)], "openai")["messages"]}
    else:
        rec = dict(as_json(prompt, "sharegpt"), chosen=chosen, rejected=rejected)
    rec["margin"] = float(i % 3)
    return rec


def make(d, n):
    rng = random.Random(1234)
    write_jsonl(f"{d}/sft.jsonl", [as_json(conversation(rng), "sharegpt") for _ in range(n)])
    write_jsonl(f"{d}/sft_openai.jsonl", [as_json(conversation(rng), "openai") for _ in range(n)])
    write_jsonl(f"{d}/pairs.jsonl", [pair_record(rng, i) for i in range(n)])
    write_jsonl(f"{d}/prompts.jsonl",
                [as_json(conversation(rng, last="user"), "sharegpt") for _ in range(n)])
    xs = []
    for i in range(n):
        rec = dict(as_json(conversation(rng, last="user"), "openai"),
                   responses=[text(rng) for _ in range(4)],
                   scores=[round(rng.uniform(-3, 3), 3) for _ in range(4)])
        rec["ref_logp"] = [round(rng.uniform(-90, -1), 3) for _ in range(4)]
        xs.append(rec)
    write_jsonl(f"{d}/xwin_set.jsonl", xs)


def roundtrip(d, kinds):
    checks = {"sft": norm_conv, "sft_openai": norm_conv, "pairs": norm_pair,
              "prompts": norm_conv, "xwin_set": norm_xwin_set}
    for kind in kinds or checks:
        norm = checks[kind]
        a = [norm(r) for r in read_jsonl(f"{d}/{kind}.jsonl")]
        b = [norm(r) for r in read_jsonl(f"{d}/{kind}_out.jsonl")]
        assert len(a) == len(b), f"{kind}: {len(a)} records in, {len(b)} out"
        for i, (x, y) in enumerate(zip(a, b)):
            assert x == y, f"{kind} record {i}:\n in: {x}\nout: {y}"
        print(f"roundtrip {kind}: {len(a)} records equal")


def render(turns):
    """The Vicuna template string, EOS written as </s>; and each turn's prompt text."""
    system = SYSTEM
    if turns and turns[0][0] == "system":
        system, turns = turns[0][1], turns[1:]
    s, prompts = (system + " " if system else ""), []
    for i in range(0, len(turns), 2):
        s += "USER: " + turns[i][1] + " ASSISTANT:"
        prompts.append(s[s.rfind("</s>") + 4 if "</s>" in s else 0:])
        s += " " + turns[i + 1][1] + "</s>"
    return s, prompts


def check_ids(tokenizer, h5, jsonl):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=tokenizer)
    recs = [norm_turns(r.get("conversations", r.get("messages"))) for r in read_jsonl(jsonl)]
    with h5py.File(h5, "r") as f:
        tok, off, mask = f["tokens"][:], f["offsets"][:], f["loss_mask"][:]
    assert len(off) == len(recs) + 1, (len(off), len(recs))
    for r, turns in enumerate(recs):
        s, prompts = render(turns)
        ids, want_mask = [sp.bos_id()], [0]
        for seg, head in zip(s.split("</s>")[:-1], prompts):
            seg_ids, head_ids = sp.encode(seg), sp.encode(head)
            assert seg_ids[:len(head_ids)] == head_ids
            ids += seg_ids + [sp.eos_id()]
            want_mask += [0] * len(head_ids) + [1] * (len(seg_ids) - len(head_ids) + 1)
        got = tok[off[r]:off[r + 1]].tolist()
        assert got == ids, f"record {r}: ids differ from SentencePiece on the template string"
        assert mask[off[r]:off[r + 1]].tolist() == want_mask, f"record {r}: loss mask differs"
    print(f"ids: {len(recs)} records equal SentencePiece's ids of the template string")


def same(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names = []
        fa.visit(lambda n: names.append(n) if isinstance(fa[n], h5py.Dataset) else None)
        for n in names:
            assert np.array_equal(fa[n][()], fb[n][()]), f"{n} differs"
        for k in ("schema", "n_records", "n_kept", "n_truncated", "n_dropped", "tokenizer_hash"):
            assert fa.attrs[k] == fb.attrs[k], f"attribute {k}: {fa.attrs[k]} vs {fb.attrs[k]}"
    print(f"same: {a} == {b} ({len(names)} arrays)")


def conversations(path, n, seed):
    rng = random.Random(seed)
    write_jsonl(path, [as_json(conversation(rng, system=""), "sharegpt") for _ in range(n)])


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make":
        make(args[0], int(args[1]) if len(args) > 1 else 200)
    elif cmd == "roundtrip":
        EMPTY_SYSTEM_IS_NONE = "--no-system" in args
        roundtrip(args[0], [a for a in args[1:] if a != "--no-system"])
    elif cmd == "ids":
        check_ids(*args)
    elif cmd == "same":
        same(*args)
    elif cmd == "conversations":
        conversations(args[0], int(args[1]), int(args[2]))
    else:
        sys.exit(f"unknown command {cmd}")
