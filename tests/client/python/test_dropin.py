"""hbsa.HBSAttention, the drop-in for upstream hbsattn's HBSAttention, against a real server:
upstream's signature (19 positional arguments, keywords), its checks and exception kinds, the
golden answers, no backward, the torch.library operator (opcheck) and torch.compile with
fullgraph=True. Needs torch (the `newest` venv of run_python_tests.sh installs it)."""
import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

import hbsa
from conftest import Case, all_cases
from test_client import assert_out_matches

# Upstream's parameters, in order (hbsattn/hbsa_interface.py, _HBSAttentionFunction.forward);
# the first ten have no default.
UPSTREAM = ["q", "k", "v", "cu_q_seqlens", "cu_k_seqlens", "block_mask", "q_block_size",
            "k_block_size", "causal", "softmax_scale", "tile_mode", "num_q_block", "cu_q_block",
            "q_block_to_batch", "cu_num_q_block", "num_k_block", "cu_k_block",
            "k_block_to_batch", "cu_num_k_block"]


def as_torch(a, dtype):
    if dtype == "bf16":  # NumPy carries bf16 as uint16 bit patterns
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


def torch_args(case):
    """The case's ten upstream arguments as torch tensors (int32 offsets, bool mask)."""
    a = list(case.args())
    a[:3] = [as_torch(x, case.dtype) for x in a[:3]]
    a[3], a[4] = torch.from_numpy(case.cu_q), torch.from_numpy(case.cu_k)
    a[5] = torch.from_numpy(case.block_mask)
    return a


def to_numpy(out, dtype):
    return out.view(torch.int16).numpy().view(np.uint16) if dtype == "bf16" else out.numpy()


@pytest.fixture(autouse=True)
def target(server, monkeypatch):
    monkeypatch.setenv("HBSA_TARGET", server.target)


CASES = [Case(p) for p in all_cases()]
SMALL = next(c for c in CASES if c.name == "readme_example_causal")


def test_signature_is_upstreams():
    params = list(inspect.signature(hbsa.HBSAttention).parameters.values())
    assert [p.name for p in params] == UPSTREAM
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    assert [p.default is p.empty for p in params] == [True] * 10 + [False] * 9
    assert params[10].default == "auto"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_golden_cases(case):
    out = hbsa.HBSAttention(*torch_args(case))
    assert isinstance(out, torch.Tensor) and out.dtype == as_torch(case.q, case.dtype).dtype
    assert out.shape == case.q.shape and out.is_contiguous()
    assert_out_matches(case, to_numpy(out, case.dtype))


def test_all_19_positional_and_keywords_agree():
    """The precomputed block tables (here deliberately wrong) are accepted and ignored."""
    a = torch_args(SMALL)
    ref = hbsa.HBSAttention(*a)
    junk = torch.zeros(3, dtype=torch.int32)
    out19 = hbsa.HBSAttention(*a, "fix", 7, junk, junk, junk, 9, junk, junk, junk)
    kw = hbsa.HBSAttention(**dict(zip(UPSTREAM, a)), tile_mode="auto", num_q_block=None,
                           cu_k_block=junk)
    mixed = hbsa.HBSAttention(*a[:6], k_block_size=a[7], q_block_size=a[6], softmax_scale=a[9],
                              causal=a[8])
    for out in (out19, kw, mixed):
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
    # Offsets as Python lists work too (upstream needs tensors; accepting more breaks nothing).
    lists = list(a)
    lists[3], lists[4] = SMALL.cu_q.tolist(), SMALL.cu_k.tolist()
    torch.testing.assert_close(hbsa.HBSAttention(*lists), ref, rtol=0, atol=0)


def test_python_rejects_bad_calls_with_type_error():
    a = torch_args(SMALL)
    with pytest.raises(TypeError):
        hbsa.HBSAttention(*a[:9])  # softmax_scale has no default upstream
    with pytest.raises(TypeError):
        hbsa.HBSAttention(*a, block_table=None)
    with pytest.raises(TypeError):
        hbsa.HBSAttention(*a, "auto", *([None] * 8), None)  # 20 positional


def raises_both(builtin, match):
    """pytest.raises for an error that is both `builtin` and hbsa.InvalidArgumentError."""
    class Both:
        def __enter__(self):
            self.ctx = pytest.raises(builtin, match=match)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self.ctx.__exit__(*exc)
            assert isinstance(self.info.value, hbsa.InvalidArgumentError), self.info.value
            assert self.info.value.code.name == "INVALID_ARGUMENT"
            return handled
    return Both()


def test_tile_mode_must_be_auto_or_fix():
    a = torch_args(SMALL)
    with raises_both(ValueError, "Invalid tile mode: 'bogus'"):
        hbsa.HBSAttention(*a, tile_mode="bogus")
    assert isinstance(hbsa.InvalidArgumentValueError("x"), ValueError)


@pytest.mark.parametrize("mask", [
    lambda m: m.to(torch.int64), lambda m: m.to(torch.uint8), lambda m: m.numpy(),
    lambda m: m.tolist()], ids=["int64", "uint8", "numpy", "list"])
def test_mask_must_be_a_bool_tensor(mask):
    a = torch_args(SMALL)
    a[5] = mask(a[5])
    with raises_both(AssertionError, "block_mask must be a boolean tensor"):
        hbsa.HBSAttention(*a)


def test_mask_shape_and_checks_in_upstreams_order():
    a = torch_args(SMALL)
    hk, nq, nk = a[5].shape  # (2, 5, 12): 5 query blocks of 32, 12 key blocks of 16
    assert (hk, nq, nk) == (2, 5, 12)
    short = list(a)
    short[5] = a[5][:, :, :-1]
    with raises_both(AssertionError, r"= \(2, 5, 12\); got \(2, 5, 11\)"):
        hbsa.HBSAttention(*short)
    # The shape comes from the offsets: other key block size, other count.
    other = list(a)
    other[7] = 8
    with raises_both(AssertionError, r"= \(2, 5, 21\)"):
        hbsa.HBSAttention(*other)
    # Upstream checks the mask before tile_mode: a wrong shape wins over a bad tile_mode.
    with raises_both(AssertionError, "block_mask must have shape"):
        hbsa.HBSAttention(*short, tile_mode="bogus")
    # ... and tile_mode before the head counts.
    gqa = list(a)
    gqa[0] = a[0][:, :3, :].contiguous()  # 3 query heads over 2 KV heads
    with raises_both(ValueError, "Invalid tile mode"):
        hbsa.HBSAttention(*gqa, tile_mode="bogus")
    with raises_both(AssertionError, "divisible by nhead_k"):
        hbsa.HBSAttention(*gqa)


def test_what_the_server_refuses_is_a_value_error():
    a = torch_args(SMALL)
    bad = list(a)
    bad[2] = a[2][:, :, :16].contiguous()  # v's head dim differs from q's
    with raises_both(ValueError, r"v\.shape \[157, 2, 16\] must equal k\.shape"):
        hbsa.HBSAttention(*bad)
    dec = list(a)
    dec[3] = torch.tensor([0, 32, 16, 96, 128, 160], dtype=torch.int32)
    with raises_both(ValueError, "cu_q_seqlens must be non-decreasing"):
        hbsa.HBSAttention(*dec)
    f64 = list(a)
    f64[:3] = [x.to(torch.float64) for x in a[:3]]
    with raises_both(ValueError, "float16, bfloat16 or float32"):
        hbsa.HBSAttention(*f64)
    with raises_both(ValueError, "q must be a torch.Tensor"):
        hbsa.HBSAttention(SMALL.q, *a[1:])


def test_block_sizes_upstream_limits_are_not_imposed():
    """Upstream's kernels need multiples of 16 ('auto') or powers of 2 ('fix'); the service
    computes any positive sizes."""
    case = next(c for c in CASES if c.name == "arbitrary_blocks_7x33")
    assert case.meta["sq"] % 16 and case.meta["sk"] % 16
    for mode in ("auto", "fix"):
        out = hbsa.HBSAttention(*torch_args(case), tile_mode=mode)
        assert_out_matches(case, to_numpy(out, case.dtype))


def test_no_backward():
    a = torch_args(SMALL)
    a[0] = a[0].to(torch.float32).requires_grad_()
    a[1], a[2] = a[1].to(torch.float32), a[2].to(torch.float32)
    out = hbsa.HBSAttention(*a)
    assert out.requires_grad
    with pytest.raises(NotImplementedError, match="gradient"):
        out.sum().backward()


def test_the_operator_passes_opcheck():
    """torch.library.opcheck: schema, fake (meta) implementation against the real one,
    autograd registration, AOT dispatch."""
    a = torch_args(SMALL)
    torch.library.opcheck(torch.ops.hbsa.attention.default,
                          (*a[:6], a[6], a[7], a[8], None, "auto"))


class Block(torch.nn.Module):
    """A model around the call: projections before and after, as an attention layer has."""

    def __init__(self, hq, hk, d, sq, sk):
        super().__init__()
        self.hq, self.hk, self.d, self.sq, self.sk = hq, hk, d, sq, sk
        g = torch.Generator().manual_seed(0)
        self.wq = torch.nn.Parameter(torch.randn(hq * d, hq * d, generator=g) / d)
        self.wo = torch.nn.Parameter(torch.randn(hq * d, hq * d, generator=g) / d)

    def forward(self, x, k, v, cu_q, cu_k, mask):
        q = (x.reshape(x.shape[0], -1) @ self.wq).reshape(-1, self.hq, self.d)
        o = hbsa.HBSAttention(q, k, v, cu_q, cu_k, mask, self.sq, self.sk, True, None)
        return o.reshape(o.shape[0], -1) @ self.wo


def test_torch_compile_fullgraph_traces_through_the_operator():
    a = torch_args(SMALL)
    q, k, v = (x.to(torch.float32) for x in a[:3])
    model = Block(q.shape[1], k.shape[1], q.shape[2], a[6], a[7])
    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    args = (q, k, v, a[3], a[4], a[5])
    with torch.no_grad():
        eager = model(*args)
        compiled = torch.compile(model, fullgraph=True, backend=recording_backend)(*args)
        aot = torch.compile(model, fullgraph=True, backend="aot_eager")(*args)
    assert len(graphs) == 1
    targets = [n.target for n in graphs[0].graph.nodes if n.op == "call_function"]
    assert torch.ops.hbsa.attention.default in targets, targets
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)
    torch.testing.assert_close(aot, eager, rtol=1e-5, atol=1e-5)
    # The operator's checks still run in the compiled graph, with upstream's exception kinds.
    bad = (q, k, v, a[3], a[4], a[5][:, :, :-1])
    torch._dynamo.reset()
    with torch.no_grad(), raises_both(AssertionError, "block_mask must have shape"):
        torch.compile(model, fullgraph=True, backend="aot_eager")(*bad)


def test_import_hbsa_needs_no_torch_and_ships_py_typed():
    code = ("import sys, hbsa; assert 'torch' not in sys.modules, 'torch imported'; "
            "import importlib.resources as r; assert (r.files('hbsa') / 'py.typed').is_file(); "
            "assert 'HBSAttention' not in hbsa.__all__")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
