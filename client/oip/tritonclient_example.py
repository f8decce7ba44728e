"""client/oip/tritonclient_example.py: one block-sparse attention call to hbsa-server through
the stock Triton client (pip install "tritonclient[grpc]"), the Open Inference Protocol v2.

    python tritonclient_example.py [HOST:PORT]      (default 127.0.0.1:50051)

Two sequences (query lengths 5 and 9, key lengths 7 and 12), 2 query heads sharing 1 KV head,
head dim 32, query blocks of 4 and key blocks of 8, causal; the reference is computed here with
numpy in float64 and the largest difference printed. docs/OIP.md shows a run.
"""
import sys

import numpy as np
import tritonclient.grpc as grpcclient

url = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
client = grpcclient.InferenceServerClient(url=url)
print("live:", client.is_server_live(), " ready:", client.is_server_ready(),
      " model ready:", client.is_model_ready("hbsa_attention"))
meta = client.get_model_metadata("hbsa_attention", as_json=True)
print("inputs:", ", ".join("%s %s %s" % (t["name"], t["datatype"], [int(d) for d in t["shape"]])
                          for t in meta["inputs"]))

rng = np.random.default_rng(0)
cu_q, cu_k = np.array([0, 5, 14], np.int32), np.array([0, 7, 19], np.int32)
sq, sk = 4, 8
q = rng.standard_normal((14, 2, 32)).astype(np.float16)
k = rng.standard_normal((19, 1, 32)).astype(np.float16)
v = rng.standard_normal((19, 1, 32)).astype(np.float16)
# Global block numbering: query blocks 2 + 3 = 5, key blocks 1 + 2 = 3; mask [Hk, Nq, Nk].
mask = np.ones((1, 5, 3), bool)
mask[0, 4, 1] = False  # last query block of sequence 1 skips its first key block

inputs = []
for name, a, dt in [("q", q, "FP16"), ("k", k, "FP16"), ("v", v, "FP16"),
                    ("cu_seqlens_q", cu_q, "INT32"), ("cu_seqlens_k", cu_k, "INT32"),
                    ("block_mask", mask, "BOOL")]:
    t = grpcclient.InferInput(name, list(a.shape), dt)
    t.set_data_from_numpy(a)
    inputs.append(t)
result = client.infer("hbsa_attention", inputs, request_id="example-1",
                      parameters={"q_block_size": sq, "k_block_size": sk, "causal": True,
                                  "return_lse": True})
out, lse = result.as_numpy("out"), result.as_numpy("lse")
resp = result.get_response()
print("id:", resp.id, " backend:", resp.parameters["backend"].string_param)
print("out:", out.dtype, out.shape, " lse:", lse.dtype, lse.shape)


def reference():
    """SEMANTICS.md in float64: same sequence, mask bit of the pair's blocks, bottom-right causal."""
    ref = np.zeros((14, 2, 32))
    qb0 = kb0 = 0
    for b in range(2):
        lq, lk = cu_q[b + 1] - cu_q[b], cu_k[b + 1] - cu_k[b]
        for h in range(2):
            s = q[cu_q[b]:cu_q[b + 1], h].astype(np.float64) @ \
                k[cu_k[b]:cu_k[b + 1], 0].astype(np.float64).T / np.sqrt(32)
            i, j = np.meshgrid(np.arange(lq), np.arange(lk), indexing="ij")
            ok = mask[0, qb0 + i // sq, kb0 + j // sk] & (i + (lk - lq) >= j)
            s = np.where(ok, s, -np.inf)
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p = np.where(ok, p, 0)
            ref[cu_q[b]:cu_q[b + 1], h] = (p / p.sum(axis=1, keepdims=True)) @ \
                v[cu_k[b]:cu_k[b + 1], 0].astype(np.float64)
        qb0 += -(-lq // sq)
        kb0 += -(-lk // sk)
    return ref


print("max |out - float64 reference|: %.2e (fp16 bar: 2e-3 + 2e-3 * |ref|)"
      % np.abs(out.astype(np.float64) - reference()).max())
try:
    client.infer("hbsa_attention", inputs, parameters={"q_block_size": 0, "k_block_size": sk})
except grpcclient.InferenceServerException as e:
    print("refused:", e.status(), e.message())
