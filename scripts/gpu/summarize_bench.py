#!/usr/bin/env python3
"""summarize_bench.py [--brief | --markdown] RESULTS.jsonl: bench/cuda/bench.py rows as a short
per-row listing plus the aggregates the targets of issue 11 are stated in (--brief, printed at
the end of a GPU-machine call), or as the markdown tables of docs/BENCHMARKS.md (--markdown).

Aggregates: small and heterogeneous block rows (users grid rows named small/hetero or with 16x16
or 32x32 blocks): hbsa vs upstream, min and geomean; ANCHORS grid: rows faster than the best peer
(upstream, FlexAttention measured in the same run), geomean speedup, and hbsa / ideal at
N = 16384; the previous library on the same inputs: prev_ms / hbsa_ms geomean."""
import json
import math
import sys


def load(path):
    return [json.loads(l) for l in open(path) if l.strip().startswith("{")]


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


def small_row(r):
    """The small and heterogeneous block rows of the users grid (16/32-row or 16-column blocks)."""
    return r["grid"] == "users" and any(w in r["name"] for w in ("small", "hetero", "16x16", "32x32"))


def aggregates(rows):
    out = []
    small = [r for r in rows if small_row(r) and "speedup_vs_upstream" in r]
    if small:
        s = [r["speedup_vs_upstream"] for r in small]
        out.append(f"small/heterogeneous block rows vs upstream: {len(small)} rows, min {min(s):.2f}x, "
                   f"geomean {geomean(s):.2f}x, rows >= 2x: {sum(x >= 2 for x in s)}")
    anchors = [r for r in rows if r["grid"] == "anchors" and "best_peer_ms" in r]
    if anchors:
        s = [r["speedup_vs_best_peer"] for r in anchors]
        out.append(f"anchors vs best peer: faster on {sum(x > 1 for x in s)}/{len(s)}, geomean "
                   f"{geomean(s):.2f}x, min {min(s):.2f}x")
        up = [r["speedup_vs_upstream"] for r in anchors if "speedup_vs_upstream" in r]
        if up:
            out.append(f"anchors vs upstream: geomean {geomean(up):.2f}x, min {min(up):.2f}x")
    big = [r for r in rows if r["grid"] == "anchors" and "N=16384" in r["name"] and "ideal_ms" in r]
    if big:
        s = [r["hbsa_ms"] / r["ideal_ms"] for r in big]
        out.append(f"anchors N=16384 hbsa/ideal: {min(s):.2f}-{max(s):.2f} (geomean "
                   f"{geomean(s):.2f}), rows within 1.25x: {sum(x <= 1.25 for x in s)}/{len(s)}")
    names = sorted({k[:-7] for r in rows for k in r if k.endswith("_vs_new")})
    for name in names:
        for grid in ("anchors", "users"):
            x = [r[f"{name}_vs_new"] for r in rows if f"{name}_vs_new" in r and r["grid"] == grid]
            if x:
                out.append(f"{name} / this build ({grid}, same inputs): geomean {geomean(x):.3f}x "
                           f"over {len(x)} rows (min {min(x):.3f}, max {max(x):.3f})")
    return out


def brief(rows):
    for r in rows:
        ideal = r.get("ideal_ms")
        variants = "".join(f"{k[:-3]} {r[k]:.3f} " for k in r
                           if k.endswith("_ms") and k[:-3] + "_vs_new" in r and k != "prev_ms")
        errors = "".join(f"{k}: {r[k]} " for k in r if k.endswith("_error"))[:100]
        print(f"{r['grid'][:3]} {r['name'][:34]:34s} {r.get('hbsa_kernel', '?'):9s} "
              f"ours {r['hbsa_ms']:8.3f} ({r['hbsa_tflops']:4.0f} TF) prev {fmt(r.get('prev_ms'))} "
              f"{variants}up {fmt(r.get('upstream_ms'))} flex {fmt(r.get('flex_ms'))} "
              f"ideal {fmt(ideal)}" + (f" ERR {errors}" if errors else ""))
    for line in aggregates(rows):
        print(line)


def markdown(rows):
    card = rows[0]["card"] if rows else "?"
    print(f"Card: {card}. Times in ms (median of triton.testing.do_bench); TF = effective "
          "TFLOP/s of hbsa; prev = the kernel before issue 11 on the same inputs.\n")
    for grid in ("anchors", "users"):
        sel = [r for r in rows if r["grid"] == grid]
        if not sel:
            continue
        print(f"\n### {grid}\n")
        print("| row | kernel | hbsa | TF | prev | upstream | Flex | cuDNN dense | ideal | vs best peer | vs upstream | hbsa/ideal |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in sel:
            shape = "" if grid == "anchors" else (
                f" ({r['dtype']} D{r['d']} {r['hq']}/{r['hk']}, {r['sq']}x{r['sk']}, "
                f"s{r['sparsity']}{', causal' if r['causal'] else ''})")
            ideal = r.get("ideal_ms")
            print(f"| {r['name']}{shape} | {r.get('hbsa_kernel', '?')} | {r['hbsa_ms']:.3f} | "
                  f"{r['hbsa_tflops']:.0f} | {fmt(r.get('prev_ms'))} | {fmt(r.get('upstream_ms'))} | "
                  f"{fmt(r.get('flex_ms'))} | {fmt(r.get('dense_ms'))} | {fmt(ideal, '.2f')} | "
                  f"{fmt(r.get('speedup_vs_best_peer'), '.2f')} | "
                  f"{fmt(r.get('speedup_vs_upstream'), '.2f')} | "
                  f"{fmt(r['hbsa_ms'] / ideal if ideal else None, '.2f')} |")
    print()
    for line in aggregates(rows):
        print(f"- {line}")


def main():
    mode = "--brief"
    args = sys.argv[1:]
    if args and args[0].startswith("--"):
        mode, args = args[0], args[1:]
    rows = [r for p in args for r in load(p)]
    (markdown if mode == "--markdown" else brief)(rows)


if __name__ == "__main__":
    main()
