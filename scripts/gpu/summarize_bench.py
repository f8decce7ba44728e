#!/usr/bin/env python3
"""summarize_bench.py RESULTS.jsonl: the markdown table of docs/BENCHMARKS.md (GPU section).

Per row: hbsa ms and effective TFLOP/s; FlexAttention as measured in the same run; upstream
Triton as recorded in ANCHORS.md (not runnable offline); best peer = the faster of those two;
ratios hbsa/best peer and hbsa/ideal (ideal = allowed work at this run's cuDNN dense rate)."""
import json
import math
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("| N | causal | Sq x Sk | sparsity | hbsa ms | hbsa TFLOP/s | dense cuDNN ms | FlexAttention ms"
      " (this run) | upstream Triton ms (ANCHORS) | best peer ms | hbsa / best peer | ideal ms |"
      " hbsa / ideal | speedup vs upstream |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
logs_up, logs_best = [], []
for r in rows:
    flex = r.get("flex_ms")
    best = min(r["anchor_upstream_ms"], flex) if flex else r["anchor_upstream_ms"]
    su = r["anchor_upstream_ms"] / r["hbsa_ms"]
    logs_up.append(math.log(su))
    logs_best.append(math.log(best / r["hbsa_ms"]))
    print(f"| {r['n']} | {'yes' if r['causal'] else 'no'} | {r['sq']}x{r['sk']} | {r['sparsity']} | "
          f"{r['hbsa_ms']:.3f} | {r['hbsa_tflops']:.0f} | {r['dense_ms']:.2f} | "
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
