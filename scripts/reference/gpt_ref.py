#!/usr/bin/python3
"""Independent PyTorch reference of tracellm's GPT-2 (model/gpt.c), for tests and benchmarks.

  /usr/bin/python3 scripts/reference/gpt_ref.py fixture [OUT]   (re)writes test/fixtures/gpt_small.bin
  /usr/bin/python3 scripts/reference/gpt_ref.py bench --layers 4 --heads 4 --embd 256 --vocab 4096 \
        --batch 8 --seq-len 256 --threads 2 --steps 10                 prints tokens/s of training

The architecture is written out by hand (no nn.TransformerXXX) so that it is a second, independent
implementation: token + position embedding, pre-LayerNorm blocks with causal attention and a tanh
GELU MLP, final LayerNorm, logits through the tied embedding over a vocabulary padded to a multiple
of 64 (the loss only looks at the first V columns). Parameters are kept in the C layout order
(per-layer tensors stacked), so flattening them gives the C model's one contiguous buffer.

Fixture layout (little-endian): b"TLLMFIXT", int32 [L, NH, C, maxT, V, Vp, B, T, n_steps], then
float32 params[n], int32 inputs[B*T], int32 targets[B*T], float32 mask[B*T], float32 logits[B*T*Vp],
float32 loss, float32 grads[n], float32 masked_loss, float32 masked_grads[n], float32 step_losses[n_steps].
The 10 steps: AdamW lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices only,
global-norm clipping at 1.0, always on the unmasked batch.
"""
import argparse
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
         "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
DECAY = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}


def padded(v):
    return (v + 63) // 64 * 64


def make_params(L, NH, C, maxT, V, gen):
    Vp = padded(V)
    shapes = {"wte": (Vp, C), "wpe": (maxT, C), "ln1w": (L, C), "ln1b": (L, C), "qkvw": (L, 3 * C, C),
              "qkvb": (L, 3 * C), "attprojw": (L, C, C), "attprojb": (L, C), "ln2w": (L, C), "ln2b": (L, C),
              "fcw": (L, 4 * C, C), "fcb": (L, 4 * C), "fcprojw": (L, C, 4 * C), "fcprojb": (L, C),
              "lnfw": (C,), "lnfb": (C,)}
    p = {}
    for n in NAMES:
        t = torch.zeros(shapes[n])
        if n in ("ln1w", "ln2w", "lnfw"):
            t.fill_(1.0)
        elif n in DECAY:
            std = 0.02 / math.sqrt(2 * L) if n in ("attprojw", "fcprojw") else 0.02
            t.normal_(0.0, std, generator=gen)
            if n == "wte":
                t[V:] = 0.0
        elif n.endswith("b"):
            t.normal_(0.0, 0.02, generator=gen)  # nonzero biases so their gradients are checked in earnest
        p[n] = t.requires_grad_(True)
    return p


def forward(p, idx, NH):
    """idx (B,T) -> logits (B,T,Vp)"""
    B, T = idx.shape
    Vp, C = p["wte"].shape
    L = p["ln1w"].shape[0]
    hs = C // NH
    x = p["wte"][idx] + p["wpe"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], 1e-5)
        qkv = h @ p["qkvw"][l].t() + p["qkvb"][l]
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        x = x + y @ p["attprojw"][l].t() + p["attprojb"][l]
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], 1e-5)
        h = F.gelu(h @ p["fcw"][l].t() + p["fcb"][l], approximate="tanh")
        x = x + h @ p["fcprojw"][l].t() + p["fcprojb"][l]
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], 1e-5)
    return x @ p["wte"].t()


def loss_fn(logits, targets, V, mask=None):
    """mean cross-entropy over the first V columns and the unmasked tokens"""
    per_tok = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1), reduction="none")
    if mask is None:
        return per_tok.mean()
    m = mask.reshape(-1)
    return (per_tok * m).sum() / m.sum()


def flat(tensors):
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def make_optimizer(p, lr):
    decay = [p[n] for n in NAMES if n in DECAY]
    no_decay = [p[n] for n in NAMES if n not in DECAY]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8, foreach=False)


def fixture(out):
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    gen = torch.Generator().manual_seed(1234)
    L, NH, C, maxT, V, B, T, n_steps = 2, 4, 64, 64, 300, 4, 64, 10
    Vp = padded(V)
    p = make_params(L, NH, C, maxT, V, gen)
    params0 = flat(p[n] for n in NAMES)
    tokens = torch.randint(0, V, (B, T + 1), generator=gen)
    idx, targets = tokens[:, :T].contiguous(), tokens[:, 1:].contiguous()
    # an SFT-like mask: the first part of each row is "instruction" (0), the rest "answer" (1)
    mask = torch.zeros(B, T)
    for b in range(B):
        mask[b, 10 + 7 * b:] = 1.0

    logits = forward(p, idx, NH)
    loss = loss_fn(logits, targets, V)
    loss.backward()
    grads = flat(p[n].grad for n in NAMES)
    for n in NAMES:
        p[n].grad = None
    mloss = loss_fn(forward(p, idx, NH), targets, V, mask)
    mloss.backward()
    mgrads = flat(p[n].grad for n in NAMES)

    opt = make_optimizer(p, 1e-3)
    losses = []
    for step in range(n_steps):
        opt.zero_grad(set_to_none=True)
        l = loss_fn(forward(p, idx, NH), targets, V)
        l.backward()
        torch.nn.utils.clip_grad_norm_([p[n] for n in NAMES], 1.0)
        opt.step()
        losses.append(l.item())
        print(f"step {step}: loss {l.item():.6f}")

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "wb") as f:
        f.write(b"TLLMFIXT")
        f.write(struct.pack("<9i", L, NH, C, maxT, V, Vp, B, T, n_steps))
        f.write(params0.numpy().astype("<f4").tobytes())
        f.write(idx.numpy().astype("<i4").tobytes())
        f.write(targets.numpy().astype("<i4").tobytes())
        f.write(mask.numpy().astype("<f4").tobytes())
        f.write(logits.detach().numpy().astype("<f4").tobytes())
        f.write(struct.pack("<f", loss.item()))
        f.write(grads.numpy().astype("<f4").tobytes())
        f.write(struct.pack("<f", mloss.item()))
        f.write(mgrads.numpy().astype("<f4").tobytes())
        f.write(struct.pack(f"<{n_steps}f", *losses))
    os.replace(out + ".tmp", out)
    print(f"wrote {out}: {params0.numel()} params, loss {loss.item():.6f}, masked loss {mloss.item():.6f}")


def bench(a):
    """Training throughput of the same architecture, same shapes, same thread count."""
    torch.set_num_threads(a.threads)
    gen = torch.Generator().manual_seed(0)
    p = make_params(a.layers, a.heads, a.embd, a.seq_len, a.vocab, gen)
    opt = make_optimizer(p, 3e-4)
    data = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1), generator=gen)
    idx, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward(p, idx, a.heads), targets, a.vocab)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p[n] for n in NAMES], 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    dt = sorted(times)[len(times) // 2]  # median step, as scripts/bench_train_cpu.sh takes for tracellm
    print(f"pytorch {torch.__version__} threads {a.threads}: {dt * 1000:.1f} ms/step (median), "
          f"{a.batch * a.seq_len / dt:.0f} tokens/s, loss {loss.item():.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    fx = sub.add_parser("fixture")
    fx.add_argument("out", nargs="?", default="test/fixtures/gpt_small.bin")
    b = sub.add_parser("bench")
    for name, d in [("layers", 4), ("heads", 4), ("embd", 256), ("vocab", 4096), ("batch", 8), ("seq-len", 256),
                    ("threads", 2), ("steps", 10), ("warmup", 2)]:
        b.add_argument("--" + name, type=int, default=d)
    a = ap.parse_args()
    if a.cmd == "fixture":
        fixture(a.out)
    else:
        bench(a)


if __name__ == "__main__":
    sys.exit(main())
