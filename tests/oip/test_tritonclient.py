"""hbsa-server's Open Inference Protocol front end driven by the stock Triton client
(tritonclient.grpc) over loopback: every golden case through InferenceServerClient.infer
(raw inputs with a BOOL mask and with a bit-packed UINT8 mask), typed contents, errors that name
the field, health (start-up, serving, drain), metadata and config, ModelStreamInfer, both services on
one port."""
import os
import signal
import threading
import time

import grpc
import ml_dtypes
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from conftest import TOL, Case, HbsaServer, all_cases, server_binary, triton_ready

CASES = all_cases()
MODEL = "hbsa_attention"
NP_OF = {"fp16": np.float16, "fp32": np.float32}
TRITON_OF = {"fp16": "FP16", "bf16": "BF16", "fp32": "FP32"}


def as_triton(case, a):
    """A golden q/k/v array as tritonclient takes it (bf16: ml_dtypes.bfloat16 bit patterns)."""
    return a.view(ml_dtypes.bfloat16) if case.dtype == "bf16" else a


def to_f32(out):
    return np.asarray(out).astype(np.float32)


def inputs_of(case, mask="bool"):
    def tensor(name, a, datatype):
        t = grpcclient.InferInput(name, list(a.shape), datatype)
        t.set_data_from_numpy(a)
        return t
    if mask == "bool":
        m, mt = case.block_mask, "BOOL"
    else:  # each row of Nk bits packed, least significant bit first
        m, mt = np.packbits(case.block_mask, axis=-1, bitorder="little"), "UINT8"
    dt = TRITON_OF[case.dtype]
    return [tensor("q", as_triton(case, case.q), dt), tensor("k", as_triton(case, case.k), dt),
            tensor("v", as_triton(case, case.v), dt), tensor("cu_seqlens_q", case.cu_q, "INT32"),
            tensor("cu_seqlens_k", case.cu_k, "INT32"), tensor("block_mask", m, mt)]


def params_of(case, return_lse=True):
    p = {"q_block_size": case.meta["sq"], "k_block_size": case.meta["sk"],
         "causal": bool(case.meta["causal"]), "return_lse": return_lse}
    if case.meta["scale"] is not None:
        p["softmax_scale"] = float(case.meta["scale"])
    return p


def assert_out_matches(case, out):
    atol, rtol, _ = TOL[case.dtype]
    got = to_f32(out)
    assert got.shape == case.out.shape
    empty = np.isneginf(case.lse)  # rows with no allowed key: exactly 0
    err = np.abs(got - case.out)
    ok = err <= atol + rtol * np.abs(case.out)
    ok[empty] = got[empty] == 0
    assert ok.all(), "%s: %d elements out of tolerance, max err %g" % (
        case.name, (~ok).sum(), np.nanmax(err))


def assert_lse_matches(case, lse):
    assert lse.dtype == np.float32 and lse.shape == case.lse.shape
    empty = np.isneginf(case.lse)
    assert np.isneginf(lse[empty]).all()
    assert np.all(np.abs(lse[~empty] - case.lse[~empty]) <= TOL[case.dtype][2]), case.name


def test_golden_cases_present():
    assert len(CASES) >= 16


@pytest.mark.parametrize("path", CASES, ids=os.path.basename)
def test_golden_case_raw_bool_mask(client, path):
    c = Case(path)
    r = client.infer(MODEL, inputs_of(c), parameters=params_of(c), request_id="golden-" + c.name)
    out = r.as_numpy("out")
    assert out.dtype == (ml_dtypes.bfloat16 if c.dtype == "bf16" else NP_OF[c.dtype])
    assert_out_matches(c, out)
    assert_lse_matches(c, r.as_numpy("lse"))
    resp = r.get_response()
    assert resp.id == "golden-" + c.name and resp.model_name == MODEL
    assert [o.name for o in resp.outputs] == ["out", "lse"]
    assert resp.parameters["backend"].string_param == "cpu"


@pytest.mark.parametrize("path", CASES, ids=os.path.basename)
def test_golden_case_packed_mask_out_only(client, path):
    c = Case(path)
    r = client.infer(MODEL, inputs_of(c, mask="uint8"), parameters=params_of(c, return_lse=False),
                     outputs=[grpcclient.InferRequestedOutput("out")])
    assert_out_matches(c, r.as_numpy("out"))
    assert r.as_numpy("lse") is None  # not asked for, not sent


def test_lse_by_requested_output(client):
    c = Case(next(p for p in CASES if Case(p).dtype == "fp32"))
    r = client.infer(MODEL, inputs_of(c), parameters=params_of(c, return_lse=False),
                     outputs=[grpcclient.InferRequestedOutput("lse")])
    assert r.as_numpy("out") is None
    assert_lse_matches(c, r.as_numpy("lse"))


def typed_request(case):
    """The same request with typed contents (tritonclient's own messages; InferInput always
    sends raw bytes)."""
    req = service_pb2.ModelInferRequest(model_name=MODEL, id="typed")
    def add(name, datatype, a, field):
        t = req.inputs.add(name=name, datatype=datatype, shape=list(a.shape))
        getattr(t.contents, field).extend(a.ravel().tolist())
    add("q", "FP32", case.q, "fp32_contents")
    add("k", "FP32", case.k, "fp32_contents")
    add("v", "FP32", case.v, "fp32_contents")
    add("cu_seqlens_q", "INT32", case.cu_q, "int_contents")
    add("cu_seqlens_k", "INT32", case.cu_k, "int_contents")
    add("block_mask", "BOOL", case.block_mask, "bool_contents")
    for k, v in params_of(case).items():
        p = req.parameters[k]
        if isinstance(v, bool):
            p.bool_param = v
        elif isinstance(v, int):
            p.int64_param = v
        else:
            p.double_param = v
    return req


@pytest.fixture(scope="module")
def stub(server):
    ch = grpc.insecure_channel(server.target)
    yield service_pb2_grpc.GRPCInferenceServiceStub(ch)
    ch.close()


@pytest.mark.parametrize("path", [p for p in CASES if Case(p).dtype == "fp32"], ids=os.path.basename)
def test_typed_contents(stub, path):
    c = Case(path)
    resp = stub.ModelInfer(typed_request(c), timeout=60)
    assert [o.name for o in resp.outputs] == ["out", "lse"]
    assert [o.datatype for o in resp.outputs] == ["FP32", "FP32"]
    assert list(resp.outputs[0].shape) == list(c.out.shape)
    out = np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(c.out.shape)
    lse = np.frombuffer(resp.raw_output_contents[1], np.float32).reshape(c.lse.shape)
    assert_out_matches(c, out)
    assert_lse_matches(c, lse)


def test_typed_uint8_mask(stub):
    c = Case(next(p for p in CASES if Case(p).dtype == "fp32"))
    req = typed_request(c)
    m = next(t for t in req.inputs if t.name == "block_mask")
    packed = np.packbits(c.block_mask, axis=-1, bitorder="little")
    m.datatype = "UINT8"
    del m.shape[:]
    m.shape.extend(packed.shape)
    m.contents.Clear()
    m.contents.uint_contents.extend(packed.ravel().tolist())
    resp = stub.ModelInfer(req, timeout=60)
    assert_out_matches(c, np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(c.out.shape))


def refused(client, inputs, params, code="INVALID_ARGUMENT", model=MODEL):
    with pytest.raises(InferenceServerException) as e:
        client.infer(model, inputs, parameters=params)
    assert e.value.status() == "StatusCode." + code, e.value
    return e.value.message()


def fp16_case():
    return Case(next(p for p in CASES if Case(p).dtype == "fp16"))


def test_errors_name_the_field(client, stub):
    c = fp16_case()
    assert "unknown model \"nope\"" in refused(client, inputs_of(c), params_of(c), "NOT_FOUND", "nope")
    # cu_seqlens_q not starting at 0 (shared validation: same message as hbsa.v1).
    bad = Case.__new__(Case)
    bad.__dict__.update(c.__dict__)
    bad.cu_q = c.cu_q.copy()
    bad.cu_q[0] = 1
    assert "cu_seqlens_q" in refused(client, inputs_of(bad), params_of(c))
    # Mask of the wrong shape.
    bad = Case.__new__(Case)
    bad.__dict__.update(c.__dict__)
    bad.block_mask = c.block_mask[:, :-1, :] if c.block_mask.shape[1] > 1 else c.block_mask[:, :, :-1]
    assert "block_mask.shape must be [Hk, Nq, Nk]" in refused(client, inputs_of(bad), params_of(c))
    # Bit-packed mask with a pad bit set past Nk (when Nk is not a multiple of 8) or wrong width.
    nk = c.block_mask.shape[2]
    packed = np.packbits(c.block_mask, axis=-1, bitorder="little")
    if nk % 8:
        packed[0, 0, -1] |= np.uint8(0x80)
        ins = inputs_of(c)[:5]
        t = grpcclient.InferInput("block_mask", list(packed.shape), "UINT8")
        t.set_data_from_numpy(packed)
        assert "pad bit" in refused(client, ins + [t], params_of(c))
    # Missing and mistyped parameters, unknown parameter, unknown input, wrong datatype.
    p = params_of(c)
    del p["q_block_size"]
    assert "parameters.q_block_size is required" in refused(client, inputs_of(c), p)
    p = params_of(c)
    p["causal"] = 1
    assert "parameters.causal must be a bool" in refused(client, inputs_of(c), p)
    p = params_of(c)
    p["q_block_size"] = 0
    assert "q_block_size" in refused(client, inputs_of(c), p)
    p = params_of(c)
    p["window"] = 3
    assert "parameters.window is not a parameter" in refused(client, inputs_of(c), p)
    ins = inputs_of(c)
    q32 = grpcclient.InferInput("q", list(c.q.shape), "FP32")
    q32.set_data_from_numpy(c.q.astype(np.float32))
    assert "k.dtype" in refused(client, [q32] + ins[1:], params_of(c))  # q FP32, k FP16
    qi = grpcclient.InferInput("q", list(c.q.shape), "INT16")
    qi.set_data_from_numpy(c.q.view(np.int16))
    assert "q.datatype must be FP16, BF16 or FP32" in refused(client, [qi] + ins[1:], params_of(c))
    assert "\"cu_seqlens_k\" is missing" in refused(client, ins[:4] + ins[5:], params_of(c))
    # Typed FP16 has no field in the protocol: refused with the reason.
    req = typed_request(Case(next(p for p in CASES if Case(p).dtype == "fp32")))
    req.inputs[0].datatype = "FP16"
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "raw_input_contents" in e.value.details()
    # The server is still healthy and still computes.
    assert client.is_server_ready() and client.is_server_live()
    r = client.infer(MODEL, inputs_of(c), parameters=params_of(c))
    assert_out_matches(c, r.as_numpy("out"))


def test_health_and_metadata(client, server):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    with pytest.raises(InferenceServerException) as e:
        client.is_model_ready("nope")
    assert e.value.status() == "StatusCode.NOT_FOUND"
    meta = client.get_server_metadata(as_json=True)
    version = open(os.path.join(os.path.dirname(__file__), "..", "..", "VERSION")).read().strip()
    assert meta["name"] == "hbsa-server" and meta["version"] == version
    assert meta["extensions"] == ["model_configuration"]
    m = client.get_model_metadata(MODEL, as_json=True)
    assert m["name"] == MODEL and m["versions"] == ["1"] and m["platform"] == "hbsa"
    shapes = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in m["inputs"]}
    assert shapes == {"q": ("FP32", [-1, -1, -1]), "k": ("FP32", [-1, -1, -1]),
                      "v": ("FP32", [-1, -1, -1]), "cu_seqlens_q": ("INT32", [-1]),
                      "cu_seqlens_k": ("INT32", [-1]), "block_mask": ("BOOL", [-1, -1, -1])}
    outs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in m["outputs"]}
    assert outs == {"out": ("FP32", [-1, -1, -1]), "lse": ("FP32", [-1, -1])}
    cfg = client.get_model_config(MODEL, as_json=True)["config"]
    assert cfg["name"] == MODEL and cfg.get("max_batch_size", 0) == 0
    dims = {t["name"]: (t["data_type"], [int(d) for d in t["dims"]]) for t in cfg["input"]}
    assert dims["q"] == ("TYPE_FP32", [-1, -1, -1]) and dims["block_mask"] == ("TYPE_BOOL", [-1, -1, -1])
    assert "FP16, BF16 or FP32" in cfg["parameters"]["datatypes"]["string_value"]
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("nope")
    assert e.value.status() == "StatusCode.NOT_FOUND"


def test_same_port_serves_hbsa_v1_and_health(server):
    """hbsa.v1 and grpc.health.v1 answer on the port tritonclient uses (raw bytes: no stubs)."""
    ch = grpc.insecure_channel(server.target)
    ident = lambda b: b  # noqa: E731
    health = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=ident,
                            response_deserializer=ident)
    assert health(b"", timeout=10) == b"\x08\x01"  # status: SERVING
    caps = ch.unary_unary("/hbsa.v1.Attention/GetCapabilities", request_serializer=ident,
                          response_deserializer=ident)
    assert b"cpu" in caps(b"", timeout=10)
    ch.close()


def test_stream_infer(server):
    """ModelStreamInfer through tritonclient's stream API: every golden case on one stream, and a
    bad request among them answered with its error while the stream goes on."""
    import queue
    results = queue.Queue()
    client = grpcclient.InferenceServerClient(url=server.target)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    cases = [Case(p) for p in CASES]
    bad = params_of(cases[0])
    del bad["q_block_size"]
    for i, c in enumerate(cases):
        client.async_stream_infer(MODEL, inputs_of(c), request_id=str(i), parameters=params_of(c))
        if i == 2:
            client.async_stream_infer(MODEL, inputs_of(cases[0]), request_id="bad", parameters=bad)
    got, errors = {}, []
    for _ in range(len(cases) + 1):
        result, error = results.get(timeout=120)
        if error is not None:
            errors.append(error)
        else:
            got[result.get_response().id] = result
    client.stop_stream()
    client.close()
    assert len(errors) == 1 and "parameters.q_block_size is required" in errors[0].message()
    assert sorted(got) == sorted(str(i) for i in range(len(cases)))
    for i, c in enumerate(cases):
        assert_out_matches(c, got[str(i)].as_numpy("out"))
        assert_lse_matches(c, got[str(i)].as_numpy("lse"))


def test_readiness_follows_startup_and_drain():
    """Not ready during warm-up, ready while serving, not ready (still live) while draining."""
    c = fp16_case()
    s = HbsaServer(server_binary(), lambda target: True,
                   extra_args=["--test-warmup-delay-ms", "3000", "--test-executor-delay-ms",
                               "3000", "--drain-grace-seconds", "20"])
    with s:
        client = grpcclient.InferenceServerClient(url=s.target)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the port is up, warm-up is not over
            try:
                live, ready = client.is_server_live(), client.is_server_ready()
                break
            except InferenceServerException:
                time.sleep(0.05)
        assert live and not ready
        assert not client.is_model_ready(MODEL)
        deadline = time.monotonic() + 60
        while not triton_ready(s.target):
            assert time.monotonic() < deadline, "never became ready"
            time.sleep(0.1)
        assert client.is_model_ready(MODEL)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=client.infer(MODEL, inputs_of(c), parameters=params_of(c))))
        t.start()
        time.sleep(0.5)  # the request is in the (delayed) executor
        s.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        while client.is_server_ready():
            assert time.monotonic() < deadline, "still ready after SIGTERM"
            time.sleep(0.05)
        assert client.is_server_live() and not client.is_model_ready(MODEL)
        with pytest.raises(InferenceServerException) as e:
            client.infer(MODEL, inputs_of(c), parameters=params_of(c))
        assert e.value.status() == "StatusCode.UNAVAILABLE" and "draining" in e.value.message()
        t.join(30)
        assert_out_matches(c, result["r"].as_numpy("out"))  # the in-flight one finished
        client.close()
        assert s.proc.wait(30) == 0


def test_documented_example(server):
    """client/oip/tritonclient_example.py (the run docs/OIP.md shows) works against the server and
    agrees with its own float64 reference within the fp16 bar."""
    import re
    import subprocess
    import sys
    example = os.path.join(os.path.dirname(__file__), "..", "..", "client", "oip",
                           "tritonclient_example.py")
    res = subprocess.run([sys.executable, example, server.target], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "live: True  ready: True  model ready: True" in res.stdout
    assert "out: float16 (14, 2, 32)  lse: float32 (14, 2)" in res.stdout
    err = float(re.search(r"max \|out - float64 reference\|: (\S+)", res.stdout).group(1))
    assert err <= 2e-3 + 2e-3 * 1.0, res.stdout  # |ref| <= 1 (a convex mix of unit normals' rows)
    assert "refused: StatusCode.INVALID_ARGUMENT q_block_size" in res.stdout


def test_perf_analyzers_streaming_flag_is_ignored(stub):
    """perf_analyzer sends triton_enable_empty_final_response on every request (a decoupled-
    streaming flag); it is accepted and changes nothing. Other triton_ parameters are refused."""
    c = Case(next(p for p in CASES if Case(p).dtype == "fp32"))
    req = typed_request(c)
    req.parameters["triton_enable_empty_final_response"].bool_param = True
    resp = stub.ModelInfer(req, timeout=60)
    assert_out_matches(c, np.frombuffer(resp.raw_output_contents[0], np.float32).reshape(c.out.shape))
    req.parameters["triton_other"].bool_param = True
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(req, timeout=60)
    assert "parameters.triton_other is not a parameter" in e.value.details()
