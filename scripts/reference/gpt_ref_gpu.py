#!/usr/bin/env python3
"""GPU PyTorch reference of tracellm's GPT-2 for throughput comparisons (scripts/bench_train_gpu.sh).

  python3 scripts/reference/gpt_ref_gpu.py --layers 12 --heads 12 --embd 768 --vocab 50257 \
      --batch 16 --seq-len 1024 --steps 10 --warmup 3 [--precision bf16|tf32] [--compile]

The same architecture and parameter layout as scripts/reference/gpt_ref.py (it imports its
parameter construction), written the way a fast PyTorch user would run it: attention through
F.scaled_dot_product_attention(is_causal=True) (flash attention on Hopper/Ampere), bf16 autocast
(or plain fp32 with TF32 matmuls, the precision tracellm's CUDA backend runs today), fused AdamW,
optionally torch.compile. Random tokens; the median step time is taken with CUDA events after the
warm-up steps. Prints one line: "pytorch ...: X ms/step (median), Y tokens/s, ...".
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt_ref import DECAY, NAMES, make_params  # noqa: E402


def forward(p, idx, NH, V):
    B, T = idx.shape
    Vp, C = p["wte"].shape
    L = p["ln1w"].shape[0]
    hs = C // NH
    x = p["wte"][idx] + p["wpe"][:T]
    for l in range(L):
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], 1e-5)
        qkv = F.linear(h, p["qkvw"][l], p["qkvb"][l])
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch < 2.0 (only for a CPU smoke test of this script)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
            att = att.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool, device=q.device)), float("-inf"))
            y = att.softmax(dim=-1) @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        x = x + F.linear(y, p["attprojw"][l], p["attprojb"][l])
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], 1e-5)
        h = F.gelu(F.linear(h, p["fcw"][l], p["fcb"][l]), approximate="tanh")
        x = x + F.linear(h, p["fcprojw"][l], p["fcprojb"][l])
    x = F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], 1e-5)
    logits = F.linear(x, p["wte"])
    return logits


def loss_fn(p, idx, targets, NH, V):
    logits = forward(p, idx, NH, V)
    return F.cross_entropy(logits[..., :V].reshape(-1, V).float(), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, d in [("layers", 12), ("heads", 12), ("embd", 768), ("vocab", 50257), ("batch", 16),
                    ("seq-len", 1024), ("steps", 10), ("warmup", 3)]:
        ap.add_argument("--" + name, type=int, default=d)
    ap.add_argument("--precision", choices=["bf16", "tf32"], default="bf16")
    ap.add_argument("--compile", action="store_true", help="torch.compile the loss function")
    ap.add_argument("--device", default="cuda", help="cuda (cpu only to smoke-test this script)")
    a = ap.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpt_ref_gpu: no CUDA device visible to PyTorch")
    dev = torch.device(a.device)
    cuda = a.device == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    gen = torch.Generator().manual_seed(0)
    p = make_params(a.layers, a.heads, a.embd, a.seq_len, a.vocab, gen)
    p = {n: t.detach().to(dev).requires_grad_(True) for n, t in p.items()}
    decay = [p[n] for n in NAMES if n in DECAY]
    no_decay = [p[n] for n in NAMES if n not in DECAY]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if cuda else {}))
    fn = loss_fn
    if a.compile:
        fn = torch.compile(loss_fn)
    data = torch.randint(0, a.vocab, (a.batch, a.seq_len + 1), device=dev)
    idx, targets = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    times = []
    t_start = time.perf_counter()
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(a.device, dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            loss = fn(p, idx, targets, a.heads, a.vocab)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p[n] for n in NAMES], 1.0)
        opt.step()
        if cuda:
            e1.record()
            torch.cuda.synchronize()
        if step >= a.warmup:
            times.append(e0.elapsed_time(e1) / 1000.0 if cuda else time.perf_counter() - t0)
    dt = sorted(times)[len(times) // 2]
    n_params = sum(t.numel() for t in p.values())
    print(f"pytorch {torch.__version__} {a.precision}{' compiled' if a.compile else ' eager'} sdpa fused-adamw: "
          f"{dt * 1000:.1f} ms/step (median), {a.batch * a.seq_len / dt:.0f} tokens/s, loss {loss.item():.4f}, "
          f"{n_params} params, peak memory {torch.cuda.max_memory_allocated() / 2**30 if cuda else 0:.1f} GiB, "
          f"total {time.perf_counter() - t_start:.0f}s")


if __name__ == "__main__":
    main()
