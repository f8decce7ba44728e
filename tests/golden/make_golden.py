#!/usr/bin/env python3
"""make_golden.py: writes, checks and cross-checks the repository's golden cases.

    make_golden.py [--out DIR]          write every case of specs.py (default: cases/ here),
                                        removing case folders that no spec names
    make_golden.py --check DIR          regenerate every case in memory and compare with DIR:
                                        case.json and the inputs must be identical, out/lse
                                        equal to within 2 float32 ulps (float64 sums may round
                                        differently on another BLAS); exit 1 on any difference
    make_golden.py --cross-check DIR    run the oracle on the inputs of another folder in the
                                        golden format (e.g. ../shared/golden) and compare with
                                        its out/lse; report, per case name that specs.py also
                                        has, whether the spec coincides; exit 1 on a mismatch

The format is README.md's. Inputs are standard normal float64 draws from a numpy RandomState
(a stream NumPy keeps fixed), rounded once to the case's dtype (bf16: float64 -> float32 ->
bf16, round to nearest even, stored as uint16 bit patterns); the oracle (oracle.py) then runs
in float64 on exactly the rounded values, and its result is rounded once to float32.
Needs only NumPy.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402
from specs import SPECS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = ("q", "k", "v", "block_mask", "out", "lse")
STORAGE = {"fp16": np.float16, "bf16": np.uint16, "fp32": np.float32}


# ---- dtype storage -------------------------------------------------------------------------

def bf16_bits_from_float64(x):
    """float64 -> float32 -> bf16 (round to nearest, ties to even), as uint16 bit patterns."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def float64_from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def to_storage(x, dtype):
    if dtype == "bf16":
        return bf16_bits_from_float64(x)
    return x.astype(STORAGE[dtype])


def from_storage(a, dtype):
    if dtype == "bf16":
        return float64_from_bf16_bits(a)
    return a.astype(np.float64)


# ---- one case ------------------------------------------------------------------------------

def make_case(spec):
    """Returns (meta for case.json, {file name: array}) for one spec."""
    dtype, hq, hk, d = spec["dtype"], spec["hq"], spec["hk"], spec["d"]
    sq, sk, lq, lk = spec["sq"], spec["sk"], spec["lq"], spec["lk"]
    assert len(lq) == len(lk) and hq % hk == 0 and sq > 0 and sk > 0, spec["name"]
    cu_q = [0] + list(np.cumsum(lq).tolist())
    cu_k = [0] + list(np.cumsum(lk).tolist())
    nq_blocks = oracle.block_counts(lq, sq)
    nk_blocks = oracle.block_counts(lk, sk)
    nq, nk = sum(nq_blocks), sum(nk_blocks)
    rng = np.random.RandomState(spec["seed"])
    q = to_storage(rng.standard_normal((cu_q[-1], hq, d)), dtype)
    k = to_storage(rng.standard_normal((cu_k[-1], hk, d)), dtype)
    v = to_storage(rng.standard_normal((cu_k[-1], hk, d)), dtype)
    mask = (rng.random_sample((hk, nq, nk)) < spec["density"]).astype(np.uint8)
    if spec.get("force_first", True):
        q0 = k0 = 0
        for b in range(len(lq)):
            if nk_blocks[b] > 0:
                mask[:, q0:q0 + nq_blocks[b], k0] = 1
            q0 += nq_blocks[b]
            k0 += nk_blocks[b]
    for g, i in spec.get("clear_rows", []):
        mask[g, i, :] = 0
    scale_used = oracle.default_scale(d) if spec["scale"] is None else float(spec["scale"])
    out, lse = oracle.attention(from_storage(q, dtype), from_storage(k, dtype),
                                from_storage(v, dtype), cu_q, cu_k, mask.astype(bool), sq, sk,
                                spec["causal"], scale_used)
    empty = int(np.isneginf(lse).sum())
    for e in spec.get("expect", []):
        assert e in ("empty_rows", "no_empty_rows"), e
        assert (empty > 0) == (e == "empty_rows"), "%s: expected %s, got %d empty rows" % (
            spec["name"], e, empty)
    meta = {
        "dtype": dtype, "hq": hq, "hk": hk, "d": d, "sq": sq, "sk": sk,
        "causal": spec["causal"], "scale": spec["scale"], "scale_used": scale_used,
        "lq": list(lq), "lk": list(lk), "cu_q": cu_q, "cu_k": cu_k,
        "density": spec["density"], "mask_shape": [hk, nq, nk],
        "rng_seed": spec["seed"], "force_first": spec.get("force_first", True),
        "empty_rows": empty,
        "generator": "tests/golden/make_golden.py (specs.py, oracle.py)",
    }
    arrays = {"q": q, "k": k, "v": v, "block_mask": mask,
              "out": out.astype(np.float32), "lse": lse.astype(np.float32)}
    return meta, arrays


def case_json_text(meta):
    return json.dumps(meta, indent=1) + "\n"


def write_case(root, name, meta, arrays):
    path = os.path.join(root, name)
    os.makedirs(path, exist_ok=True)
    for f in FILES:
        np.save(os.path.join(path, f + ".npy"), arrays[f], allow_pickle=False)
    with open(os.path.join(path, "case.json"), "w") as fh:
        fh.write(case_json_text(meta))


def case_dirs(root):
    return sorted(n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "case.json")))


# ---- comparisons ---------------------------------------------------------------------------

def ulp_diff_ok(got, want, ulps):
    """Same shape, same -inf/0 pattern of the expected; finite values within `ulps` f32 ulps."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return False, "shape/dtype %s %s vs %s %s" % (got.shape, got.dtype, want.shape, want.dtype)
    inf_g, inf_w = np.isneginf(got), np.isneginf(want)
    if not np.array_equal(inf_g, inf_w):
        return False, "-inf pattern differs"
    fin = ~inf_w
    diff = np.abs(got[fin].astype(np.float64) - want[fin].astype(np.float64))
    tol = ulps * np.spacing(np.abs(want[fin]).astype(np.float32)).astype(np.float64)
    bad = int((diff > tol).sum())
    worst = float(diff.max()) if diff.size else 0.0
    return bad == 0, "max |diff| %.3g%s" % (worst, ", %d beyond %d ulps" % (bad, ulps) if bad else "")


def check(root):
    """Regenerates every spec and compares with the committed folder `root`."""
    failures = []
    have, want = set(case_dirs(root)), {s["name"] for s in SPECS}
    for n in sorted(have - want):
        failures.append("%s: folder without a spec" % n)
    for spec in SPECS:
        name = spec["name"]
        if name not in have:
            failures.append("%s: spec without a folder" % name)
            continue
        meta, arrays = make_case(spec)
        with open(os.path.join(root, name, "case.json")) as fh:
            if fh.read() != case_json_text(meta):
                failures.append("%s: case.json differs" % name)
        notes = []
        for f in FILES:
            got = np.load(os.path.join(root, name, f + ".npy"), allow_pickle=False)
            if f in ("out", "lse"):
                ok, note = ulp_diff_ok(arrays[f], got, 2)
                notes.append("%s %s" % (f, note))
            else:
                ok = got.dtype == arrays[f].dtype and np.array_equal(got, arrays[f])
            if not ok:
                failures.append("%s: %s.npy differs from the regenerated one" % (name, f))
        print("%-26s regenerated: %s" % (name, "; ".join(notes)))
    return failures


SPEC_FIELDS = ("dtype", "hq", "hk", "d", "sq", "sk", "causal", "scale", "scale_used", "lq", "lk",
               "cu_q", "cu_k", "density", "mask_shape")


def spec_differences(spec, meta):
    """The fields of SPEC_FIELDS in which another folder's case.json differs from `spec`."""
    ours = {f: spec.get(f) for f in SPEC_FIELDS}
    ours["scale_used"] = oracle.default_scale(spec["d"]) if spec["scale"] is None else float(
        spec["scale"])
    ours["cu_q"] = [0] + np.cumsum(spec["lq"]).tolist()
    ours["cu_k"] = [0] + np.cumsum(spec["lk"]).tolist()
    ours["mask_shape"] = [spec["hk"], sum(oracle.block_counts(spec["lq"], spec["sq"])),
                          sum(oracle.block_counts(spec["lk"], spec["sk"]))]
    return [f for f in SPEC_FIELDS if ours[f] != meta.get(f)]


def cross_check(root):
    """The oracle on another golden folder's inputs; spec comparison where names coincide."""
    failures = []
    specs = {s["name"]: s for s in SPECS}
    names = case_dirs(root)
    if not names:
        return ["%s: no case folders" % root]
    for name in names:
        path = os.path.join(root, name)
        with open(os.path.join(path, "case.json")) as fh:
            meta = json.load(fh)
        load = lambda f: np.load(os.path.join(path, f + ".npy"), allow_pickle=False)  # noqa: E731
        dt = meta["dtype"]
        scale = oracle.default_scale(meta["d"]) if meta["scale"] is None else meta["scale"]
        out, lse = oracle.attention(from_storage(load("q"), dt), from_storage(load("k"), dt),
                                    from_storage(load("v"), dt), meta["cu_q"], meta["cu_k"],
                                    load("block_mask").astype(bool), meta["sq"], meta["sk"],
                                    meta["causal"], scale)
        ok_o, note_o = ulp_diff_ok(out.astype(np.float32), load("out"), 4)
        ok_l, note_l = ulp_diff_ok(lse.astype(np.float32), load("lse"), 4)
        if name in specs:
            differ = spec_differences(specs[name], meta)
            spec_note = "spec same" if not differ else "spec differs in " + ",".join(differ)
        else:
            spec_note = "no spec of this name here"
        print("%-26s oracle vs its out: %s; lse: %s; %s" % (name, note_o, note_l, spec_note))
        if not (ok_o and ok_l):
            failures.append("%s: the oracle disagrees with its out/lse" % name)
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--out", default=os.path.join(HERE, "cases"), help="folder to write")
    g.add_argument("--check", metavar="DIR", help="compare DIR with a regeneration")
    g.add_argument("--cross-check", metavar="DIR", help="oracle vs another golden folder")
    o = ap.parse_args()
    if o.check or o.cross_check:
        failures = check(o.check) if o.check else cross_check(o.cross_check)
        for f in failures:
            print("FAIL " + f)
        print("%s: %s" % ("check" if o.check else "cross-check", "FAIL" if failures else "PASS"))
        return 1 if failures else 0
    os.makedirs(o.out, exist_ok=True)
    for stale in sorted(set(case_dirs(o.out)) - {s["name"] for s in SPECS}):
        shutil.rmtree(os.path.join(o.out, stale))
    total = 0
    for spec in SPECS:
        meta, arrays = make_case(spec)
        write_case(o.out, spec["name"], meta, arrays)
        size = sum(os.path.getsize(os.path.join(o.out, spec["name"], f))
                   for f in os.listdir(os.path.join(o.out, spec["name"])))
        total += size
        print("%-26s %s B=%d total_q=%d total_k=%d, %d empty rows, %d bytes" % (
            spec["name"], spec["dtype"], len(spec["lq"]), meta["cu_q"][-1], meta["cu_k"][-1],
            meta["empty_rows"], size))
    print("%d cases, %d bytes in %s" % (len(SPECS), total, o.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
