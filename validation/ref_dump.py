"""Reference for `xwin dump`: logits, loss, gradients (and value) in float64.

usage: ref_dump.py CKPT DATA.h5 T OUT.h5
All records of DATA.h5 form one batch; gradients are of the mean masked CE loss.
"""

import argparse

import h5py
import numpy as np
import torch

import reference as ref


def dump(ckpt, data, T, out):
    cfg, params = ref.load_checkpoint(ckpt)
    tokens, targets, weights = ref.build_batch(ref.load_tokens(data), T)
    logits, hidden = ref.forward(cfg, params, tokens)
    loss = ref.masked_ce(logits, targets, weights)
    loss.backward()
    with h5py.File(out, "w") as f:
        f.create_dataset("logits", data=logits.detach().numpy())
        f.create_dataset("loss", data=np.float64(loss.item()))
        for name, p in params.items():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            f.create_dataset("grads/" + name, data=g.numpy())
        if cfg.get("value_head", False):
            f.create_dataset("value", data=ref.value(params, hidden).detach().numpy())
    return loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("data")
    ap.add_argument("seq_len", type=int)
    ap.add_argument("out")
    a = ap.parse_args()
    torch.set_num_threads(1)
    loss = dump(a.ckpt, a.data, a.seq_len, a.out)
    print(f"ref_dump: loss {loss:.12g} -> {a.out}")


if __name__ == "__main__":
    main()
