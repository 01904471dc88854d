#!/usr/bin/python3
"""Reference implementation of `tracellm prepare` in Python + pandas (Debian's python3-pandas).

Written separately from the C code, from the rules in docs/PREPARE.md, to check it: tests and
scripts/bench_prepare.sh run both and require the same graphs, the same split and the same drop
counts. Not part of the framework. Run with /usr/bin/python3.

  prepare_ref.py --input PATH... --out DIR [--val-fraction 0.1] [--seed 1337] [--max-depth 15]
                 [--keep-duplicates]
writes DIR/train.jsonl, DIR/val.jsonl and DIR/prepare_report.json like the C program (graph lines in
the same JSON form; files sorted by trace_id here, so compare them as sets), and
  prepare_ref.py --compare DIR_C DIR_REF
checks two such folders agree: the same graphs on the same side and the same counts for every reason.

Independence: gzip and tar are read with Python's gzip/tarfile modules, lines are classified with
pandas string operations and regular expressions, traces are grouped with pandas, and the validity
rules are re-implemented below. Only the two hash functions (FNV-1a + splitmix64, used for the v2021
service id and the split) are transcribed, because their outputs are part of the specification.
"""
import argparse
import gzip
import io
import json
import os
import re
import struct
import sys
import tarfile
import time

np = pd = None  # imported in main(): --compare does not need them (and starts faster without)

TYPES = ["http", "rpc", "mc", "db", "mq"]          # enum order of data/graph.h (used by the hash)
MISSING_NAME = ["", "UNKNOWN", "UNAVAILABLE", "(?)", "NaN", "nan", "None"]
MISSING_RT = ["", "None", "NaN", "nan", "null", "NULL"]
MAX_LINE, MAX_RPC_ID = 4096, 200
MALFORMED = ["field_count", "line_too_long", "non_utf8", "bad_timestamp", "bad_rpc_id", "bad_rt", "empty_traceid"]
V2022 = {"timestamp", "traceid", "service", "rpc_id", "rpctype", "um", "dm", "rt"}
V2021 = {"traceid", "timestamp", "rpcid", "um", "rpctype", "dm", "interface", "rt"}
IGNORED = {"uminstanceid", "dminstanceid", "interface", "", "Unnamed: 0"}
M64 = (1 << 64) - 1


# ---- the two hashes (util/rng.c) ----
def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def hash_bytes(b, seed):
    h = 0xCBF29CE484222325 ^ seed
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & M64
    return splitmix64(h)


def graph_hash(service, edges):
    h = hash_bytes(service.encode(), 0x5EED)
    for rpc, typ, src, dst, start, rt in edges:
        for s in (rpc, src, dst):
            h = hash_bytes(s.encode(), h)
        h = hash_bytes(struct.pack("<qqq", TYPES.index(typ), start, rt), h)
    return h


def v2021_service(dm, interface):
    h = hash_bytes(dm.encode(), 0x2021)
    h = hash_bytes(interface.encode(), h)
    return "S_%09d" % (h % 1000000000)


def goes_to_val(chash, seed, frac):
    u = hash_bytes(struct.pack("<Q", chash), (seed ^ 0x5B117) & M64)
    return (u >> 11) * 2.0 ** -53 < frac


# ---- inputs ----
def expand(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    if not f.startswith(".") and f.endswith((".csv", ".gz", ".tgz", ".tar")):
                        out.append(os.path.join(root, f))
        elif os.path.exists(p):
            out.append(p)
        else:
            sys.exit(f"prepare_ref: cannot open {p}")
    return out


def streams(path):
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) >= 512 and data[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            for m in tf:
                base = os.path.basename(m.name)
                if m.isreg() and m.name.endswith(".csv") and not base.startswith("._"):
                    yield f"{path}:{m.name}", tf.extractfile(m).read()
    else:
        yield path, data


def pad_ids(s):
    s = s.str.replace(r"^MS_([0-9]{1,4})$", lambda m: "MS_" + m.group(1).zfill(5), regex=True)
    return s.str.replace(r"^S_([0-9]{1,8})$", lambda m: "S_" + m.group(1).zfill(9), regex=True)


def read_stream(name, data, rep):
    """Classifies every line of one CSV stream; returns the kept rows as a DataFrame."""
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        return None
    header = lines[0].rstrip("\r ")
    if header.startswith("\ufeff"):
        header = header[1:]
    cols = header.split(",")
    names = set(cols)
    if V2022 <= names and not (names - V2022 - IGNORED):
        version = 2022
    elif V2021 <= names and "service" not in names and not (names - V2021 - IGNORED):
        version = 2021
    else:
        sys.exit(f"prepare_ref: {name}:1: unknown header: {header}")
    rep["streams_v%d" % version] += 1
    s = pd.Series(lines[1:], dtype=object)
    lineno = np.arange(2, len(s) + 2)
    rep["rows"]["read"] += len(s)
    if len(s) == 0:
        return None
    s = s.str.replace(r"\r$", "", regex=True)
    reason = pd.Series([None] * len(s), dtype=object)

    def mark(mask, why):
        m = mask & reason.isna()
        reason[m] = why

    nbytes = s.map(lambda x: len(x.encode("utf-8", "surrogateescape")))
    mark(nbytes > MAX_LINE, "line_too_long")
    mark(s.str.contains("[\udc80-\udcff]", regex=True), "non_utf8")
    mark(s.str.count(",") + 1 != len(cols), "field_count")
    ok = reason.isna()
    parts = s[ok].str.split(",", expand=True)
    if len(parts) == 0:
        parts = pd.DataFrame(columns=range(len(cols)))
    parts.columns = cols
    rpc_col = "rpc_id" if version == 2022 else "rpcid"
    good = pd.Series(False, index=s.index)
    good[ok] = True

    def sub(mask, why):  # mask over the parsed rows
        full = pd.Series(False, index=s.index)
        full[mask.index] = mask
        mark(full, why)

    sub(~parts["timestamp"].str.fullmatch(r"[+-]?[0-9]{1,18}"), "bad_timestamp")
    rpc = parts[rpc_col]
    sub(~(rpc.str.fullmatch(r"[0-9]+(\.[0-9]+)*") & (rpc.str.len() <= MAX_RPC_ID)), "bad_rpc_id")
    rt_missing = parts["rt"].isin(MISSING_RT)
    rt_ok = parts["rt"].str.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
    rt_val = pd.to_numeric(parts["rt"].where(rt_ok & ~rt_missing), errors="coerce")
    sub(~rt_missing & ~(rt_ok & (rt_val.abs() < 1e15)), "bad_rt")
    sub(parts["traceid"] == "", "empty_traceid")
    bad = reason.notna()
    for why, count in reason[bad].value_counts().items():
        rep["malformed"][why] += int(count)
    rep["rows"]["malformed"] += int(bad.sum())
    for i in np.flatnonzero(bad.values):
        if len(rep["malformed_examples"]) >= 10:
            break
        rep["malformed_examples"].append(f"{name}:{lineno[i]}: {reason.iloc[i]}")
    d = parts[~bad[parts.index]]
    rt_missing = rt_missing[d.index]
    typ_ok = d["rpctype"].isin(TYPES)
    um = d["um"].copy()
    if version == 2021:  # the entry call's caller is logged empty: it is the user
        um[(d[rpc_col] == "0") & um.isin(MISSING_NAME)] = "USER"
    name_ok = ~um.isin(MISSING_NAME) & ~d["dm"].isin(MISSING_NAME)
    rep["rows"]["filtered_type"] += int((~typ_ok).sum())
    rep["rows"]["unknown_name"] += int((typ_ok & ~name_ok).sum())
    rep["rows"]["missing_rt"] += int((typ_ok & name_ok & rt_missing).sum())
    keep = typ_ok & name_ok & ~rt_missing
    d, um = d[keep], um[keep]
    rt = d["rt"].astype(float).map(int)  # Python int(): truncation toward zero
    if version == 2021:
        rt = rt.abs()
    return pd.DataFrame({
        "traceid": d["traceid"], "service": pad_ids(d["service"]) if version == 2022 else "",
        "rpc": d[rpc_col], "type": d["rpctype"], "um": pad_ids(um), "dm": pad_ids(d["dm"]),
        "iface": d["interface"] if version == 2021 else "", "ts": d["timestamp"].astype(np.int64),
        "rt": rt.astype(np.int64), "version": version})


# ---- graphs ----
def rpc_key(r):
    return (tuple(int(c) for c in r.split(".")), r)


def check(edges, max_depth):
    """edges sorted by rpc_key; returns None or the first broken rule (data/graph.h order)."""
    by_id = {e[0]: e for e in edges}
    if "0" not in by_id:
        return "no_root"
    for rpc, typ, src, dst, start, rt in edges:
        if "." not in rpc:
            if rpc != "0":
                return "missing_parent"
            continue
        parent = by_id.get(rpc.rsplit(".", 1)[0])
        if parent is None:
            return "missing_parent"
        if parent[3] != src:
            return "src_dst_mismatch"
        if start + rt > parent[4] + parent[5]:
            return "child_outlives_parent"
    if max_depth > 0 and max(r.count(".") + 1 for r, *_ in edges) > max_depth:
        return "too_deep"
    return None


def main():
    global np, pd
    import numpy as np
    import pandas as pd
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--max-depth", type=int, default=15)
    ap.add_argument("--keep-duplicates", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    rep = {"streams_v2022": 0, "streams_v2021": 0,
           "rows": {k: 0 for k in ["read", "malformed", "filtered_type", "unknown_name", "missing_rt",
                                   "duplicate_rpc_id", "in_graphs", "kept"]},
           "malformed": {k: 0 for k in MALFORMED}, "malformed_examples": [],
           "graphs": {k: 0 for k in ["built", "no_root", "missing_parent", "src_dst_mismatch",
                                     "child_outlives_parent", "too_deep", "duplicate_graph", "kept", "train", "val"]}}
    frames = []
    for path in expand(a.input):
        try:
            for name, data in streams(path):
                f = read_stream(name, data, rep)
                if f is not None and len(f):
                    frames.append(f)
        except (EOFError, OSError, tarfile.TarError, zlib_error()) as e:
            sys.exit(f"prepare_ref: {path}: {e}")
    cols = ["traceid", "service", "rpc", "type", "um", "dm", "iface", "ts", "rt", "version"]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    # rule 2: sort by (timestamp, rpc_id) per trace, ties broken by the rest of the row; first per rpc_id
    df = df.sort_values(["traceid", "ts", "rpc", "type", "um", "dm", "rt", "service", "iface"], kind="mergesort")
    df["min_ts"] = df.groupby("traceid")["ts"].transform("min")
    df["svc"] = df.groupby("traceid")["service"].transform("min")
    first = ~df.duplicated(["traceid", "rpc"], keep="first")
    rep["rows"]["duplicate_rpc_id"] = int((~first).sum())
    df = df[first]
    rep["rows"]["in_graphs"] = len(df)
    df = df.assign(start=df["ts"] - df["min_ts"])
    graphs = []
    for tid, g in df.groupby("traceid", sort=True):
        rep["graphs"]["built"] += 1
        edges = sorted(zip(g["rpc"], g["type"], g["um"], g["dm"], g["start"].astype(int), g["rt"].astype(int)),
                       key=lambda e: rpc_key(e[0]))
        edges = [(r, t, s, d, int(st), int(rt)) for r, t, s, d, st, rt in edges]
        if g["version"].iloc[0] == 2021:
            root = g[g["rpc"] == "0"]
            svc = v2021_service(root["dm"].iloc[0], root["iface"].iloc[0]) if len(root) else ""
        else:
            svc = g["svc"].iloc[0]
        why = check(edges, a.max_depth)
        if why:
            rep["graphs"][why] += 1
            continue
        graphs.append((svc, tuple(edges), tid))
    # exact duplicates: same service and edges; the smallest trace_id stays
    graphs.sort()
    out = {"train": [], "val": []}
    prev = None
    for svc, edges, tid in graphs:
        if prev == (svc, edges) and not a.keep_duplicates:
            rep["graphs"]["duplicate_graph"] += 1
            continue
        prev = (svc, edges)
        side = "val" if goes_to_val(graph_hash(svc, edges), a.seed, a.val_fraction) else "train"
        out[side].append({"trace_id": tid, "service": svc, "edges": [list(e) for e in edges]})
        rep["graphs"][side] += 1
        rep["graphs"]["kept"] += 1
        rep["rows"]["kept"] += len(edges)
    os.makedirs(a.out, exist_ok=True)
    for side in ("train", "val"):
        with open(os.path.join(a.out, side + ".jsonl"), "w") as f:
            for g in sorted(out[side], key=lambda g: g["trace_id"]):
                f.write(json.dumps(g, separators=(",", ":"), ensure_ascii=False) + "\n")
    rep["seconds"] = round(time.time() - t0, 3)
    with open(os.path.join(a.out, "prepare_report.json"), "w") as f:
        json.dump(rep, f, indent=1)
    print(json.dumps({"rows": rep["rows"], "graphs": rep["graphs"]}))


def compare(ours, ref):
    """--compare DIR_C DIR_REF: same graphs on the same side, same drop counts. Exit 1 on a difference."""
    bad = []
    for side in ("train", "val"):
        def load(d):
            with open(os.path.join(d, side + ".jsonl")) as f:
                return {json.dumps(json.loads(line), sort_keys=True) for line in f if line.strip()}
        a, b = load(ours), load(ref)
        if a != b:
            bad.append(f"{side}.jsonl: {len(a - b)} graphs only in {ours}, {len(b - a)} only in {ref}; e.g. "
                       f"{sorted(a - b)[:1]} {sorted(b - a)[:1]}")
    ra = json.load(open(os.path.join(ours, "prepare_report.json")))
    rb = json.load(open(os.path.join(ref, "prepare_report.json")))
    for sect in ("rows", "graphs", "malformed"):
        for k, v in rb[sect].items():
            if ra[sect].get(k) != v:
                bad.append(f"{sect}.{k}: ours {ra[sect].get(k)} reference {v}")
    if ra["malformed_examples"] != rb["malformed_examples"]:
        bad.append(f"malformed_examples differ: {ra['malformed_examples'][:3]} vs {rb['malformed_examples'][:3]}")
    for line in bad:
        print("DIFF " + line)
    n = ra["graphs"]["kept"]
    print(f"{'agree' if not bad else 'DISAGREE'}: {ra['rows']['read']} rows, {n} graphs, "
          f"{ra['graphs']['train']} train / {ra['graphs']['val']} val")
    sys.exit(1 if bad else 0)


def zlib_error():
    import zlib
    return zlib.error


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3])
    main()
