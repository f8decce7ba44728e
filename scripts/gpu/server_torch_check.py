#!/usr/bin/env python3
"""scripts/gpu/server_torch_check.py: the Python package's torch path against a live GPU server.

Run by scripts/gpu/server_run.sh on the GPU machine (which has torch), with the hbsa wheel built
here installed into a scratch folder on PYTHONPATH. For every golden case it builds torch tensors
on the GPU (bf16 via torch.bfloat16, fp16/fp32 as they are), calls hbsa.HBSAttention (the
upstream-compatible drop-in, $HBSA_TARGET) and hbsa.Client.attend(return_lse=True), and checks:
the result is a torch tensor of the input's dtype on the input's device, and it matches out.npy /
lse.npy under the SEMANTICS.md tolerances (empty rows exactly 0 and -inf). Exit 0 when all pass.
"""
import glob
import json
import os
import sys

import numpy as np
import torch

import hbsa

TOL = {"bf16": (1e-2, 1e-2, 1e-3), "fp16": (2e-3, 2e-3, 1e-3), "fp32": (1e-4, 1e-4, 1e-5)}


def to_torch(a, dtype):
    if dtype == "bf16":
        return torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16).cuda()
    return torch.from_numpy(a.copy()).cuda()


def main():
    golden = sys.argv[1]
    client = hbsa.Client(os.environ["HBSA_TARGET"])
    failures = 0
    for d in sorted(glob.glob(os.path.join(golden, "*", "case.json"))):
        d = os.path.dirname(d)
        c = json.load(open(os.path.join(d, "case.json")))
        dt = c["dtype"]
        q, k, v = (to_torch(np.load(os.path.join(d, n + ".npy")), dt) for n in ("q", "k", "v"))
        mask = torch.from_numpy(np.load(os.path.join(d, "block_mask.npy")).astype(bool))
        cu_q = torch.tensor(c["cu_q"], dtype=torch.int32)
        cu_k = torch.tensor(c["cu_k"], dtype=torch.int32)
        ref = np.load(os.path.join(d, "out.npy")).astype(np.float64)
        ref_lse = np.load(os.path.join(d, "lse.npy")).astype(np.float64)
        out1 = hbsa.HBSAttention(q, k, v, cu_q, cu_k, mask, c["sq"], c["sk"], c["causal"], c["scale"])
        out2, lse = client.attend(q, k, v, cu_q, cu_k, mask, c["sq"], c["sk"], causal=c["causal"],
                                  softmax_scale=c["scale"], return_lse=True)
        atol, rtol, lse_atol = TOL[dt]
        ok = True
        for out in (out1, out2):
            ok &= isinstance(out, torch.Tensor) and out.dtype == q.dtype and out.device == q.device
            got = out.float().cpu().numpy().astype(np.float64)
            empty = np.isneginf(ref_lse)
            err = np.abs(got - ref)
            ok &= bool(np.all(np.isfinite(got)))
            ok &= bool(np.all((err <= atol + rtol * np.abs(ref))[~empty]))
            ok &= bool(np.all(got[empty] == 0))
        lse_np = lse.cpu().numpy().astype(np.float64)
        ok &= bool(np.all(np.isneginf(lse_np[np.isneginf(ref_lse)])))
        fin = ~np.isneginf(ref_lse)
        lse_err = float(np.max(np.abs(lse_np[fin] - ref_lse[fin]))) if fin.any() else 0.0
        ok &= lse_err <= lse_atol
        max_err = float(np.max(np.abs(out2.float().cpu().numpy() - ref))) if ref.size else 0.0
        print("torch %-28s %s %s on %s: max|out-ref| %.3g max|lse-ref| %.3g" %
              (os.path.basename(d), "PASS" if ok else "FAIL", out2.dtype, out2.device, max_err, lse_err))
        failures += not ok
    print("torch client: %d cases, %d failed" % (len(glob.glob(os.path.join(golden, '*', 'case.json'))), failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
