#!/usr/bin/python3
"""Independent reference for `tracellm eval` (eval/metrics.c), written from docs/EVAL.md with numpy.

usage: eval_ref.py REAL.jsonl SYNTHETIC.jsonl [TRAIN.jsonl]
Prints a JSON object with the same keys as REPORT_DIR/metrics.json (the subset computed here);
test/e2e_eval.sh compares the two. Used only by tests, never by the framework.
"""
import json
import sys

import numpy as np


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def depth_of(rpc_id):
    return rpc_id.count(".") + 1


def kl_top(real, syn, top=100, alpha=0.5):
    def counts(graphs):
        c = {}
        for g in graphs:
            for rpc, typ, src, dst, _, _ in g["edges"]:
                k = f"{src}\x1f{dst}\x1f{typ}"
                c[k] = c.get(k, 0) + 1
        return c
    cr, cs = counts(real), counts(syn)
    ranked = sorted(cr, key=lambda k: (-cr[k], k.encode()))[:top]
    r = np.array([cr[k] for k in ranked], dtype=float)
    s = np.array([cs.get(k, 0) for k in ranked], dtype=float)
    p = r / r.sum()
    zeros = (s == 0).sum()
    q = np.where(s > 0, s, alpha) / (s.sum() + alpha * zeros)
    return float((p * np.log(p / q)).sum())


def heavy_hitters(real, syn, ks=(10, 20, 50, 100, 200, 500)):
    def counts(graphs):
        c = {}
        for g in graphs:
            for e in g["edges"]:
                c[e[3]] = c.get(e[3], 0) + 1
        return c
    cr, cs = counts(real), counts(syn)
    rr = sorted(cr, key=lambda k: (-cr[k], k.encode()))
    rs = sorted(cs, key=lambda k: (-cs[k], k.encode()))
    out = {}
    for k in ks:
        keff = min(k, len(rr))
        out[str(k)] = len(set(rr[:keff]) & set(rs[:k])) / keff if keff else 0.0
    return out


def quantities(graphs):
    indeg, outdeg, rt, size, depth = [], [], [], [], []
    for g in graphs:
        pairs = {(e[2], e[3]) for e in g["edges"]}
        nodes = {n for p in pairs for n in p if n != "USER"}
        for n in sorted(nodes):
            indeg.append(sum(1 for a, b in pairs if b == n))
            outdeg.append(sum(1 for a, b in pairs if a == n))
        rt += [e[5] for e in g["edges"]]
        size.append(len(g["edges"]))
        depth.append(max(depth_of(e[0]) for e in g["edges"]) if g["edges"] else 0)
    return {"in_degree": indeg, "out_degree": outdeg, "response_time": rt, "graph_size": size, "depth": depth}


def w1(a, b):
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    xs = np.unique(np.concatenate([a, b]))
    fa = np.searchsorted(a, xs[:-1], side="right") / len(a)
    fb = np.searchsorted(b, xs[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * np.diff(xs)))


def memo(train, syn):
    def key(g, times):
        edges = sorted(g["edges"], key=lambda e: [int(x) for x in e[0].split(".")] + [0])
        return (g["service"], tuple((e[0], e[1], e[2], e[3]) + ((e[4], e[5]) if times else ()) for e in edges))
    exact = {key(g, True) for g in train}
    struct = {key(g, False) for g in train}
    return (sum(key(g, True) in exact for g in syn) / len(syn), sum(key(g, False) in struct for g in syn) / len(syn))


def main():
    real, syn = load(sys.argv[1]), load(sys.argv[2])
    qr, qs = quantities(real), quantities(syn)
    emd, emd_norm = {}, {}
    for k in qr:
        x = np.asarray(qr[k], float)
        scale = float(np.mean(np.abs(x - np.median(x))))
        emd[k] = w1(qr[k], qs[k])
        emd_norm[k] = emd[k] / (scale if scale > 0 else 1.0)
    out = {"kl_top100": kl_top(real, syn), "heavy_hitters": heavy_hitters(real, syn), "emd": emd, "emd_normalized": emd_norm}
    if len(sys.argv) > 3:
        out["memorization_exact"], out["memorization_structure"] = memo(load(sys.argv[3]), syn)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
