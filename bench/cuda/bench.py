#!/usr/bin/env python3
"""bench.py: the kernel benchmark on the GPU machine; every method in one process on the same
q/k/v and masks.

Grids (--grid):
  anchors  ../../../shared/ANCHORS.md: B = 8, 32 heads, D = 128, bf16, N in --n (4096, 16384),
           blocks 128x128, 128x64, 64x128, 64x64, sparsity 0.7 / 0.9, causal or not.
  users    shapes users run (USER_ROWS below): small and heterogeneous blocks (16x16, 32x32,
           128x16, 16x128, 32x128, 64x16), GQA 32/8 and 32/4, D 64/128/256, fp16 and bf16,
           ragged varlen batches, a short query chunk against a long key sequence.
Masks: per (sequence, KV head, query block, key block) on with probability 1 - sparsity from
torch.rand on a CUDA generator seeded 1 (ANCHORS.md), first key block of each query block forced
on. Times: triton.testing.do_bench (median, CUDA events, L2 flushed) of
  * hbsa: device planning + attention (libhbsa_bench_capi.so, hbsa::cuda::Enqueue), with the
    kernel the library chose (printed) or --kernel; --prev-lib times a second build of the
    library (the previous kernel) on the same inputs, for A/B ratios from one run, and each
    --extra-lib NAME=PATH another build (a variant: columns NAME_ms, NAME_vs_new);
  * upstream: the public hbsattn Triton kernel (--upstream DIR, a checkout of
    github.com/zhengqigao/hbsattn; never part of this repository), its 'auto' tile mode (for the
    power-of-two blocks here it picks the same tiles as 'fix'), block arrays precomputed;
  * flex: torch.compile(flex_attention) with a BlockMask (BLOCK_SIZE 128) built outside the
    timing (equal-length rows; GQA through enable_gqa);
  * dense: cuDNN scaled_dot_product_attention without a mask on the same shape (K/V heads
    repeated for GQA); for ragged or Lq != Lk rows, on a [4, Hq, 4096, D] batch of the same dtype,
    used only as the dense rate.
ideal_ms = allowed work at the dense kernel's rate. Output: one JSON line per row (stdout and
--out), with max |diff| of hbsa against the peers' outputs.

usage: bench.py --lib libhbsa_bench_capi.so --out results.jsonl [--grid anchors users]
                [--n 4096 16384] [--prev-lib OLD.so] [--extra-lib NAME=PATH ...]
                [--upstream DIR] [--no-flex] [--kernel K] [--rows SUBSTRING,...]
       bench.py --warm-upstream J --upstream DIR [--grid ...] [--n ...]
The second form only compiles: J processes run the upstream kernel once on every row's shape,
so its autotuner's Triton compilations (12 configurations per block shape) land in
TRITON_CACHE_DIR in parallel, and the timed run compiles nothing.
"""
import argparse
import ctypes
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
import triton.testing

DTYPES = {"bf16": (torch.bfloat16, 1), "fp16": (torch.float16, 0)}

# name, dtype, D, Hq, Hk, query lengths, key lengths, Sq, Sk, sparsity, causal
USER_ROWS = [
    ("small 16x16", "bf16", 128, 16, 16, [4096] * 4, [4096] * 4, 16, 16, 0.9, False),
    ("small 16x16 causal", "bf16", 128, 16, 16, [4096] * 4, [4096] * 4, 16, 16, 0.9, True),
    ("small 16x16 s0.7", "bf16", 128, 16, 16, [4096] * 4, [4096] * 4, 16, 16, 0.7, False),
    ("small 32x32", "bf16", 128, 16, 16, [4096] * 4, [4096] * 4, 32, 32, 0.9, False),
    ("hetero 128x16", "bf16", 128, 16, 16, [4096] * 4, [4096] * 4, 128, 16, 0.9, False),
    ("hetero 16x128", "bf16", 128, 16, 16, [4096] * 4, [4096] * 4, 16, 128, 0.9, False),
    ("hetero 32x128", "bf16", 128, 16, 16, [4096] * 4, [4096] * 4, 32, 128, 0.9, False),
    ("hetero 64x16 fp16 D64", "fp16", 64, 16, 16, [4096] * 4, [4096] * 4, 64, 16, 0.9, False),
    ("gqa32/8 16x16", "bf16", 128, 32, 8, [4096] * 4, [4096] * 4, 16, 16, 0.9, False),
    ("gqa32/4 32x32 causal", "bf16", 128, 32, 4, [4096] * 4, [4096] * 4, 32, 32, 0.9, True),
    ("gqa32/8 64x64 fp16 D64", "fp16", 64, 32, 8, [4096] * 4, [4096] * 4, 64, 64, 0.7, False),
    ("gqa32/8 64x64 D256", "bf16", 256, 32, 8, [4096] * 4, [4096] * 4, 64, 64, 0.7, False),
    ("gqa32/4 128x128 fp16 causal", "fp16", 128, 32, 4, [4096] * 4, [4096] * 4, 128, 128, 0.7,
     True),
    ("ragged gqa32/8 64x64 causal", "bf16", 128, 32, 8,
     [8192, 512, 3000, 1024, 6000, 100, 2048, 4096],
     [8192, 512, 3000, 1024, 6000, 100, 2048, 4096], 64, 64, 0.7, True),
    ("ragged 16x16", "bf16", 128, 16, 16, [6000, 700, 3100, 2000], [6000, 700, 3100, 2000],
     16, 16, 0.9, False),
    ("chunk 512 vs 32k causal gqa32/8", "bf16", 128, 32, 8, [512] * 2, [32768] * 2, 64, 64, 0.7,
     True),
    ("chunk 128 vs 16k gqa32/8", "bf16", 128, 32, 8, [128] * 4, [16384] * 4, 128, 64, 0.5, False),
]


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


class Problem:
    """Packed q/k/v, cu_seqlens and the mask of one row, on the GPU."""

    def __init__(self, dtype, d, hq, hk, lq, lk, sq, sk, sparsity, causal):
        self.dtype, self.d, self.hq, self.hk = dtype, d, hq, hk
        self.lq, self.lk, self.sq, self.sk = list(lq), list(lk), sq, sk
        self.sparsity, self.causal = sparsity, causal
        self.batch = len(lq)
        self.equal = len(set(lq)) == 1 and lq == lk
        tq, tk = sum(lq), sum(lk)
        torch.manual_seed(0)
        t = DTYPES[dtype][0]
        self.q = torch.randn(tq, hq, d, device="cuda", dtype=t)
        self.k = torch.randn(tk, hk, d, device="cuda", dtype=t)
        self.v = torch.randn(tk, hk, d, device="cuda", dtype=t)
        self.cu_q = torch.tensor([0] + list(_cumsum(lq)), dtype=torch.int32)
        self.cu_k = torch.tensor([0] + list(_cumsum(lk)), dtype=torch.int32)
        self.nqb = [-(-x // sq) for x in lq]
        self.nkb = [-(-x // sk) for x in lk]
        g = torch.Generator("cuda").manual_seed(1)
        if self.equal:  # the ANCHORS.md draw: one [B, Hk, nq, nk] tensor
            m = torch.rand(self.batch, hk, self.nqb[0], self.nkb[0], generator=g,
                           device="cuda") >= sparsity
            m[:, :, :, 0] = True
            self.per_seq = [m[b] for b in range(self.batch)]
        else:
            self.per_seq = []
            for b in range(self.batch):
                m = torch.rand(hk, self.nqb[b], self.nkb[b], generator=g, device="cuda") >= sparsity
                if self.nkb[b] > 0:
                    m[:, :, 0] = True
                self.per_seq.append(m)
        # hbsa / upstream: [Hk, Nq, Nk] global numbering, cross-sequence pairs off.
        self.gmask = torch.zeros(hk, sum(self.nqb), sum(self.nkb), dtype=torch.bool, device="cuda")
        qi = ki = 0
        for b in range(self.batch):
            self.gmask[:, qi:qi + self.nqb[b], ki:ki + self.nkb[b]] = self.per_seq[b]
            qi += self.nqb[b]
            ki += self.nkb[b]

    def flops(self, pairs):
        return 4.0 * self.d * pairs


def _cumsum(xs):
    s = 0
    for x in xs:
        s += x
        yield s


class Hbsa:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        L = self.lib
        L.hbsa_bench_create.restype = ctypes.c_void_p
        L.hbsa_bench_create.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64] + \
            [ctypes.c_int] * 4 + [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 3 + \
            [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64] + [ctypes.c_void_p] * 3 + \
            [ctypes.c_char_p, ctypes.c_int]
        L.hbsa_bench_enqueue.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p,
                                         ctypes.c_int]
        L.hbsa_bench_copy_out.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        L.hbsa_bench_allowed_pairs.argtypes = [ctypes.c_void_p]
        L.hbsa_bench_allowed_pairs.restype = ctypes.c_int64
        L.hbsa_bench_destroy.argtypes = [ctypes.c_void_p]
        self.has_kernel_api = hasattr(L, "hbsa_bench_kernel_name")
        if self.has_kernel_api:
            L.hbsa_bench_kernel_name.argtypes = [ctypes.c_void_p]
            L.hbsa_bench_kernel_name.restype = ctypes.c_char_p
            L.hbsa_bench_set_kernel.argtypes = [ctypes.c_char_p]
        self.err = ctypes.create_string_buffer(2048)

    def set_kernel(self, name):
        if self.has_kernel_api and self.lib.hbsa_bench_set_kernel(name.encode()) != 0:
            raise RuntimeError(f"unknown kernel {name}")

    def create(self, pb):
        gm = pb.gmask.to(torch.uint8).cpu().contiguous()
        h = self.lib.hbsa_bench_create(DTYPES[pb.dtype][1], pb.q.shape[0], pb.k.shape[0], pb.hq,
                                       pb.hk, pb.d, pb.batch, pb.cu_q.data_ptr(),
                                       pb.cu_k.data_ptr(), pb.sq, pb.sk, int(pb.causal),
                                       gm.data_ptr(), gm.shape[1], gm.shape[2], pb.q.data_ptr(),
                                       pb.k.data_ptr(), pb.v.data_ptr(), self.err, 2048)
        if not h:
            raise RuntimeError(self.err.value.decode())
        return h

    def kernel_name(self, h):
        return self.lib.hbsa_bench_kernel_name(h).decode() if self.has_kernel_api else "previous"

    def enqueue(self, h):
        s = torch.cuda.current_stream().cuda_stream
        if self.lib.hbsa_bench_enqueue(h, ctypes.c_void_p(s), self.err, 2048) != 0:
            raise RuntimeError(self.err.value.decode())

    def output(self, h, pb):
        out = torch.empty_like(pb.q)
        if self.lib.hbsa_bench_copy_out(h, ctypes.c_void_p(out.data_ptr())) != 0:
            raise RuntimeError("copy out failed")
        torch.cuda.synchronize()
        return out


def time_hbsa(lib, pb, kernel=None):
    if kernel:
        lib.set_kernel(kernel)
    h = lib.create(pb)
    try:
        pairs = lib.lib.hbsa_bench_allowed_pairs(h)
        ms = bench(lambda: lib.enqueue(h))
        out = lib.output(h, pb)
        return ms, pairs, lib.kernel_name(h), out
    finally:
        lib.lib.hbsa_bench_destroy(h)


def flex_block_mask(pb):
    """BlockMask at BLOCK_SIZE 128 from the element rule (equal-length rows), full/partial."""
    from torch.nn.attention.flex_attention import BlockMask
    fb, n, sq, sk, causal = 128, pb.lq[0], pb.sq, pb.sk, pb.causal
    u = math.gcd(math.gcd(sq, sk), fb)  # the rule is constant on u x u units
    m = torch.stack(pb.per_seq)  # [B, Hk, nq, nk]
    if pb.hq != pb.hk:
        m = m.repeat_interleave(pb.hq // pb.hk, dim=1)
    mu = m.repeat_interleave(sq // u, dim=2).repeat_interleave(sk // u, dim=3)[:, :, :n // u, :n // u]
    nu = n // u
    ii = torch.arange(nu, device="cuda").view(-1, 1)
    jj = torch.arange(nu, device="cuda").view(1, -1)
    c_any = (ii >= jj) if causal else torch.ones(nu, nu, dtype=torch.bool, device="cuda")
    c_full = (ii > jj) if (causal and u > 1) else c_any
    r = fb // u
    anyb = (mu & c_any).view(pb.batch, pb.hq, n // fb, r, n // fb, r).any(5).any(3)
    allb = (mu & c_full).view(pb.batch, pb.hq, n // fb, r, n // fb, r).all(5).all(3)
    partial = anyb & ~allb

    def order(x):
        num = x.sum(-1).to(torch.int32)
        idx = torch.argsort((~x).to(torch.int8), dim=-1, stable=True).to(torch.int32)
        return num, idx

    kv_num, kv_idx = order(partial)
    full_num, full_idx = order(allb)

    def mask_mod(b, h, q_idx, kv_idx):
        ok = m[b, h, q_idx // sq, kv_idx // sk]
        if causal:
            ok = ok & (q_idx >= kv_idx)
        return ok

    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=fb,
                                    mask_mod=mask_mod)


class Upstream:
    def __init__(self, root):
        sys.path.insert(0, root)
        from hbsattn.fwd_triton_auto_tile_size import _forward_auto_tile_size
        from hbsattn.utils import calculate_blocks
        self.fwd, self.blocks = _forward_auto_tile_size, calculate_blocks

    def run_fn(self, pb):
        cq, ck = pb.cu_q.cuda(), pb.cu_k.cuda()
        qb = self.blocks(cq, pb.sq)
        kb = self.blocks(ck, pb.sk)
        mask = pb.gmask.contiguous()
        return lambda: self.fwd(pb.q, pb.k, pb.v, cq, ck, mask, pb.sq, pb.sk, pb.causal, None,
                                *qb, *kb)


def dense_ms(pb, cache):
    """cuDNN SDPA without a mask: on the row's own shape when equal-length, else on a
    [4, Hq, 4096, D] batch; returns (ms, dense FLOPs of that call)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    key = (pb.dtype, pb.d, pb.hq, pb.hk, pb.lq[0] if pb.equal else -1, pb.batch if pb.equal else -1,
           pb.causal)
    if key in cache:
        return cache[key]
    t = DTYPES[pb.dtype][0]
    if pb.equal:
        b, n = pb.batch, pb.lq[0]
        qb = pb.q.view(b, n, pb.hq, pb.d).transpose(1, 2)
        kb = pb.k.view(b, n, pb.hk, pb.d).transpose(1, 2)
        vb = pb.v.view(b, n, pb.hk, pb.d).transpose(1, 2)
        causal = pb.causal
    else:
        b, n = 4, 4096
        qb = torch.randn(b, pb.hq, n, pb.d, device="cuda", dtype=t)
        kb = torch.randn(b, pb.hk, n, pb.d, device="cuda", dtype=t)
        vb = torch.randn(b, pb.hk, n, pb.d, device="cuda", dtype=t)
        causal = False
    if pb.hq != pb.hk:
        kb = kb.repeat_interleave(pb.hq // pb.hk, dim=1)
        vb = vb.repeat_interleave(pb.hq // pb.hk, dim=1)
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        ms = bench(lambda: F.scaled_dot_product_attention(qb, kb, vb, is_causal=causal))
    flops = 4.0 * pb.d * b * pb.hq * (n * (n + 1) / 2 if causal else n * n)
    cache[key] = (ms, flops)
    return cache[key]


def max_diff(ours, ref, pb):
    if ref.dim() == 4:  # [B, H, N, D] -> packed
        ref = ref.transpose(1, 2).reshape(-1, pb.hq, pb.d)
    return (ours.float() - ref.float()).abs().max().item()


def run_row(name, pb, args, libs, upstream, flex, dense_cache, out_f):
    row = dict(card=torch.cuda.get_device_name(), grid=name[0], name=name[1], dtype=pb.dtype,
               d=pb.d, hq=pb.hq, hk=pb.hk, batch=pb.batch, lq=pb.lq if not pb.equal else pb.lq[0],
               lk=pb.lk if not pb.equal else pb.lk[0], sq=pb.sq, sk=pb.sk,
               sparsity=pb.sparsity, causal=pb.causal)
    ms, pairs, kernel, ours = time_hbsa(libs[0][1], pb, args.kernel)
    row.update(allowed_pairs=pairs, hbsa_ms=ms, hbsa_kernel=kernel,
               hbsa_tflops=pb.flops(pairs) / (ms * 1e-3) / 1e12)
    for name, lib in libs[1:]:
        try:
            pms, _, pk, pout = time_hbsa(lib, pb)
            row.update({f"{name}_ms": pms, f"{name}_kernel": pk, f"{name}_vs_new": pms / ms,
                        f"max_abs_diff_vs_{name}": max_diff(ours, pout, pb)})
            del pout
        except RuntimeError as e:  # an older build may refuse a shape
            row[f"{name}_error"] = str(e)[:200]
    if upstream is not None:
        try:
            fn = upstream.run_fn(pb)
            t0 = time.time()
            ref = fn()
            torch.cuda.synchronize()
            row["upstream_setup_s"] = time.time() - t0
            row["upstream_ms"] = bench(fn)
            row["max_abs_diff_vs_upstream"] = max_diff(ours, ref, pb)
            del ref
        except Exception as e:  # noqa: BLE001 (record and go on)
            row["upstream_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    if flex is not None and pb.equal:
        try:
            t0 = time.time()
            bm = flex_block_mask(pb)
            b, n = pb.batch, pb.lq[0]
            qb = pb.q.view(b, n, pb.hq, pb.d).transpose(1, 2)
            kb = pb.k.view(b, n, pb.hk, pb.d).transpose(1, 2)
            vb = pb.v.view(b, n, pb.hk, pb.d).transpose(1, 2)
            gqa = pb.hq != pb.hk
            ref = flex(qb, kb, vb, block_mask=bm, enable_gqa=gqa)
            torch.cuda.synchronize()
            row["flex_setup_s"] = time.time() - t0
            row["flex_ms"] = bench(lambda: flex(qb, kb, vb, block_mask=bm, enable_gqa=gqa))
            row["max_abs_diff_vs_flex"] = max_diff(ours, ref, pb)
            del ref, bm
        except Exception as e:  # noqa: BLE001
            row["flex_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    try:
        dms, dflops = dense_ms(pb, dense_cache)
        row["dense_ms"] = dms
        row["dense_tflops"] = dflops / (dms * 1e-3) / 1e12
        row["ideal_ms"] = pb.flops(pairs) / (dflops / dms)
    except Exception as e:  # noqa: BLE001
        row["dense_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    peers = [row[k] for k in ("upstream_ms", "flex_ms") if k in row]
    if peers:
        row["best_peer_ms"] = min(peers)
        row["speedup_vs_best_peer"] = min(peers) / ms
    if "upstream_ms" in row:
        row["speedup_vs_upstream"] = row["upstream_ms"] / ms
    line = json.dumps(row)
    print(line, flush=True)
    out_f.write(line + "\n")
    out_f.flush()
    del ours


def rows(args):
    """(grid, name, Problem arguments) of every row the arguments select, in run order."""
    out = []  # users first: the small-block rows matter most if a time limit cuts the run
    if "users" in args.grid:
        for (name, dtype, d, hq, hk, lq, lk, sq, sk, sp, causal) in USER_ROWS:
            out.append(("users", name, (dtype, d, hq, hk, lq, lk, sq, sk, sp, causal)))
    if "anchors" in args.grid:
        for n in args.n:
            for causal in (True, False):
                for sq, sk in ((128, 128), (128, 64), (64, 128), (64, 64)):
                    for sp in (0.7, 0.9):
                        out.append(("anchors", f"N={n} {sq}x{sk} s{sp}{' causal' if causal else ''}",
                                    ("bf16", 128, 32, 32, [n] * 8, [n] * 8, sq, sk, sp, causal)))
    wanted = args.rows.split(",") if args.rows else None
    return [r for r in out if not wanted or any(w in r[1] for w in wanted)]


def warm_upstream(args):
    """Runs the upstream kernel once per row shape in args.warm_upstream processes."""
    if args.warm_worker is not None:
        i, j = (int(x) for x in args.warm_worker.split("/"))
        up = Upstream(args.upstream)
        for grid, name, spec in rows(args)[i::j]:
            t0 = time.time()
            try:
                pb = Problem(*spec)
                up.run_fn(pb)()
                torch.cuda.synchronize()
                print(f"warm {name}: {time.time() - t0:.1f} s", flush=True)
                del pb
            except Exception as e:  # noqa: BLE001
                print(f"warm {name}: {type(e).__name__}: {str(e)[:200]}", flush=True)
            torch.cuda.empty_cache()
        return
    j = args.warm_upstream
    base = [sys.executable, os.path.abspath(__file__), "--warm-upstream", str(j),
            "--upstream", args.upstream, "--grid", *args.grid, "--n", *map(str, args.n)]
    if args.rows:
        base += ["--rows", args.rows]
    procs = [subprocess.Popen(base + ["--warm-worker", f"{i}/{j}"]) for i in range(j)]
    for p in procs:
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib")
    ap.add_argument("--prev-lib")
    ap.add_argument("--extra-lib", action="append", help="NAME=PATH of another build to time")
    ap.add_argument("--upstream")
    ap.add_argument("--out")
    ap.add_argument("--warm-upstream", type=int)
    ap.add_argument("--warm-worker")
    ap.add_argument("--grid", nargs="*", default=["anchors", "users"])
    ap.add_argument("--n", type=int, nargs="*", default=[4096, 16384])
    ap.add_argument("--rows", help="comma-separated substrings: only the rows whose name matches")
    ap.add_argument("--no-flex", action="store_true")
    ap.add_argument("--kernel", help="hbsa kernel for --lib (auto, wgmma_tma, mma_sync, ...)")
    args = ap.parse_args()
    if args.warm_upstream:
        warm_upstream(args)
        return
    if not args.lib or not args.out:
        ap.error("--lib and --out are required")
    torch._dynamo.config.cache_size_limit = 1000
    for knob in ("recompile_limit", "accumulated_recompile_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 10000)
    flex = None
    if not args.no_flex:
        from torch.nn.attention.flex_attention import flex_attention
        flex = torch.compile(flex_attention)
    libs = [("new", Hbsa(args.lib))] + ([("prev", Hbsa(args.prev_lib))] if args.prev_lib else [])
    for spec in args.extra_lib or []:
        name, path = spec.split("=", 1)
        libs.append((name, Hbsa(path)))
    upstream = Upstream(args.upstream) if args.upstream else None
    dense_cache = {}
    out_f = open(args.out, "a")
    for grid, name, spec in rows(args):
        pb = Problem(*spec)
        run_row((grid, name), pb, args, libs, upstream, flex, dense_cache, out_f)
        del pb
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
