"""Sessions of server-resident K/V through the Python package (hbsa.Session), against the real
server of conftest.py: a chunked prefill and decode steps, each compared with Client.attend of
the whole K/V (the stateless path; equal bit for bit on the CPU backend), the context manager
closing the session (NotFoundError afterwards), and refusals naming the field."""
import numpy as np
import pytest

import hbsa

HQ, HK, D, SQ, SK = 4, 2, 16, 2, 3


def _mask(rng, cu_q, cu_k):
    """A random dense block mask [Hk, Nq, Nk] (global numbering) with about 70 % of blocks on."""
    nq = sum(-(-(cu_q[b + 1] - cu_q[b]) // SQ) for b in range(len(cu_q) - 1))
    nk = sum(-(-(cu_k[b + 1] - cu_k[b]) // SK) for b in range(len(cu_k) - 1))
    return rng.random((HK, nq, nk)) < 0.7


def test_prefill_and_decode_match_stateless_attend(client):
    rng = np.random.default_rng(11)
    resident = {"a": [], "b": []}
    with client.open_session("fp32", HK, D) as s:
        assert s.info.page_tokens > 0
        ids = ["a", "b"]
        # Chunked prefill (first chunk by append, the rest inside attend), then decode.
        plan = [(5, 7, True), (4, 3, False), (6, 2, False)] + [(1, 1, False)] * 6
        for step, (na, nb, separate) in enumerate(plan):
            k = rng.standard_normal((na + nb, HK, D), dtype=np.float32)
            v = rng.standard_normal((na + nb, HK, D), dtype=np.float32)
            resident["a"].append((k[:na], v[:na]))
            resident["b"].append((k[na:], v[na:]))
            if separate:
                assert s.append(ids, k, v, [0, na, na + nb]) == [na, nb]
                append = None
            else:
                append = (ids, k, v, [0, na, na + nb])
            q = rng.standard_normal((na + nb, HQ, D), dtype=np.float32)
            cu_q = [0, na, na + nb]
            full_k = np.concatenate([x[0] for sid in ids for x in resident[sid]])
            full_v = np.concatenate([x[1] for sid in ids for x in resident[sid]])
            la = sum(len(x[0]) for x in resident["a"])
            cu_k = [0, la, len(full_k)]
            mask = _mask(rng, cu_q, cu_k)
            out, lse = s.attend(ids, q, cu_q, mask, SQ, SK, causal=True, return_lse=True,
                                append=append)
            want, want_lse = client.attend(q, full_k, full_v, cu_q, cu_k, mask, SQ, SK,
                                           causal=True, return_lse=True)
            assert out.dtype == np.float32 and out.shape == (na + nb, HQ, D)
            np.testing.assert_array_equal(out, want, err_msg="step %d" % step)
            np.testing.assert_array_equal(lse, want_lse)
            assert s.lengths == {"a": la, "b": len(full_k) - la}
        sid = s.id
    # Closed on exit: the session is gone. Another Session object pointed at the old id gets
    # the server's answer.
    other = client.open_session("fp32", HK, D)
    fresh_id, other.id = other.id, sid
    with pytest.raises(hbsa.NotFoundError, match="is gone: it was closed"):
        other.attend("a", np.zeros((1, HQ, D), np.float32), [0, 1], np.ones((HK, 1, 1), bool),
                     SQ, SK)
    other.id = fresh_id
    other.close()


def test_session_refusals_name_the_field(client):
    with client.open_session("fp32", HK, D) as s:
        k = np.zeros((3, HK + 1, D), np.float32)
        with pytest.raises(hbsa.InvalidArgumentError, match=r"rows\.k\.shape must be \[total, Hk, D\]"):
            s.append("a", k, k)
        with pytest.raises(hbsa.NotFoundError, match=r'sequence_ids\[0\] \("zz"\) is not in session'):
            s.attend("zz", np.zeros((1, HQ, D), np.float32), [0, 1], np.ones((HK, 1, 1), bool),
                     SQ, SK)
    with pytest.raises(hbsa.InvalidArgumentError, match="num_heads_k must be in"):
        client.open_session("fp32", 0, D)


def test_torch_session(client):
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(3)
    k = torch.randn(9, HK, D, generator=g, dtype=torch.bfloat16)
    v = torch.randn(9, HK, D, generator=g, dtype=torch.bfloat16)
    q = torch.randn(1, HQ, D, generator=g, dtype=torch.bfloat16)
    mask = torch.ones(HK, 1, 3, dtype=torch.bool)
    with client.open_session(torch.bfloat16, HK, D) as s:
        s.append("x", k[:8], v[:8])
        out = s.attend("x", q, [0, 1], mask, SQ, SK, causal=True, append=("x", k[8:], v[8:]))
    want = client.attend(q, k, v, [0, 1], [0, 9], mask, SQ, SK, causal=True)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16
    assert torch.equal(out, want)


def test_router_hash_matches_the_cpp_client_and_moves_only_removed_keys():
    # The constants are the C++ test's (tests/client/session_client_test.cc).
    assert hbsa.route_hash("") == 17280346270528514342
    assert hbsa.route_hash("a") == 0x82a2a958a9bece5b
    three = ["10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"]
    everyone = hbsa.SessionRouter(three)
    two = hbsa.SessionRouter([three[0], three[2]])
    counts = {a: 0 for a in three}
    for i in range(3000):
        key = "k%d" % i
        before = everyone.address_for(key)
        counts[before] += 1
        if before != three[1]:
            assert two.address_for(key) == before
    assert all(600 < n < 1400 for n in counts.values()), counts


def test_router_opens_on_the_home_replica(server):
    router = hbsa.SessionRouter([server.target])
    with router.open_session("conversation-1", "fp32", HK, D) as s:
        assert s.append("x", np.zeros((2, HK, D), np.float32), np.zeros((2, HK, D), np.float32)) == [2]
    router.close()
