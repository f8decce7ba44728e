#!/usr/bin/env python3
"""bench/service/flex_server.py: what a user would write instead of hbsa-server (issue 10, 6).

A minimal Python gRPC server for the same proto (hbsa.v1.Attention/Attend), wrapping PyTorch's
FlexAttention on the same GPU: parse the AttendRequest with protobuf, move q/k/v to the GPU,
build a FlexAttention BlockMask from the request's block mask, cu_seqlens and causal flag
(mask_mod: same sequence, block bit on, bottom-right causal), run the torch.compile'd
flex_attention with GQA and the LSE, and send out (and lse) back as bytes. Served by grpcio with
a thread pool; every request runs on PyTorch's current stream, as a plain user's code would.

Peers are measured in the same run and with the same client as hbsa-server (bench/service,
hbsa-service-bench --target this server --echo none). Needs python3 with torch (CUDA), grpcio
and the hbsa/v1 stubs on PYTHONPATH.

  python3 flex_server.py --listen 127.0.0.1:50071 [--workers 16]
"""
import argparse
import math
import time
from concurrent import futures

import grpc
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from hbsa.v1 import attention_pb2 as pb
from hbsa.v1 import attention_pb2_grpc as pbg

DTYPES = {pb.DTYPE_FLOAT16: torch.float16, pb.DTYPE_BFLOAT16: torch.bfloat16,
          pb.DTYPE_FLOAT32: torch.float32}
_flex = torch.compile(flex_attention, dynamic=False)


def _tensor(t, device):
    """Tensor message -> GPU tensor of its shape."""
    raw = torch.frombuffer(bytearray(t.data), dtype=torch.uint8)
    return raw.view(DTYPES[t.dtype]).reshape(tuple(t.shape)).to(device)


def _blocks(req, hk, nq, nk, device):
    """The request's block mask as a bool [Hk, Nq, Nk] tensor (dense bits or compact CSR)."""
    which = req.WhichOneof("block_mask")
    if which == "dense_mask":
        bits = torch.frombuffer(bytearray(req.dense_mask.bits), dtype=torch.uint8)
        shifts = torch.arange(8, dtype=torch.uint8)
        flat = ((bits.unsqueeze(1) >> shifts) & 1).reshape(-1)[: hk * nq * nk]
        return flat.reshape(hk, nq, nk).bool().to(device)
    if which == "compact_mask":
        ro = torch.tensor(list(req.compact_mask.row_offsets), dtype=torch.int64)
        ci = torch.tensor(list(req.compact_mask.col_indices), dtype=torch.int64)
        rows = torch.repeat_interleave(torch.arange(hk * nq), ro[1:] - ro[:-1])
        m = torch.zeros(hk * nq, nk, dtype=torch.bool)
        m[rows, ci] = True
        return m.reshape(hk, nq, nk).to(device)
    raise ValueError("flex_server: per_sequence_mask is not implemented")


def _layout(cu, block, device):
    """Per token: sequence, local position, global block; per sequence: length."""
    cu = torch.tensor(list(cu), dtype=torch.int64)
    lens = cu[1:] - cu[:-1]
    seq = torch.repeat_interleave(torch.arange(len(lens)), lens)
    pos = torch.arange(int(cu[-1])) - cu[:-1][seq]
    nblocks = (lens + block - 1) // block
    first_block = torch.cumsum(nblocks, 0) - nblocks
    blk = first_block[seq] + pos // block
    return (seq.to(device), pos.to(device), blk.to(device), lens.to(device), int(nblocks.sum()))


class Attention(pbg.AttentionServicer):
    def __init__(self, device):
        self.device = device

    def Attend(self, req, context):
        t0 = time.perf_counter()
        dev = self.device
        q, k, v = _tensor(req.q, dev), _tensor(req.k, dev), _tensor(req.v, dev)
        tq, hq, d = q.shape
        tk, hk, _ = k.shape
        q_seq, q_pos, q_blk, q_len, nq = _layout(req.cu_seqlens_q, req.q_block_size, dev)
        k_seq, k_pos, k_blk, k_len, nk = _layout(req.cu_seqlens_k, req.k_block_size, dev)
        blocks = _blocks(req, hk, nq, nk, dev)
        group = hq // hk
        causal = req.causal
        shift = (k_len - q_len)  # bottom-right alignment, per sequence

        def mask_mod(b, h, qi, ki):
            same = q_seq[qi] == k_seq[ki]
            on = blocks[h // group, q_blk[qi], k_blk[ki]]
            ok = (q_pos[qi] + shift[q_seq[qi]] >= k_pos[ki]) | (not causal)
            return same & on & ok

        bm = create_block_mask(mask_mod, 1, hq, tq, tk, device=dev)
        scale = req.softmax_scale if req.HasField("softmax_scale") else 1.0 / math.sqrt(d)
        qb, kb, vb = (x.permute(1, 0, 2).unsqueeze(0) for x in (q, k, v))
        out, lse = _flex(qb, kb, vb, block_mask=bm, scale=scale, enable_gqa=group > 1, return_lse=True)
        out = out[0].permute(1, 0, 2).contiguous().cpu()
        resp = pb.AttendResponse(request_id=req.request_id, backend="flex", device=0)
        resp.out.dtype = req.q.dtype
        resp.out.shape.extend([tq, hq, d])
        resp.out.data = out.view(torch.uint8).numpy().tobytes()
        if req.return_lse:
            lse_rows = lse[0].permute(1, 0).contiguous().float().cpu()
            resp.lse.dtype = pb.DTYPE_FLOAT32
            resp.lse.shape.extend([tq, hq])
            resp.lse.data = lse_rows.numpy().tobytes()
        resp.timings.total_seconds = time.perf_counter() - t0
        resp.timings.batch_size = 1
        return resp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:50071")
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--max-message-bytes", type=int, default=1 << 30)
    args = ap.parse_args()
    opts = [("grpc.max_send_message_length", args.max_message_bytes),
            ("grpc.max_receive_message_length", args.max_message_bytes)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers), options=opts)
    pbg.add_AttentionServicer_to_server(Attention(torch.device("cuda")), server)
    server.add_insecure_port(args.listen)
    server.start()
    print("flex_server: serving on", args.listen, "torch", torch.__version__, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
