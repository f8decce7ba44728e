#!/usr/bin/env python3
"""bench.py: the kernel benchmark of ../../../shared/ANCHORS.md on the GPU machine.

For each row of the grid (B = 8, 32 heads, D = 128, bf16, N in {4096, 16384}, blocks 128x128,
128x64, 64x128, 64x64, sparsity 0.7 / 0.9, causal or not) it builds the mask exactly as
ANCHORS.md says (torch.rand on a CUDA generator seeded 1, first key block of each query block
forced on), then times with triton.testing.do_bench (median, CUDA events, L2 flushed):
  * hbsa: device planning + attention (libhbsa_bench_capi.so, hbsa::cuda::Enqueue);
  * dense: cuDNN scaled_dot_product_attention on the same q/k/v, no mask;
  * flex: torch.compile(flex_attention) with a BlockMask (BLOCK_SIZE 128) built outside timing.
All three read the same q/k/v tensors. Output: one JSON line per row (stdout and --out), plus a
cross-check of hbsa against FlexAttention's output (max |diff|).

usage: bench.py --lib build/bench/cuda/libhbsa_bench_capi.so --out results.jsonl [--n 4096]
"""
import argparse
import ctypes
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
import triton.testing

ANCHORS = {  # (N, causal, sq, sk, sparsity) -> (upstream Triton ms, FlexAttention ms) on H100
    (4096, True, 128, 128, 0.7): (1.84, 1.24), (4096, True, 128, 128, 0.9): (1.14, 0.71),
    (4096, True, 128, 64, 0.7): (1.75, 2.90), (4096, True, 128, 64, 0.9): (1.08, 1.58),
    (4096, True, 64, 128, 0.7): (1.78, 2.81), (4096, True, 64, 128, 0.9): (1.14, 1.44),
    (4096, True, 64, 64, 0.7): (1.53, 4.46), (4096, True, 64, 64, 0.9): (1.07, 2.36),
    (4096, False, 128, 128, 0.7): (2.65, 1.88), (4096, False, 128, 128, 0.9): (1.36, 0.92),
    (4096, False, 128, 64, 0.7): (2.22, 5.06), (4096, False, 128, 64, 0.9): (1.18, 2.36),
    (4096, False, 64, 128, 0.7): (2.64, 4.96), (4096, False, 64, 128, 0.9): (1.37, 2.25),
    (4096, False, 64, 64, 0.7): (2.26, 7.87), (4096, False, 64, 64, 0.9): (1.16, 3.93),
    (16384, True, 128, 128, 0.7): (20.22, 14.16), (16384, True, 128, 128, 0.9): (9.78, 5.78),
    (16384, True, 128, 64, 0.7): (20.54, 39.70), (16384, True, 128, 64, 0.9): (9.90, 17.24),
    (16384, True, 64, 128, 0.7): (20.63, 39.23), (16384, True, 64, 128, 0.9): (9.97, 16.62),
    (16384, True, 64, 64, 0.7): (19.45, 63.36), (16384, True, 64, 64, 0.9): (9.46, 30.08),
    (16384, False, 128, 128, 0.7): (32.80, 26.03), (16384, False, 128, 128, 0.9): (14.02, 9.78),
    (16384, False, 128, 64, 0.7): (29.35, 74.16), (16384, False, 128, 64, 0.9): (12.81, 30.90),
    (16384, False, 64, 128, 0.7): (34.68, 73.75), (16384, False, 64, 128, 0.9): (14.99, 30.32),
    (16384, False, 64, 64, 0.7): (32.45, 119.92), (16384, False, 64, 64, 0.9): (13.90, 55.82),
}
B, H, D = 8, 32, 128


def make_mask(n, sq, sk, sparsity):
    """ANCHORS.md recipe: per-sequence [B, H, nq, nk] bits, first key block forced on."""
    nq, nk = n // sq, n // sk
    g = torch.Generator("cuda").manual_seed(1)
    m = torch.rand(B, H, nq, nk, generator=g, device="cuda") >= sparsity
    m[:, :, :, 0] = True
    return m


def global_mask(m):
    """[B, H, nq, nk] per-sequence bits -> hbsa's [H, B*nq, B*nk] (cross-sequence pairs off)."""
    b, h, nq, nk = m.shape
    g = torch.zeros(h, b * nq, b * nk, dtype=torch.uint8, device=m.device)
    for i in range(b):
        g[:, i * nq:(i + 1) * nq, i * nk:(i + 1) * nk] = m[i].to(torch.uint8)
    return g


def flex_block_mask(m, n, sq, sk, causal):
    """BlockMask at BLOCK_SIZE 128 from the element rule, full/partial blocks marked."""
    from torch.nn.attention.flex_attention import BlockMask
    fb = 128
    # The rule at 64-row granularity (every block size here is a multiple of 64).
    g64 = m.repeat_interleave(sq // 64, dim=2).repeat_interleave(sk // 64, dim=3)
    n64 = n // 64
    ii = torch.arange(n64, device="cuda").view(-1, 1)
    jj = torch.arange(n64, device="cuda").view(1, -1)
    c_any = (ii >= jj) if causal else torch.ones(n64, n64, dtype=torch.bool, device="cuda")
    c_full = (ii > jj) if causal else c_any
    anyb = (g64 & c_any).view(B, H, n // fb, 2, n // fb, 2).any(5).any(3)
    allb = (g64 & c_full).view(B, H, n // fb, 2, n // fb, 2).all(5).all(3)
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


class Hbsa:
    def __init__(self, path):
        self.lib = ctypes.CDLL(path)
        L = self.lib
        L.hbsa_bench_create.restype = ctypes.c_void_p
        L.hbsa_bench_create.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64] + \
            [ctypes.c_int] * 4 + [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 3 + \
            [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64] + [ctypes.c_void_p] * 3 + \
            [ctypes.c_char_p, ctypes.c_int]
        L.hbsa_bench_enqueue.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        L.hbsa_bench_copy_out.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        L.hbsa_bench_allowed_pairs.argtypes = [ctypes.c_void_p]
        L.hbsa_bench_allowed_pairs.restype = ctypes.c_int64
        L.hbsa_bench_destroy.argtypes = [ctypes.c_void_p]
        self.err = ctypes.create_string_buffer(1024)

    def create(self, q, k, v, n, sq, sk, causal, gmask):
        cu = (torch.arange(B + 1, dtype=torch.int32) * n).contiguous()
        gm = gmask.cpu().contiguous()
        h = self.lib.hbsa_bench_create(1, B * n, B * n, H, H, D, B, cu.data_ptr(), cu.data_ptr(),
                                       sq, sk, int(causal), gm.data_ptr(), gm.shape[1], gm.shape[2],
                                       q.data_ptr(), k.data_ptr(), v.data_ptr(), self.err, 1024)
        if not h:
            raise RuntimeError(self.err.value.decode())
        return h

    def enqueue(self, h):
        s = torch.cuda.current_stream().cuda_stream
        if self.lib.hbsa_bench_enqueue(h, ctypes.c_void_p(s), self.err, 1024) != 0:
            raise RuntimeError(self.err.value.decode())


def bench(fn):
    return triton.testing.do_bench(fn, warmup=100, rep=500, return_mode="median")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, nargs="*", default=[4096, 16384])
    ap.add_argument("--no-flex", action="store_true")
    args = ap.parse_args()
    torch._dynamo.config.cache_size_limit = 1000
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 1000
    if hasattr(torch._dynamo.config, "accumulated_recompile_limit"):
        torch._dynamo.config.accumulated_recompile_limit = 10000
    from torch.nn.attention.flex_attention import flex_attention
    flex = torch.compile(flex_attention)
    hb = Hbsa(args.lib)
    dev = torch.cuda.get_device_name()
    out_f = open(args.out, "a")
    for n in args.n:
        torch.manual_seed(0)
        q = torch.randn(B * n, H, D, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(B * n, H, D, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(B * n, H, D, device="cuda", dtype=torch.bfloat16)
        # [B, H, N, D] views of the same storage for the peers.
        qb, kb, vb = (t.view(B, n, H, D).transpose(1, 2) for t in (q, k, v))
        from torch.nn.attention import SDPBackend, sdpa_kernel
        dense = {}
        for causal in (True, False):
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                dense[causal] = bench(lambda: F.scaled_dot_product_attention(qb, kb, vb, is_causal=causal))
        for causal in (True, False):
            for sq, sk in ((128, 128), (128, 64), (64, 128), (64, 64)):
                for sp in (0.7, 0.9):
                    m = make_mask(n, sq, sk, sp)
                    gm = global_mask(m)
                    h = hb.create(q, k, v, n, sq, sk, causal, gm)
                    pairs = hb.lib.hbsa_bench_allowed_pairs(h)
                    t_ours = bench(lambda: hb.enqueue(h))
                    row = dict(card=dev, n=n, causal=causal, sq=sq, sk=sk, sparsity=sp,
                               allowed_pairs=pairs, hbsa_ms=t_ours,
                               dense_ms=dense[causal] if causal else dense[False],
                               dense_nomask_ms=dense[False])
                    if not args.no_flex:
                        t0 = time.time()
                        bm = flex_block_mask(m, n, sq, sk, causal)
                        ref = flex(qb, kb, vb, block_mask=bm)
                        row["flex_ms"] = bench(lambda: flex(qb, kb, vb, block_mask=bm))
                        row["flex_setup_s"] = time.time() - t0
                        ours = torch.empty_like(q)
                        hb.lib.hbsa_bench_copy_out(h, ctypes.c_void_p(ours.data_ptr()))
                        torch.cuda.synchronize()
                        diff = (ours.view(B, n, H, D).transpose(1, 2).float() - ref.float()).abs()
                        row["max_abs_diff_vs_flex"] = diff.max().item()
                        del ref, bm, ours, diff
                    hb.lib.hbsa_bench_destroy(h)
                    flops = 4.0 * D * pairs
                    row["hbsa_tflops"] = flops / (t_ours * 1e-3) / 1e12
                    up, fx = ANCHORS[(n, causal, sq, sk, sp)]
                    row["anchor_upstream_ms"] = up
                    row["anchor_flex_ms"] = fx
                    dense_tflops = 4.0 * D * B * H * (n * (n + 1) / 2 if causal else n * n) / (
                        dense[causal] * 1e-3)
                    row["ideal_ms"] = flops / dense_tflops * 1e3
                    line = json.dumps(row)
                    print(line, flush=True)
                    out_f.write(line + "\n")
                    out_f.flush()
        del q, k, v, qb, kb, vb
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
