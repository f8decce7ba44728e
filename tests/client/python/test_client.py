"""The installed `hbsa` package against a real server: every golden case in every mask form
with the LSE (tolerances of SEMANTICS.md), mask objects, numpy/bf16/torch, async, errors."""
import asyncio
import os

import grpc
import numpy as np
import pytest

import hbsa
from conftest import Case, all_cases

TOL = {"fp16": (2e-3, 2e-3, 1e-3), "bf16": (1e-2, 1e-2, 1e-3), "fp32": (1e-4, 1e-4, 1e-5)}
CASES = all_cases()


def to_f32(out, dtype):
    out = np.asarray(out)
    if dtype == "bf16":
        return (out.astype(np.uint32) << 16).view(np.float32)
    return out.astype(np.float32)


def assert_out_matches(case, out):
    atol, rtol, _ = TOL[case.dtype]
    got = to_f32(out, case.dtype)
    assert got.shape == case.out.shape
    empty = np.isneginf(case.lse)  # rows with no allowed key: exactly 0
    ok = np.abs(got - case.out) <= atol + rtol * np.abs(case.out)
    ok[empty] = (got[empty] == 0)
    assert ok.all(), "%s: %d elements out of tolerance, max err %g" % (
        case.name, (~ok).sum(), np.nanmax(np.abs(got - case.out)))


def assert_matches(case, out, lse):
    assert_out_matches(case, out)
    empty = np.isneginf(case.lse)
    assert np.isneginf(lse[empty]).all()
    assert np.all(np.abs(lse[~empty] - case.lse[~empty]) <= TOL[case.dtype][2])


def test_golden_cases_present():
    assert len(CASES) >= 16


@pytest.mark.parametrize("form", ["dense", "per_sequence", "compact"])
@pytest.mark.parametrize("path", CASES, ids=os.path.basename)
def test_golden_case(client, path, form):
    c = Case(path)
    out, lse = client.attend(*c.args(), return_lse=True, dtype=c.dtype, mask_form=form)
    assert isinstance(out, np.ndarray) and out.dtype == c.q.dtype
    assert lse.dtype == np.float32 and lse.shape == c.lse.shape
    assert_matches(c, out, lse)


def _blocks(cu, size):
    n = np.diff(np.asarray(cu, np.int64))
    return np.concatenate([[0], np.cumsum((n + size - 1) // size)])


@pytest.mark.parametrize("path", CASES[:6], ids=os.path.basename)
def test_mask_objects(client, path):
    """CompactMask and PerSequenceMask inputs, each sent in every wire form."""
    c = Case(path)
    sq, sk = c.meta["sq"], c.meta["sk"]
    qs, ks = _blocks(c.cu_q, sq), _blocks(c.cu_k, sk)
    hk, nq, nk = c.block_mask.shape
    rows = c.block_mask.reshape(hk * nq, nk)
    compact = hbsa.CompactMask(np.concatenate([[0], np.cumsum(rows.sum(1))]),
                               np.nonzero(rows)[1].astype(np.int32))
    per_seq = hbsa.PerSequenceMask([c.block_mask[:, qs[b]:qs[b + 1], ks[b]:ks[b + 1]]
                                    for b in range(len(qs) - 1)])
    for mask in (compact, per_seq):
        for form in ("dense", "per_sequence", "compact"):
            args = list(c.args())
            args[5] = mask
            out, lse = client.attend(*args, return_lse=True, dtype=c.dtype, mask_form=form)
            assert_matches(c, out, lse)


def test_upstream_positional_order_and_default_scale(client):
    """attend(q, k, v, cu_q, cu_k, block_mask, Sq, Sk, causal, softmax_scale), upstream's order;
    softmax_scale None is 1/sqrt(D). (The torch drop-in hbsa.HBSAttention: test_dropin.py.)"""
    c = next(Case(p) for p in CASES if Case(p).dtype == "fp16" and Case(p).meta["scale"] is None)
    out = client.attend(*c.args())
    assert_out_matches(c, out)
    assert_out_matches(c, client.attend(*c.args()[:9], 1.0 / np.sqrt(c.q.shape[2])))


def test_async_client(server):
    cases = [Case(p) for p in CASES[:5]]

    async def go():
        async with hbsa.AsyncClient(server.target) as ac:
            assert await ac.health() == "SERVING"
            caps = await ac.capabilities()
            assert caps.backend == "cpu"
            return await asyncio.gather(*[
                ac.attend(*c.args(), return_lse=True, dtype=c.dtype, mask_form="compact")
                for c in cases])

    for c, (out, lse) in zip(cases, asyncio.run(go())):
        assert_matches(c, out, lse)


def test_health_and_capabilities(client):
    assert client.health() == "SERVING"
    assert client.health("hbsa.v1.Attention") == "SERVING"
    caps = client.capabilities()
    assert set(caps.mask_formats) == {"dense", "per_sequence", "compact"}


def test_invalid_argument_carries_code_and_field(client):
    c = Case(CASES[0])
    args = list(c.args())
    args[3] = np.concatenate([[5], c.cu_q[1:]]).astype(np.int32)  # must start at 0
    with pytest.raises(hbsa.InvalidArgumentError) as e:
        client.attend(*args, dtype=c.dtype)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "cu_seqlens_q" in e.value.message
    assert isinstance(e.value, hbsa.HbsaError)
    args = list(c.args())
    args[5] = c.block_mask[:, :-1]  # wrong dense mask shape: the server names dense_mask
    with pytest.raises(hbsa.InvalidArgumentError) as e:
        client.attend(*args, dtype=c.dtype)
    assert "dense_mask" in e.value.message
    assert client.health() == "SERVING"
    client.attend(*c.args(), dtype=c.dtype)  # still answers


def test_client_side_errors(client):
    c = Case(CASES[0])
    args = list(c.args())
    args[0] = c.q.astype(np.float64)
    with pytest.raises(hbsa.InvalidArgumentError, match="client:"):
        client.attend(*args)
    u16 = next(Case(p) for p in CASES if Case(p).dtype == "bf16")
    with pytest.raises(hbsa.InvalidArgumentError, match="bf16"):
        client.attend(*u16.args())  # uint16 without dtype="bf16"


def test_deadline_exceeded(client):
    """One fp16 sequence of 2048 rows, 4 heads, D = 64, every block on (3 MiB, about 4 GFLOP):
    a 0.5 ms deadline expires on most tries whatever size the golden cases have."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2048, 4, 64)).astype(np.float16) for _ in range(3))
    cu = np.array([0, 2048], np.int32)
    mask = np.ones((4, 32, 32), bool)
    seen = 0
    for _ in range(50):
        try:
            client.attend(q, k, v, cu, cu, mask, 64, 64, timeout=0.0005)
        except hbsa.DeadlineExceededError as e:
            assert e.code == grpc.StatusCode.DEADLINE_EXCEEDED
            seen += 1
            if seen >= 3:
                break
    assert seen > 0


def test_unavailable():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = Case(CASES[0])
    with hbsa.Client("127.0.0.1:%d" % port, timeout=5, retries=2) as dead:
        with pytest.raises(hbsa.UnavailableError):
            dead.attend(*c.args(), dtype=c.dtype)


def test_torch_tensors(client):
    torch = pytest.importorskip(
        "torch", reason="torch is not installed in the fresh test venv (a ~200 MB+ wheel, not "
                        "cheap in CI); the numpy and raw-uint16 bf16 paths are tested above")
    for p in CASES:
        c = Case(p)
        conv = (lambda a: torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)) \
            if c.dtype == "bf16" else torch.from_numpy
        args = list(c.args())
        args[:3] = [conv(a) for a in args[:3]]
        args[5] = torch.from_numpy(c.block_mask)
        out, lse = client.attend(*args, return_lse=True)
        assert isinstance(out, torch.Tensor) and out.dtype == args[0].dtype
        ref = out.view(torch.int16).numpy().view(np.uint16) if c.dtype == "bf16" else out.numpy()
        assert_matches(c, ref, lse.numpy())


def test_answer_into_caller_arrays_and_raw_request_bytes(client):
    """out=/lse_out= receive the answer in place; the request bytes built around the arrays
    parse as the same AttendRequest protobuf would build."""
    from hbsa._client import build_request, build_request_bytes
    from hbsa.v1 import attention_pb2
    case = Case(CASES[0])
    out = np.zeros(case.q.shape, dtype=case.q.dtype)
    lse = np.full(case.lse.shape, np.nan, dtype=np.float32)
    args = case.args()
    got, got_lse = client.attend(*args, return_lse=True, dtype=case.dtype, out=out, lse_out=lse)
    assert got is out and got_lse is lse
    assert_out_matches(case, out)
    finite = np.isfinite(case.lse)
    assert np.all(np.abs(lse[finite] - case.lse[finite]) <= TOL[case.dtype][2])
    assert np.all(np.isneginf(lse[~finite]))
    raw, _, _ = build_request_bytes(*args, dtype=case.dtype, request_id="x")
    want, _ = build_request(*args, dtype=case.dtype, request_id="x")
    assert attention_pb2.AttendRequest.FromString(raw) == want
    with pytest.raises(hbsa.HbsaError):
        client.attend(*args, dtype=case.dtype, out=np.zeros((1, 1, 1), dtype=out.dtype))
