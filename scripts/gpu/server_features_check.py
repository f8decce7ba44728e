"""scripts/gpu/server_features_check.py TARGET METRICS_URL: the GPU run of the service features
that have no GPU test of their own, against a running hbsa-server --backend cuda (server_run.sh
calls it with the hbsa wheel, and the tritonclient wheel when bundled, on PYTHONPATH):

  sessions      a session of resident K/V (fp16, 4/2 heads, D 128): a chunked prefill of 1000
                rows in two appends, then 8 decode steps that each append one row; every step's
                output is compared with a NumPy float64 reference of the whole resident K/V and
                with the stateless Attend of the same bytes (bit-identical expected)
  cancellation  6 concurrent requests whose deadlines (5 to 400 ms) pass in transit, queued or
                running (DEADLINE_EXCEEDED expected for most), then hbsa_abandoned_requests_total from /metrics; a probe afterwards
                must still be answered correctly
  oip           the Open Inference Protocol through the stock tritonclient (skipped, and said so,
                when tritonclient cannot be imported)

Prints one PASS/FAIL line per check; exit code 0 only when every check that ran passed.
"""
import concurrent.futures
import importlib.metadata
import sys
import time
import urllib.request

import numpy as np

import hbsa

target, metrics_url = sys.argv[1], sys.argv[2]
failures = 0


def report(name, ok, detail):
    global failures
    failures += 0 if ok else 1
    print("%-14s %s %s" % (name, "PASS" if ok else "FAIL", detail), flush=True)


def reference(q, k, v, causal):
    """float64 attention of one sequence, every block allowed, bottom-right causal."""
    lq, hq, d = q.shape
    lk, hk, _ = k.shape
    g = hq // hk
    out = np.zeros((lq, hq, d))
    for h in range(hq):
        s = q[:, h, :].astype(np.float64) @ k[:, h // g, :].astype(np.float64).T / np.sqrt(d)
        if causal:
            i = np.arange(lq)[:, None]
            j = np.arange(lk)[None, :]
            s = np.where(j <= i + (lk - lq), s, -np.inf)
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        out[:, h, :] = p @ v[:, h // g, :].astype(np.float64)
    return out


def full_mask(hk, lq, lk, sq, sk):
    return np.ones((hk, -(-lq // sq), -(-lk // sk)), bool)


client = hbsa.Client(target, timeout=60)

# --- sessions -------------------------------------------------------------------------------
rng = np.random.default_rng(7)
hq, hk, d, sq, sk = 4, 2, 128, 16, 64
k_all = rng.standard_normal((1008, hk, d)).astype(np.float16)
v_all = rng.standard_normal((1008, hk, d)).astype(np.float16)
worst_ref, worst_attend, steps = 0.0, 0.0, 0
try:
    with client.open_session(dtype="fp16", num_heads_k=hk, head_dim=d) as s:
        s.append("seq", k_all[:600], v_all[:600])
        # chunked prefill: 400 new queries, their K/V appended in the same call, causal
        q = rng.standard_normal((400, hq, d)).astype(np.float16)
        out = s.attend("seq", q, [0, 400], full_mask(hk, 400, 1000, sq, sk), sq, sk, causal=True,
                       append=("seq", k_all[600:1000], v_all[600:1000]))
        chunks = [(q, out, 1000)]
        for step in range(8):
            n = 1001 + step
            qs = rng.standard_normal((1, hq, d)).astype(np.float16)
            o = s.attend("seq", qs, [0, 1], full_mask(hk, 1, n, sq, sk), sq, sk, causal=True,
                         append=("seq", k_all[n - 1:n], v_all[n - 1:n]))
            chunks.append((qs, o, n))
        for qq, o, n in chunks:
            ref = reference(qq, k_all[:n], v_all[:n], True)
            worst_ref = max(worst_ref, float(np.abs(o.astype(np.float64) - ref).max()))
            stateless = client.attend(qq, k_all[:n], v_all[:n], [0, len(qq)], [0, n],
                                      full_mask(hk, len(qq), n, sq, sk), sq, sk, causal=True)
            worst_attend = max(worst_attend, float(np.abs(o.astype(np.float64) -
                                                          stateless.astype(np.float64)).max()))
            steps += 1
        device = s.info.device if hasattr(s.info, "device") else "?"
    report("sessions", worst_ref < 1e-2 and worst_attend == 0.0,
           "%d steps (prefill 600 + 400, 8 decode) on device %s: max|out-ref| %.3g, "
           "max|session-Attend| %.3g" % (steps, device, worst_ref, worst_attend))
except hbsa.HbsaError as e:
    report("sessions", False, "error: %s" % e)

# --- cancellation ---------------------------------------------------------------------------
L, H = 32768, 8
qb = rng.standard_normal((L, H, d)).astype(np.float16)
codes = {}


def deadline_call(seconds):
    try:
        client.attend(qb, qb, qb, [0, L], [0, L], full_mask(H, L, L, 128, 128), 128, 128,
                      timeout=seconds)
        return "OK"
    except hbsa.HbsaError as e:
        return type(e).__name__


deadlines = [0.005, 0.02, 0.05, 0.1, 0.2, 0.4]
with concurrent.futures.ThreadPoolExecutor(len(deadlines)) as pool:
    for c in pool.map(deadline_call, deadlines):
        codes[c] = codes.get(c, 0) + 1
time.sleep(0.5)
text = urllib.request.urlopen(metrics_url).read().decode()
abandoned = [l for l in text.splitlines() if l.startswith("hbsa_abandoned_requests_total")]
probe_q = rng.standard_normal((64, 2, 64)).astype(np.float16)
probe = client.attend(probe_q, probe_q, probe_q, [0, 64], [0, 64], full_mask(2, 64, 64, 16, 16),
                      16, 16, causal=True)
probe_err = float(np.abs(probe.astype(np.float64) - reference(probe_q, probe_q, probe_q, True)).max())
report("cancellation", codes.get("OK", 0) < 6 and probe_err < 1e-2,
       "6 concurrent requests of %d MB with deadlines of 5-400 ms: %s; %s; probe after them max|out-ref| %.3g"
       % (3 * qb.nbytes >> 20, codes, "; ".join(abandoned) or "no hbsa_abandoned_requests_total line",
          probe_err))

# --- Open Inference Protocol ----------------------------------------------------------------
try:
    import tritonclient.grpc as grpcclient
except Exception as e:  # noqa: BLE001 - any import failure means the check cannot run
    print("oip            NOT RUN: tritonclient cannot be imported here (%s)" % e, flush=True)
else:
    tc = grpcclient.InferenceServerClient(url=target)
    qo = rng.standard_normal((40, 2, 64)).astype(np.float16)
    inputs = []
    for name, arr, dt in (("q", qo, "FP16"), ("k", qo, "FP16"), ("v", qo, "FP16"),
                          ("cu_seqlens_q", np.array([0, 40], np.int32), "INT32"),
                          ("cu_seqlens_k", np.array([0, 40], np.int32), "INT32"),
                          ("block_mask", full_mask(2, 40, 40, 8, 8), "BOOL")):
        t = grpcclient.InferInput(name, list(arr.shape), dt)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    params = {"q_block_size": 8, "k_block_size": 8, "causal": True}
    r = tc.infer("hbsa_attention", inputs, parameters=params)
    got = r.as_numpy("out").astype(np.float64)
    err = float(np.abs(got - reference(qo, qo, qo, True)).max())
    report("oip", tc.is_server_ready() and tc.is_model_ready("hbsa_attention") and err < 1e-2,
           "tritonclient %s: ready, ModelInfer out max|out-ref| %.3g"
           % (importlib.metadata.version("tritonclient"), err))

sys.exit(1 if failures else 0)
