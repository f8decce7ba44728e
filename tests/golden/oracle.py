"""oracle.py: the attention contract (SEMANTICS.md of the shared project folder; the top-level
README summarises it) as a plain dense float64 NumPy computation, written from the contract
alone (no code shared with the C++ backends). make_golden.py uses it to produce the expected out.npy / lse.npy of every case.

Everything here is float64; callers round once to float32 when they store the result.
"""
import numpy as np


def block_counts(lengths, block):
    """Blocks per sequence: ceil(L / block) (an empty sequence has none)."""
    return [(n + block - 1) // block for n in lengths]


def attention(q, k, v, cu_q, cu_k, block_mask, sq, sk, causal, scale):
    """Block-sparse attention over a packed batch.

    q: [total_q, hq, d] float64; k, v: [total_k, hk, d] float64; cu_q, cu_k: [B+1] offsets;
    block_mask: [hk, Nq, Nk] bool, global block numbering (sequence after sequence);
    sq, sk: block sizes; causal: bottom-right aligned; scale: softmax scale (already resolved).
    Returns (out [total_q, hq, d] float64, lse [total_q, hq] float64); rows with no allowed key
    get out = 0 and lse = -inf.
    """
    total_q, hq, d = q.shape
    hk = k.shape[1]
    assert hq % hk == 0, "hq must be a multiple of hk"
    group = hq // hk
    out = np.zeros((total_q, hq, d), np.float64)
    lse = np.full((total_q, hq), -np.inf, np.float64)
    lq = [int(cu_q[b + 1] - cu_q[b]) for b in range(len(cu_q) - 1)]
    lk = [int(cu_k[b + 1] - cu_k[b]) for b in range(len(cu_k) - 1)]
    q_first = np.cumsum([0] + block_counts(lq, sq))  # global index of each sequence's 1st block
    k_first = np.cumsum([0] + block_counts(lk, sk))
    for b in range(len(lq)):
        if lq[b] == 0 or lk[b] == 0:
            continue  # no pair of this sequence exists; its rows (if any) stay empty
        i = np.arange(lq[b])  # local query rows
        j = np.arange(lk[b])  # local key rows
        allowed_tokens = np.ones((lq[b], lk[b]), bool)
        if causal:
            allowed_tokens = i[:, None] + (lk[b] - lq[b]) >= j[None, :]
        rows = slice(int(cu_q[b]), int(cu_q[b + 1]))
        keys = slice(int(cu_k[b]), int(cu_k[b + 1]))
        for h in range(hq):
            g = h // group
            plane = block_mask[g][q_first[b] + i // sq][:, k_first[b] + j // sk]  # [lq, lk]
            allowed = plane & allowed_tokens
            s = scale * (q[rows, h, :] @ k[keys, g, :].T)  # [lq, lk]
            s = np.where(allowed, s, -np.inf)
            live = allowed.any(axis=1)
            m = np.where(live, s.max(axis=1, initial=-np.inf), 0.0)
            p = np.where(allowed, np.exp(s - m[:, None]), 0.0)
            den = p.sum(axis=1)
            o = (p @ v[keys, g, :]) / np.where(live, den, 1.0)[:, None]
            out[rows, h, :] = np.where(live[:, None], o, 0.0)
            lse[rows, h] = np.where(live, m + np.log(np.where(live, den, 1.0)), -np.inf)
    return out, lse


def default_scale(d):
    """1/sqrt(d), the scale an unset softmax_scale means."""
    return d ** -0.5
