#!/usr/bin/env python3
"""summarize_bench.py RESULTS.jsonl: the markdown table of docs/BENCHMARKS.md (GPU section).
(--compare A.jsonl B.jsonl: per-row B/A ratios; --pick DIR: which of two variants to keep.)

Per row: hbsa ms and effective TFLOP/s; FlexAttention as measured in the same run; upstream
Triton as recorded in ANCHORS.md (not runnable offline); best peer = the faster of those two;
ratios hbsa/best peer and hbsa/ideal (ideal = allowed work at this run's cuDNN dense rate)."""
import json
import math
import os
import re
import sys


def load(path):
    return [json.loads(l) for l in open(path) if l.strip()]


def key(r):
    return (r["n"], r["causal"], r["sq"], r["sk"], r["sparsity"])


def mean_ms(path):
    """hbsa_ms per row key, the mean over repeated runs appended to one file."""
    runs = {}
    for r in load(path):
        runs.setdefault(key(r), []).append(r["hbsa_ms"])
    return {k: sum(v) / len(v) for k, v in runs.items()}


def compare(path_a, path_b):
    """Per-row hbsa_ms ratio B/A over the rows both files hold; returns the geomean."""
    a, b = mean_ms(path_a), mean_ms(path_b)
    ratios = [(k, b[k] / a[k]) for k in b if k in a]
    for k, x in ratios:
        print(f"{k}: B/A {x:.4f}", file=sys.stderr)
    g = math.exp(sum(math.log(x) for _, x in ratios) / len(ratios)) if ratios else float("nan")
    print(f"B/A hbsa_ms geomean {g:.4f} over {len(ratios)} rows (min "
          f"{min(x for _, x in ratios):.4f}, max {max(x for _, x in ratios):.4f})", file=sys.stderr)
    return g


def passed(folder):
    """xseq.log and tests.log of one variant: every step exited 0 (and each was run)."""
    try:
        xseq, tests = (open(os.path.join(folder, f)).read() for f in ("xseq.log", "tests.log"))
    except OSError:
        return False
    codes = re.findall(r"^exit (\d+)$", xseq + tests, re.M)
    return (len(re.findall(r"^exit 0$", xseq, re.M)) >= 1 and len(codes) >= 6
            and all(c == "0" for c in codes))


if len(sys.argv) == 3 and sys.argv[1] == "--pick":
    # --pick DIR: DIR/a and DIR/b hold the two variants' xseq/tests logs, DIR/q their N = 4096
    # benches; prints the bundle suffix of the variant to keep ("_b" when B passes and is faster,
    # "" when A passes, "none" when neither does).
    d = sys.argv[2]
    ok_a, ok_b = passed(os.path.join(d, "a")), passed(os.path.join(d, "b"))
    g = compare(os.path.join(d, "q", "bench_quick_libhbsa_bench_capi.jsonl"),
                os.path.join(d, "q", "bench_quick_libhbsa_bench_capi_b.jsonl"))
    print(f"A passed {ok_a}, B passed {ok_b}", file=sys.stderr)
    print("_b" if ok_b and (g < 1.0 or not ok_a) else "" if ok_a else "none")
    sys.exit(0)
if len(sys.argv) == 4 and sys.argv[1] == "--compare":
    compare(sys.argv[2], sys.argv[3])
    sys.exit(0)

rows = load(sys.argv[1])
print("| N | causal | Sq x Sk | sparsity | hbsa ms | hbsa TFLOP/s | dense cuDNN ms | FlexAttention ms"
      " (this run) | upstream Triton ms (ANCHORS) | best peer ms | hbsa / best peer | ideal ms |"
      " hbsa / ideal | speedup vs upstream |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
logs_up, logs_best = [], []
for r in rows:
    flex = r.get("flex_ms")
    best = min(r["anchor_upstream_ms"], flex) if flex else r["anchor_upstream_ms"]
    su = r["anchor_upstream_ms"] / r["hbsa_ms"]
    dense = f"{r['dense_ms']:.2f}" if "dense_ms" in r else "-"  # absent in run 9's file
    logs_up.append(math.log(su))
    logs_best.append(math.log(best / r["hbsa_ms"]))
    print(f"| {r['n']} | {'yes' if r['causal'] else 'no'} | {r['sq']}x{r['sk']} | {r['sparsity']} | "
          f"{r['hbsa_ms']:.3f} | {r['hbsa_tflops']:.0f} | {dense} | "
          f"{flex:.2f} | {r['anchor_upstream_ms']:.2f} | {best:.2f} | {r['hbsa_ms'] / best:.2f} | "
          f"{r['ideal_ms']:.2f} | {r['hbsa_ms'] / r['ideal_ms']:.2f} | {su:.2f}x |")
n = len(rows)
print()
print(f"Geometric-mean speedup over upstream Triton (ANCHORS numbers): "
      f"{math.exp(sum(logs_up) / n):.3f}x over {n} rows; rows faster than upstream: "
      f"{sum(1 for x in logs_up if x > 0)}/{n}.")
print(f"Geometric-mean speedup over the best peer: {math.exp(sum(logs_best) / n):.3f}x; rows faster "
      f"than the best peer: {sum(1 for x in logs_best if x > 0)}/{n}.")
diffs = [r["max_abs_diff_vs_flex"] for r in rows if "max_abs_diff_vs_flex" in r]
if diffs:
    print(f"Max |hbsa - FlexAttention| over all rows' outputs: {max(diffs):.4g}.")
