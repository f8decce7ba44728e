"""Client.attend_stream and AsyncClient.attend_stream against a real server: every golden case
over one stream (each answer checked against its expected output and LSE), the bound on
requests in flight, per-request errors next to good answers, the stream's deadline, early
close, caller buffers and torch tensors."""
import asyncio

import numpy as np
import pytest

import hbsa
from conftest import Case, all_cases
from test_client import assert_matches, assert_out_matches

CASES = [Case(p) for p in all_cases()]
FORMS = ("dense", "per_sequence", "compact")


def item(case, i=0, **kw):
    d = dict(q=case.q, k=case.k, v=case.v, cu_seqlens_q=case.cu_q, cu_seqlens_k=case.cu_k,
             block_mask=case.block_mask, q_block_size=case.meta["sq"],
             k_block_size=case.meta["sk"], causal=case.meta["causal"],
             softmax_scale=case.meta["scale"], return_lse=True, dtype=case.dtype,
             mask_form=FORMS[i % 3], request_id="%s-%d" % (case.name, i))
    d.update(kw)
    return d


def bad_cu(case, **kw):
    return item(case, request_id="bad", cu_seqlens_q=np.concatenate(
        [[5], case.cu_q[1:]]).astype(np.int32), **kw)  # must start at 0


def slow_item(request_id):
    """fp16, 2048 rows, 4 heads, D = 64, every block on: about 4 GFLOP on the CPU backend."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((2048, 4, 64)).astype(np.float16) for _ in range(3))
    cu = np.array([0, 2048], np.int32)
    return dict(q=q, k=k, v=v, cu_seqlens_q=cu, cu_seqlens_k=cu,
                block_mask=np.ones((4, 32, 32), bool), q_block_size=64, k_block_size=64,
                request_id=request_id)


def test_every_golden_case_over_one_stream(client):
    assert len(CASES) >= 16
    items = [item(c, i) for i, c in enumerate(CASES)]
    results = list(client.attend_stream(items, max_in_flight=4))
    assert sorted(r.index for r in results) == list(range(len(CASES)))
    for r in results:
        c = CASES[r.index]
        assert r.ok, r
        assert r.request_id == "%s-%d" % (c.name, r.index)
        assert r.response.backend == "cpu"
        out, lse = r.result()
        assert isinstance(out, np.ndarray) and out.dtype == c.q.dtype
        assert_matches(c, out, lse)


def test_positional_items_and_caller_buffers(client):
    c = CASES[0]
    out = np.zeros(c.q.shape, dtype=c.q.dtype)
    lse = np.full(c.lse.shape, np.nan, np.float32)
    results = list(client.attend_stream(
        [c.args(), item(c, out=out, lse_out=lse)]))
    by_index = {r.index: r for r in results}
    assert_out_matches(c, by_index[0].result())  # positional: no LSE asked
    got, got_lse = by_index[1].result()
    assert got is out and got_lse is lse
    assert_matches(c, out, lse)


def test_back_pressure_bounds_what_is_in_flight(client):
    window = 2
    pulled = []

    def items():
        for i in range(3 * len(CASES)):
            pulled.append(i)
            yield item(CASES[i % len(CASES)], i)

    answered = 0
    for r in client.attend_stream(items(), max_in_flight=window):
        # Items are read only when a slot is free: never more than `window` ahead.
        assert len(pulled) - answered <= window
        answered += 1
        assert_matches(CASES[r.index % len(CASES)], *r.result())
    assert answered == len(pulled) == 3 * len(CASES)
    with pytest.raises(hbsa.InvalidArgumentError, match="max_in_flight"):
        client.attend_stream([], max_in_flight=0)


def test_a_bad_request_fails_alone(client):
    c = CASES[0]
    items = [item(c, 0), bad_cu(c), item(c, 2, q=c.q.astype(np.float64), dtype=None),
             item(c, 3, request_id="same"), item(c, 4, request_id="same"), item(c, 5)]
    results = {r.index: r for r in client.attend_stream(items, max_in_flight=8)}
    assert sorted(results) == list(range(6))
    bad = results[1]
    assert isinstance(bad.error, hbsa.InvalidArgumentError)
    assert "cu_seqlens_q" in bad.error.message and bad.request_id == "bad"
    assert bad.response is not None and bad.value is None
    with pytest.raises(hbsa.InvalidArgumentError):
        bad.result()
    local = results[2]  # refused by the client: never sent
    assert isinstance(local.error, hbsa.InvalidArgumentError)
    assert "client:" in local.error.message and local.response is None
    dup = results[4]  # sent while "same" was still in flight
    assert isinstance(dup.error, hbsa.InvalidArgumentError)
    assert "already in flight" in dup.error.message
    for i in (0, 3, 5):
        assert_matches(c, *results[i].result())
    assert client.health() == "SERVING"


def test_stream_deadline_raises(client):
    with pytest.raises(hbsa.DeadlineExceededError):
        for _ in client.attend_stream([slow_item(str(i)) for i in range(4)], timeout=0.01):
            pass
    assert client.health() == "SERVING"


def test_breaking_out_cancels_the_stream(client):
    seen = 0
    for r in client.attend_stream(item(c, i) for i, c in enumerate(CASES * 4)):
        assert r.ok
        seen += 1
        break
    assert seen == 1
    c = CASES[0]
    assert_matches(c, *client.attend(*c.args(), return_lse=True, dtype=c.dtype))


def test_async_stream(server):
    window = 3
    pulled = []

    async def items():
        for i, c in enumerate(CASES):
            pulled.append(i)
            yield item(c, i)
        pulled.append("bad")
        yield bad_cu(CASES[0])

    async def go():
        async with hbsa.AsyncClient(server.target) as ac:
            got = []
            async for r in ac.attend_stream(items(), max_in_flight=window):
                assert len(pulled) - len(got) <= window
                got.append(r)
            # A plain iterable works too.
            got_sync_items = [r async for r in ac.attend_stream([item(CASES[1], 99)])]
            with pytest.raises(hbsa.DeadlineExceededError):
                async for _ in ac.attend_stream([slow_item("a"), slow_item("b")], timeout=0.01):
                    pass
            return got, got_sync_items

    got, plain = asyncio.run(go())
    assert sorted(r.index for r in got) == list(range(len(CASES) + 1))
    for r in got:
        if r.index == len(CASES):
            assert isinstance(r.error, hbsa.InvalidArgumentError)
            assert "cu_seqlens_q" in r.error.message
        else:
            assert_matches(CASES[r.index], *r.result())
    assert len(plain) == 1
    assert_matches(CASES[1], *plain[0].result())


def test_stream_torch_tensors(client):
    torch = pytest.importorskip(
        "torch", reason="torch is installed in the newest venv only (see run_python_tests.sh)")
    items = []
    for i, c in enumerate(CASES):
        conv = (lambda a: torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)) \
            if c.dtype == "bf16" else torch.from_numpy
        items.append(item(c, i, q=conv(c.q), k=conv(c.k), v=conv(c.v), dtype=None,
                          block_mask=torch.from_numpy(c.block_mask)))
    results = list(client.attend_stream(items))
    assert len(results) == len(CASES)
    for r in results:
        c = CASES[r.index]
        out, lse = r.result()
        assert isinstance(out, torch.Tensor) and out.dtype == items[r.index]["q"].dtype
        ref = out.view(torch.int16).numpy().view(np.uint16) if c.dtype == "bf16" else out.numpy()
        assert_matches(c, ref, lse.numpy())
