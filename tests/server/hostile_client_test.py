#!/usr/bin/env python3
"""hostile_client_test.py: an independent client that sends hand-built, malformed AttendRequests
to a real hbsa-server (CPU backend) over loopback and checks that every one is answered with a
clear status and that the server stays healthy and correct.

Independent on purpose: messages are encoded here byte by byte from the protobuf wire format
(no generated code, no hbsa client library), so the server's own encoder and decoder cannot
hide a mistake, and bytes no well-behaved encoder would produce (wrong wire types, truncated or
over-long lengths, invalid UTF-8, unknown fields) can be sent. grpcio only carries the bytes.

Each case names what it breaks and what answer is expected (a code, and a word the message must
contain). After every case the server must still be SERVING, and at the end one valid request
must compute the right answer and the server must exit 0 on SIGTERM (no crash, no sanitizer
report: under scripts/sanitize.sh this is the sanitized server).

    hostile_client_test.py --server build/server/hbsa-server
"""
import argparse
import math
import os
import signal
import struct
import subprocess
import sys
import time

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client"))
from hbsa_server import free_port  # noqa: E402

F16, BF16, F32 = 1, 2, 3
OK, INVALID, EXHAUSTED = (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT,
                          grpc.StatusCode.RESOURCE_EXHAUSTED)
# Bytes that are not an AttendRequest never reach the server's code: gRPC 1.51's callback API
# fails the call itself (UNIMPLEMENTED, empty message). Which code is gRPC's choice; what is
# checked is that the call fails and the server stays up.
PARSE = "parse"


# ---- protobuf wire format, by hand -------------------------------------------------------------
def varint(n):
    n &= (1 << 64) - 1  # negative int64/int32 values are 10-byte two's complement varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(field, wire):
    return varint(field << 3 | wire)


def f_varint(field, n):
    return key(field, 0) + varint(n)


def f_bytes(field, data):
    return key(field, 2) + varint(len(data)) + data


def f_fixed32(field, x):
    return key(field, 5) + struct.pack("<f", x)


def packed(field, values):
    return f_bytes(field, b"".join(varint(v) for v in values))


def tensor(dtype, shape, data):
    return f_varint(1, dtype) + packed(2, shape) + f_bytes(3, data)


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def request(q=None, k=None, v=None, cu_q=(0, 2), cu_k=(0, 1), sq=1, sk=1, mask=None, extra=b"",
            request_id=None, lse=False, scale=None):
    """A small valid request by default: fp32, one sequence of 2 query rows and 1 key row,
    1 x 1 blocks, 1/1 heads, D 1, dense mask all on."""
    q = tensor(F32, [2, 1, 1], f32([1.0, 2.0])) if q is None else q
    k = tensor(F32, [1, 1, 1], f32([1.0])) if k is None else k
    v = tensor(F32, [1, 1, 1], f32([3.0])) if v is None else v
    mask = f_bytes(13, packed(1, [1, 2, 1]) + f_bytes(2, b"\x03")) if mask is None else mask
    out = b""
    if request_id is not None:
        out += f_bytes(1, request_id)
    out += f_bytes(2, q) + f_bytes(3, k) + f_bytes(4, v) + packed(5, cu_q) + packed(6, cu_k)
    out += f_varint(7, sq) + f_varint(8, sk)
    if scale is not None:
        out += f_fixed32(10, scale)
    if lse:
        out += f_varint(11, 1)
    return out + mask + extra


def compact(rows, cols):
    return f_bytes(15, packed(1, rows) + packed(2, cols))


# ---- the cases ---------------------------------------------------------------------------------
def cases():
    c = []

    def add(name, body, code, needle=""):
        c.append((name, body, code, needle))

    # Not protobuf at all, or broken protobuf: the server cannot parse it.
    add("garbage bytes", b"\xff\xfe\xfd\xfc" * 16, PARSE)
    add("truncated length-delimited field", f_bytes(2, b"x" * 10)[:-4], PARSE)
    add("length past the end", key(2, 2) + varint(1 << 40), PARSE)
    add("wire type 7", key(2, 7) + b"\x00", PARSE)
    add("invalid UTF-8 request_id (proto3 string)", request(request_id=b"\xc3\x28"), PARSE)
    add("q as a varint instead of a message", f_varint(2, 7), PARSE)
    # Well-formed but meaningless: unknown fields are ignored, the rest is checked.
    add("unknown field 99", request(extra=f_varint(99, 5)), OK)
    add("empty message", b"", INVALID, "dtype")
    add("q.dtype unset", request(q=tensor(0, [2, 1, 1], f32([1, 2]))), INVALID, "q.dtype")
    add("q.dtype 42", request(q=tensor(42, [2, 1, 1], f32([1, 2]))), INVALID, "q.dtype")
    add("k.dtype differs", request(k=tensor(F16, [1, 1, 1], b"\x00\x3c")), INVALID, "k.dtype")
    add("q 2-D", request(q=tensor(F32, [2, 1], f32([1, 2]))), INVALID, "q.shape")
    add("q negative dim", request(q=tensor(F32, [-2, 1, 1], f32([1, 2]))), INVALID, "q.shape[0]")
    add("q dim 2^62", request(q=tensor(F32, [1 << 62, 1, 1], f32([1, 2]))), EXHAUSTED, "q.shape")
    add("q dims multiply past 2^63", request(q=tensor(F32, [1 << 31, 1 << 31, 1 << 31], b"")), EXHAUSTED, "q.shape")
    add("q data short", request(q=tensor(F32, [2, 1, 1], f32([1]))), INVALID, "q.data")
    add("v shape differs", request(v=tensor(F32, [1, 1, 2], f32([1, 2]))), INVALID, "v.shape")
    add("D differs", request(k=tensor(F32, [1, 1, 2], f32([1, 2])), v=tensor(F32, [1, 1, 2], f32([1, 2]))),
        INVALID, "k.shape[2]")
    add("heads 3:2", request(q=tensor(F32, [2, 3, 1], f32([1] * 6)), k=tensor(F32, [1, 2, 1], f32([1] * 2)),
                             v=tensor(F32, [1, 2, 1], f32([1] * 2))), INVALID, "num_heads")
    add("D 257", request(q=tensor(F32, [2, 1, 257], f32([0] * 514)), k=tensor(F32, [1, 1, 257], f32([0] * 257)),
                         v=tensor(F32, [1, 1, 257], f32([0] * 257))), INVALID, "head_dim")
    add("cu_seqlens missing", request(cu_q=(), cu_k=()), INVALID, "cu_seqlens_q")
    add("cu_seqlens_k count differs", request(cu_k=(0, 1, 1)), INVALID, "cu_seqlens_k")
    add("cu_seqlens_q not from 0", request(cu_q=(1, 2)), INVALID, "cu_seqlens_q")
    add("cu_seqlens_q decreasing", request(cu_q=(0, 3, 2), cu_k=(0, 1, 1)), INVALID, "non-decreasing")
    add("cu_seqlens_q last != total_q", request(cu_q=(0, 1)), INVALID, "total_q")
    add("cu_seqlens int32 extremes", request(cu_q=(0, 2**31 - 1, -2**31), cu_k=(0, 1, 1)), INVALID, "cu_seqlens_q")
    add("q_block_size 0", request(sq=0), INVALID, "q_block_size")
    add("k_block_size negative", request(sk=-5), INVALID, "k_block_size")
    add("k_block_size 2^21", request(sk=1 << 21), INVALID, "k_block_size")
    add("softmax_scale NaN", request(scale=float("nan")), INVALID, "softmax_scale")
    add("softmax_scale inf", request(scale=float("inf")), INVALID, "softmax_scale")
    add("no mask", request(mask=b""), INVALID, "block_mask")
    add("dense shape wrong", request(mask=f_bytes(13, packed(1, [1, 1, 1]) + f_bytes(2, b"\x01"))), INVALID, "dense_mask.shape")
    add("dense shape 2-D", request(mask=f_bytes(13, packed(1, [2, 1]) + f_bytes(2, b"\x03"))), INVALID, "dense_mask.shape")
    add("dense bits short", request(mask=f_bytes(13, packed(1, [1, 2, 1]) + f_bytes(2, b""))), INVALID, "dense_mask.bits")
    add("dense pad bits set", request(mask=f_bytes(13, packed(1, [1, 2, 1]) + f_bytes(2, b"\x07"))), INVALID, "pad bits")
    add("per-sequence count", request(mask=f_bytes(14, f_bytes(1, b"\x03") + f_bytes(1, b"\x01"))), INVALID, "per_sequence_mask")
    add("per-sequence size", request(mask=f_bytes(14, f_bytes(1, b"\x03\x00"))), INVALID, "per_sequence_mask.sequences[0]")
    add("compact row_offsets short", request(mask=compact([0, 1], [0])), INVALID, "compact_mask.row_offsets")
    add("compact not from 0", request(mask=compact([1, 1, 1], [0])), INVALID, "compact_mask.row_offsets")
    add("compact last != nnz", request(mask=compact([0, 1, 2], [0])), INVALID, "compact_mask.row_offsets")
    add("compact decreasing", request(mask=compact([0, 1, 0], [0])), INVALID, "compact_mask.row_offsets")
    # Issue 12 finding 1: a middle entry past nnz crashed the server (SIGSEGV) or read past
    # col_indices.
    for middle in (4, 100, 1 << 40, (1 << 63) - 1, -1):
        add("compact middle entry %d (issue 12 finding 1)" % middle, request(mask=compact([0, middle, 1], [0])),
            INVALID, "compact_mask.row_offsets")
    add("compact column = Nk", request(mask=compact([0, 1, 1], [1])), INVALID, "compact_mask.col_indices")
    add("compact column negative", request(mask=compact([0, 1, 1], [-1])), INVALID, "compact_mask.col_indices")
    add("compact columns repeat", request(mask=compact([0, 2, 2], [0, 0])), INVALID, "strictly increasing")
    # Issue 12 finding 7: request_id limited (and never echoed or logged raw).
    add("request_id 257 bytes", request(request_id=b"a" * 257), INVALID, "request_id")
    add("request_id 8 MiB", request(request_id=b"b" * (8 << 20)), INVALID, "request_id")
    add("request_id with a newline (allowed)", request(request_id=b"x\n[info] forged"), OK)
    add("request_id with a newline on a refused request (logged escaped)",
        request(request_id=b"x\"\n[info] forged line", sq=0), INVALID, "q_block_size")
    # Issue 12 finding 2: dense masks past 2^24 entries were refused with "got [0, 0, 0]".
    n = 4097
    bits = bytearray((n * n + 7) // 8)
    for i in range(n):
        e = i * n + i
        bits[e >> 3] |= 1 << (e & 7)
    add("dense mask 4097 x 4097 > 2^24 entries (issue 12 finding 2)",
        request(q=tensor(F32, [n, 1, 1], f32([0.5] * n)), k=tensor(F32, [n, 1, 1], f32([0.25] * n)),
                v=tensor(F32, [n, 1, 1], f32([1.0] * n)), cu_q=range(n + 1), cu_k=range(n + 1),
                mask=f_bytes(13, packed(1, [1, n, n]) + f_bytes(2, bytes(bits)))), OK)
    rows = 1 << 21  # out 8 MiB + lse 8 MiB: past the server's 16 MiB limit, the request is not
    add("response past the message limit", request(q=tensor(F32, [rows, 1, 1], bytes(4 * rows)),
                                                   cu_q=(0, rows), lse=True), EXHAUSTED, "response")
    return c


def call(channel, body, timeout=30):
    fn = channel.unary_unary("/hbsa.v1.Attention/Attend", request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
    try:
        return OK, "", fn(body, timeout=timeout)
    except grpc.RpcError as e:
        return e.code(), e.details() or "", None


def health(channel):
    fn = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                             response_deserializer=lambda b: b)
    try:
        return fn(b"", timeout=5) == b"\x08\x01"  # HealthCheckResponse{status: SERVING}
    except grpc.RpcError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    o = ap.parse_args()
    port, mport = free_port(), free_port()
    target = "127.0.0.1:%d" % port
    log_path = "/tmp/hbsa-hostile-%d.log" % os.getpid()
    log = open(log_path, "w+")
    proc = subprocess.Popen([o.server, "--listen", target, "--metrics-listen", "127.0.0.1:%d" % mport,
                             "--backend", "cpu", "--cpu-threads", "2", "--max-message-bytes", str(16 << 20),
                             "--drain-grace-seconds", "5"], stdout=log, stderr=subprocess.STDOUT)
    opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    channel = grpc.insecure_channel(target, options=opts)
    failures = []
    try:
        deadline = time.monotonic() + 60
        while not health(channel):
            if proc.poll() is not None or time.monotonic() > deadline:
                print("server did not start:\n" + open(log_path).read())
                return 1
            time.sleep(0.1)
        all_cases = cases()
        for name, body, want, needle in all_cases:
            code, msg, _ = call(channel, body)
            # Oversized requests past the server's receive limit are refused by gRPC itself.
            ok = (code != OK) if want == PARSE else (code == want and needle in msg)
            if want == INVALID and len(body) > (16 << 20):
                ok = code == EXHAUSTED
            alive = proc.poll() is None and health(channel)
            print("%s %-62s %s %s" % ("ok  " if ok and alive else "FAIL", name, code.name, msg[:90]))
            if not (ok and alive):
                failures.append(name)
            if not alive:
                break
        # Still correct afterwards: q = [1, 2], k = [1], v = [3], one key per row -> out = [3, 3].
        code, msg, raw = call(channel, request(lse=True))
        good = code == OK and raw is not None and f32([3.0, 3.0]) in raw
        print("%s valid request after all of them: %s %s" % ("ok  " if good else "FAIL", code.name, msg))
        if not good:
            failures.append("valid request after the hostile ones")
        logtext = open(log_path).read()
        forged = [l for l in logtext.splitlines() if l.startswith("[info] forged")]
        print("%s no forged log line (request_id newline escaped)" % ("ok  " if not forged else "FAIL"))
        if forged:
            failures.append("forged log line")
        longest = max((len(l) for l in logtext.splitlines()), default=0)
        print("%s longest log line %d bytes" % ("ok  " if longest < 4096 else "FAIL", longest))
        if longest >= 4096:
            failures.append("log line of %d bytes" % longest)
        print("%d cases, %d failure(s)" % (len(all_cases) + 3, len(failures)))
    finally:
        channel.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            print("%s server exit code after SIGTERM: %d" % ("ok  " if rc == 0 else "FAIL", rc))
            if rc != 0:
                failures.append("exit code %d" % rc)
        else:
            failures.append("server died (exit %s)" % proc.returncode)
            print("FAIL server died:\n" + open(log_path).read()[-4000:])
        os.unlink(log_path)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
