#!/usr/bin/env python3
"""scripts/gpu/server_drive.py: drive a running hbsa-server with every golden case and load.

Used by scripts/gpu/server_run.sh on the GPU machine (python3 + grpcio; numpy optional). Needs
the hbsa/v1 Python stubs on PYTHONPATH. Phases:
  1. health SERVING and GetCapabilities;
  2. every golden case through Attend (dense bit-packed mask, LSE) and through one AttendStream
     (compact mask), each checked against out.npy / lse.npy under the SEMANTICS.md tolerances;
  3. concurrent load (several client threads, larger requests) so several CUDA streams run at
     once; reports per-stream counters from /metrics and device-time / wall-time overlap.
Exit code 0 when every golden response passes and the load phase had no errors.
"""
import argparse
import ast
import json
import math
import os
import struct
import sys
import threading
import time
import urllib.request

import grpc
from hbsa.v1 import attention_pb2 as pb
from hbsa.v1 import attention_pb2_grpc as pbg

DTYPES = {"float16": pb.DTYPE_FLOAT16, "fp16": pb.DTYPE_FLOAT16, "bfloat16": pb.DTYPE_BFLOAT16,
          "bf16": pb.DTYPE_BFLOAT16, "float32": pb.DTYPE_FLOAT32, "fp32": pb.DTYPE_FLOAT32}
# SEMANTICS.md "Numerics": (atol, rtol, lse_atol).
TOL = {pb.DTYPE_BFLOAT16: (1e-2, 1e-2, 1e-3), pb.DTYPE_FLOAT16: (2e-3, 2e-3, 1e-3),
       pb.DTYPE_FLOAT32: (1e-4, 1e-4, 1e-5)}


def load_npy(path):
    """(descr, shape, raw bytes) of a little-endian C-order .npy file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:6] == b"\x93NUMPY", path
    major = data[6]
    hlen = struct.unpack("<H", data[8:10])[0] if major == 1 else struct.unpack("<I", data[8:12])[0]
    start = 10 if major == 1 else 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    assert not header["fortran_order"], path
    return header["descr"], tuple(header["shape"]), data[start + hlen:]


def to_floats(dtype, raw):
    if dtype == pb.DTYPE_FLOAT32:
        return [x[0] for x in struct.iter_unpack("<f", raw)]
    if dtype == pb.DTYPE_FLOAT16:
        return [x[0] for x in struct.iter_unpack("<e", raw)]
    return [struct.unpack("<f", struct.pack("<I", h[0] << 16))[0] for h in struct.iter_unpack("<H", raw)]


def pack_bits(flags):
    out = bytearray((len(flags) + 7) // 8)
    for n, on in enumerate(flags):
        if on:
            out[n >> 3] |= 1 << (n & 7)
    return bytes(out)


def load_case(folder):
    meta = json.load(open(os.path.join(folder, "case.json")))
    dtype = DTYPES[meta["dtype"]]
    arrays = {n: load_npy(os.path.join(folder, n + ".npy")) for n in ("q", "k", "v", "block_mask", "out", "lse")}
    return {"name": os.path.basename(folder), "meta": meta, "dtype": dtype, "arrays": arrays}


def make_request(case, form, rid):
    m, a, dt = case["meta"], case["arrays"], case["dtype"]
    r = pb.AttendRequest(request_id=rid, cu_seqlens_q=m["cu_q"], cu_seqlens_k=m["cu_k"],
                         q_block_size=m["sq"], k_block_size=m["sk"], causal=m["causal"],
                         return_lse=True)
    for name in ("q", "k", "v"):
        _, shape, raw = a[name]
        getattr(r, name).CopyFrom(pb.Tensor(dtype=dt, shape=list(shape), data=raw))
    if m.get("scale") is not None:
        r.softmax_scale = m["scale"]
    _, (hk, nq, nk), mask = a["block_mask"]
    if form == "dense":
        r.dense_mask.shape.extend([hk, nq, nk])
        r.dense_mask.bits = pack_bits(mask)
    else:
        offsets, cols = [0], []
        for row in range(hk * nq):
            cols.extend(j for j in range(nk) if mask[row * nk + j])
            offsets.append(len(cols))
        r.compact_mask.row_offsets.extend(offsets)
        r.compact_mask.col_indices.extend(cols)
    return r


def check(case, resp):
    """(pass, max out error, max lse error, first failure)."""
    atol, rtol, lse_atol = TOL[case["dtype"]]
    ref = to_floats(pb.DTYPE_FLOAT32, case["arrays"]["out"][2])
    ref_lse = to_floats(pb.DTYPE_FLOAT32, case["arrays"]["lse"][2])
    got = to_floats(case["dtype"], resp.out.data)
    got_lse = to_floats(pb.DTYPE_FLOAT32, resp.lse.data)
    if len(got) != len(ref) or len(got_lse) != len(ref_lse):
        return False, math.inf, math.inf, "wrong output size"
    hd = case["meta"]["d"]
    err = lse_err = 0.0
    first = ""
    for i, (g, e) in enumerate(zip(got, ref)):
        empty = ref_lse[i // hd] == -math.inf
        bad = (g != 0.0) if empty else not (abs(g - e) <= atol + rtol * abs(e))
        if not empty and math.isfinite(g):
            err = max(err, abs(g - e))
        if bad and not first:
            first = f"out[{i}] = {g}, expected {e}"
    for i, (g, e) in enumerate(zip(got_lse, ref_lse)):
        if e == -math.inf:
            bad = g != -math.inf
        else:
            bad = not (abs(g - e) <= lse_atol)
            if math.isfinite(g):
                lse_err = max(lse_err, abs(g - e))
        if bad and not first:
            first = f"lse[{i}] = {g}, expected {e}"
    return not first, err, lse_err, first


def health(channel):
    call = channel.unary_unary("/grpc.health.v1.Health/Check")
    try:
        return call(b"", timeout=2) == b"\x08\x01"
    except grpc.RpcError:
        return False


def scrape(address):
    return urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()


def load_request(i, seqs=4, seqlen=1024, heads_q=16, heads_k=4, d=128, block=64, causal=True):
    """A larger synthetic fp16 request: `seqs` sequences of `seqlen`, per-sequence mask with
    block (i, j) on when (i + j) % 2 == 0 (about half the blocks)."""
    total_q = seqs * seqlen
    cu = [seqlen * b for b in range(seqs + 1)]
    def tensor(rows, heads, seed):
        n = rows * heads * d
        vals = [((k * 2654435761 + seed) % 2001 - 1000) / 1000.0 for k in range(4096)]
        raw = struct.pack(f"<{4096}e", *vals)
        data = (raw * (n * 2 // len(raw) + 1))[: n * 2]
        return pb.Tensor(dtype=pb.DTYPE_FLOAT16, shape=[rows, heads, d], data=data)
    r = pb.AttendRequest(request_id=f"load{i}", q=tensor(total_q, heads_q, 1), k=tensor(total_q, heads_k, 2),
                         v=tensor(total_q, heads_k, 3), cu_seqlens_q=cu, cu_seqlens_k=cu,
                         q_block_size=block, k_block_size=block, causal=causal)
    per = seqlen // block
    for _ in range(seqs):
        flags = [((a + b) % 2 == 0) for h in range(heads_k) for a in range(per) for b in range(per)]
        r.per_sequence_mask.sequences.append(pack_bits(flags))
    return r


def run_load(stub, title, reqs, per_thread):
    """Sends per_thread requests from each of len(reqs) client threads; prints throughput and the
    overlap of server-side device time (sum of per-request h2d + kernel + d2h over wall time:
    above 1 only when requests ran on several streams at once). Returns the error count."""
    print(f"== load: {title}: {len(reqs)} client threads x {per_thread} requests")
    spans, errors, lock = [], [], threading.Lock()
    def worker(i):
        for _ in range(per_thread):
            s = time.time()
            try:
                r = stub.Attend(reqs[i], timeout=120)
                with lock:
                    spans.append((s, time.time(), r.timings))
            except grpc.RpcError as e:
                with lock:
                    errors.append(f"{e.code()} {e.details()}")
    w0 = time.time()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(reqs))]
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.time() - w0
    device = sum(t.host_to_device_seconds + t.kernel_seconds + t.device_to_host_seconds for _, _, t in spans)
    kernel = sorted(t.kernel_seconds for _, _, t in spans)
    events = sorted([(s, 1) for s, _, _ in spans] + [(e, -1) for _, e, _ in spans])
    peak = cur = 0
    for _, d in events:
        cur += d; peak = max(peak, cur)
    print(f"  {len(spans)} ok, {len(errors)} errors in {wall:.2f} s; {len(spans)/wall:.1f} req/s; "
          f"median kernel {1e3 * kernel[len(kernel) // 2] if kernel else 0:.2f} ms")
    print(f"  device time (h2d + kernel + d2h) summed over requests: {device:.3f} s; "
          f"/ wall = {device / wall:.2f} (> 1 means requests overlapped on several streams)")
    print(f"  peak concurrent calls: {peak}")
    for e in errors[:5]: print("  error:", e)
    return len(errors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--expect-backend", default="cuda")
    ap.add_argument("--load-threads", type=int, default=8)
    ap.add_argument("--load-requests", type=int, default=8, help="per thread")
    args = ap.parse_args()

    opts = [("grpc.max_receive_message_length", 1 << 29), ("grpc.max_send_message_length", 1 << 29)]
    channel = grpc.insecure_channel(args.target, options=opts)
    t0 = time.time()
    while not health(channel):
        if time.time() - t0 > 120:
            print("server never became SERVING"); return 2
        time.sleep(0.2)
    print(f"== health SERVING after {time.time() - t0:.1f} s")
    stub = pbg.AttentionStub(channel)
    caps = stub.GetCapabilities(pb.GetCapabilitiesRequest())
    print("== capabilities:", caps.backend, [(d.name, d.compute_capability, d.streams, list(d.kernels)) for d in caps.devices],
          "fast head dims", list(caps.fast_head_dims))
    failures = 0

    cases = [load_case(os.path.join(args.golden, n)) for n in sorted(os.listdir(args.golden))
             if os.path.exists(os.path.join(args.golden, n, "case.json"))]
    print(f"== {len(cases)} golden cases through Attend (dense bit-packed mask, LSE)")
    for c in cases:
        resp = stub.Attend(make_request(c, "dense", c["name"]), timeout=60)
        ok, err, lerr, first = check(c, resp)
        failures += (not ok) or resp.backend != args.expect_backend
        t = resp.timings
        print(f"  {'PASS' if ok else 'FAIL'} {c['name']:28s} {resp.backend}:{resp.device}:{resp.kernel or '-'} max|out err| {err:.3g} "
              f"max|lse err| {lerr:.3g}  h2d {t.host_to_device_seconds*1e3:.3f} ms kernel "
              f"{t.kernel_seconds*1e3:.3f} ms d2h {t.device_to_host_seconds*1e3:.3f} ms {first}")

    print(f"== {len(cases)} golden cases through one AttendStream (compact mask)")
    by_id = {c["name"]: c for c in cases}
    reqs = [make_request(c, "compact", c["name"]) for c in cases]
    seen = 0
    for resp in stub.AttendStream(iter(reqs), timeout=120):
        c = by_id[resp.request_id]
        if resp.HasField("error"):
            print(f"  FAIL {c['name']}: {resp.error.code} {resp.error.message}"); failures += 1; continue
        ok, err, lerr, first = check(c, resp)
        failures += not ok
        seen += 1
        print(f"  {'PASS' if ok else 'FAIL'} {c['name']:28s} max|out err| {err:.3g} max|lse err| {lerr:.3g} {first}")
    failures += seen != len(cases)

    failures += run_load(stub, "fp16, 4 x 1024 tokens, Hq 16, Hk 4, D 128, causal, ~50% blocks",
                         [load_request(i) for i in range(args.load_threads)], args.load_requests)
    # Long sequences: compute grows with the square of the length and bytes only linearly, so
    # kernels outlast the executor's host-side packing and several streams run at once.
    failures += run_load(stub, "fp16, 1 x 65536 tokens, Hq 2, Hk 1, D 128, 256x256 blocks, ~50%, not causal",
                         [load_request(100 + i, seqs=1, seqlen=65536, heads_q=2, heads_k=1, block=256,
                                       causal=False) for i in range(4)], 3)

    text = scrape(args.metrics)
    print("== /metrics (selected)")
    for line in text.splitlines():
        if line.startswith(("hbsa_stream_requests_total", "hbsa_requests_total", "hbsa_device_memory",
                            "hbsa_stage_duration_seconds_count", "hbsa_stage_duration_seconds_sum",
                            "hbsa_request_duration_seconds_count", "hbsa_gpu_", "process_",
                            "hbsa_flops_total", "hbsa_tokens_total", "hbsa_build_info")):
            print("  " + line)
    busy = [l for l in text.splitlines() if l.startswith("hbsa_stream_requests_total") and not l.endswith(" 0")]
    print(f"== streams that ran work: {len(busy)}")
    print("== RESULT:", "PASS" if failures == 0 else f"FAIL ({failures} failures)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
