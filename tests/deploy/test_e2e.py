"""tests/deploy/test_e2e.py: the deployment files against a running hbsa-server.

One hbsa-server (CPU backend) runs on loopback with the settings of the cpu overlay's rendered
ConfigMap (only the listen addresses moved to free ports), and one real Prometheus server
(Debian's `prometheus`) runs with deploy/observability/prometheus.yml and hbsa-rules.yml, its
target rewritten to the server's metrics port and its intervals shortened to one second. The
tests send requests through Python gRPC stubs generated here from proto/, then check:
  - the health services the Kubernetes probes name are SERVING (and the Docker HEALTHCHECK
    command succeeds, when the `hbsa` CLI is built);
  - every HBSA_* setting in the ConfigMaps is a flag of `hbsa-server --help`;
  - Prometheus scrapes the server, and the request counter and a latency quantile from the
    histogram appear in its HTTP API; the rules load and the recording rules produce values;
  - every dashboard query runs in that Prometheus and returns data (exceptions named below);
  - every metric the dashboard, the alerts and the prometheus-adapter rules read exists in the
    server's /metrics output, so renaming a metric breaks this test;
  - SIGTERM drains: health turns NOT_SERVING, the process exits 0 within the drain grace.
Every loop here is bounded in count and time and talks to 127.0.0.1 only.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import grpc
import numpy as np
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from conftest import (DOCKER, GPU_ONLY_METRICS, OBS, ROOT, configmap_env, find, free_port,
                      metric_names, render, run, server_bin, tool, wait_port)

# Dashboard panels allowed to be empty on a healthy CPU server that saw no server-side errors.
MAY_BE_EMPTY = {"Server error ratio": "no request failed on the server's side",
                "GPU utilisation": "a CPU server has no GPU (NVML) families",
                "GPU memory: used vs installed": "a CPU server has no GPU (NVML) families"}


# ---------------------------------------------------------------------------------------------
# gRPC stubs and requests


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """attention_pb2 / attention_pb2_grpc generated from the repository's proto at test time."""
    from grpc_tools import protoc
    import grpc_tools

    out = tmp_path_factory.mktemp("stubs")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}",
                      f"--grpc_python_out={out}", str(ROOT / "proto/hbsa/v1/attention.proto")])
    assert rc == 0, "protoc failed on proto/hbsa/v1/attention.proto"
    sys.path.insert(0, str(out))
    from hbsa.v1 import attention_pb2, attention_pb2_grpc  # noqa: E402
    return attention_pb2, attention_pb2_grpc


def make_request(pb2, rng, request_id, valid=True):
    """A small fp32 request: B=2 (lengths 20 and 17), Hq=2, Hk=1, D=16, blocks 8 x 16."""
    cu = [0, 20, 37]
    hq, hk, d, sq, sk = 2, 1, 16, 8, 16
    nq = sum(math.ceil((b - a) / sq) for a, b in zip(cu, cu[1:]))
    nk = sum(math.ceil((b - a) / sk) for a, b in zip(cu, cu[1:]))
    q = rng.standard_normal((cu[-1], hq, d)).astype(np.float32)
    k = rng.standard_normal((cu[-1], hk, d)).astype(np.float32)
    v = rng.standard_normal((cu[-1], hk, d)).astype(np.float32)
    mask = rng.random((hk, nq, nk)) < 0.7
    mask[:, :, 0] = True
    tensor = lambda a: pb2.Tensor(dtype=pb2.DTYPE_FLOAT32, shape=list(a.shape), data=a.tobytes())
    return pb2.AttendRequest(
        request_id=request_id, q=tensor(q), k=tensor(k), v=tensor(v), cu_seqlens_q=cu, cu_seqlens_k=cu,
        q_block_size=sq if valid else 0, k_block_size=sk, causal=True,
        dense_mask=pb2.DenseBlockMask(shape=[hk, nq, nk],
                                      bits=np.packbits(mask.ravel(), bitorder="little").tobytes()))


def send_traffic(pb, port, rng, n_ok=8):
    """n_ok good Attend calls, one invalid one, GetCapabilities and a 3-request stream."""
    pb2, pb2_grpc = pb
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = pb2_grpc.AttentionStub(ch)
        for i in range(n_ok):
            resp = stub.Attend(make_request(pb2, rng, f"e2e-{i}"), timeout=30)
            out = np.frombuffer(resp.out.data, dtype=np.float32)
            assert out.size == 37 * 2 * 16 and np.isfinite(out).all() and np.abs(out).max() > 0
        with pytest.raises(grpc.RpcError) as err:
            stub.Attend(make_request(pb2, rng, "e2e-bad", valid=False), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        stub.GetCapabilities(pb2.GetCapabilitiesRequest(), timeout=30)
        reqs = [make_request(pb2, rng, f"e2e-s{i}") for i in range(3)]
        got = sorted(r.request_id for r in stub.AttendStream(iter(reqs), timeout=30))
        assert got == ["e2e-s0", "e2e-s1", "e2e-s2"]


def health(port, service, timeout=2.0):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service),
                                                     timeout=timeout).status


def wait_serving(port, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"hbsa-server exited with {proc.returncode}"
        try:
            if health(port, "hbsa.v1.Attention") == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    pytest.fail(f"hbsa-server not SERVING within {timeout} s")


# ---------------------------------------------------------------------------------------------
# Processes


def start_server(tmp_path, extra_env=None):
    grpc_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HBSA_")}
    env.update(configmap_env("cpu"))
    env.update(HBSA_LISTEN=f"127.0.0.1:{grpc_port}", HBSA_METRICS_LISTEN=f"127.0.0.1:{metrics_port}",
               HBSA_LOG_LEVEL="info")
    env.update(extra_env or {})
    log = open(tmp_path / f"server-{grpc_port}.log", "w")
    proc = subprocess.Popen([server_bin()], env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_port(grpc_port, proc, 60)
    wait_serving(grpc_port, proc)
    return proc, grpc_port, metrics_port, log


def stop(proc, timeout=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    proc, grpc_port, metrics_port, log = start_server(tmp)
    yield {"proc": proc, "grpc": grpc_port, "metrics": metrics_port, "log": tmp}
    stop(proc)
    log.close()


@pytest.fixture(scope="module")
def prometheus(server, tmp_path_factory):
    """A real Prometheus with the repository's scrape config and rules, aimed at the server."""
    tmp = tmp_path_factory.mktemp("prometheus")
    cfg = yaml.safe_load((OBS / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(OBS / f) for f in cfg["rule_files"]]
    (job,) = [j for j in cfg["scrape_configs"] if j["job_name"] == "hbsa"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{server['metrics']}"]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    res = run([tool("promtool"), "check", "config", str(tmp / "prometheus.yml")])
    assert res.returncode == 0, res.stdout + res.stderr
    port = free_port()
    log = open(tmp / "prometheus.log", "w")
    proc = subprocess.Popen([tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, 60)
    yield {"port": port, "proc": proc, "dir": tmp}
    stop(proc)
    log.close()


def prom_query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def prom_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.load(r)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def sample_names(exposition):
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", exposition, re.M)}


# ---------------------------------------------------------------------------------------------
# Tests


def test_probe_health_services_are_serving(server):
    c = find(render("gpu"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        service = c[probe]["grpc"]["service"]
        assert health(server["grpc"], service) == health_pb2.HealthCheckResponse.SERVING, probe


def test_dockerfile_healthcheck_command(server):
    cli = os.environ.get("HBSA_CLI_BIN")
    if not cli:
        pytest.skip("the `hbsa` CLI is not built in this tree (HBSA_CLI_BIN unset)")
    for name in ("Dockerfile", "Dockerfile.cpu"):
        line = [l for l in (DOCKER / name).read_text().splitlines() if l.strip().startswith("CMD [")][0]
        argv = json.loads(line.strip()[4:])
        argv[0] = cli
        argv[argv.index("--target") + 1] = f"127.0.0.1:{server['grpc']}"
        res = run(argv, timeout=30)
        assert res.returncode == 0, f"{name} HEALTHCHECK failed: {res.stdout}{res.stderr}"
    dead = free_port()
    res = run([cli, "health", "--target", f"127.0.0.1:{dead}", "--service", "hbsa.v1.Attention"], timeout=30)
    assert res.returncode != 0, "the health command must fail when nothing serves"


def test_configmap_settings_are_server_flags():
    res = run([server_bin(), "--help"])
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    for overlay in ("gpu", "cpu"):
        for key in configmap_env(overlay):
            flag = "--" + key.removeprefix("HBSA_").lower().replace("_", "-")
            assert flag in text and key in text, f"{overlay} ConfigMap sets {key}, unknown to hbsa-server --help"


QUANTILE = ('histogram_quantile(0.99, sum by (le) '
            '(rate(hbsa_request_duration_seconds_bucket{job="hbsa", method="Attend"}[30s])))')


def traffic_seen_by_prometheus(server, prometheus, pb, seed):
    """Waits for the first scrape, then sends rounds of traffic until Prometheus has the Attend
    counter and a finite p99 from the histogram (bounded: 20 rounds, 60 s). Returns the p99."""
    port = prometheus["port"]
    deadline = time.monotonic() + 30
    while not prom_query(port, 'up{job="hbsa"} == 1'):
        assert time.monotonic() < deadline, "Prometheus never scraped hbsa-server"
        time.sleep(0.5)
    rng = np.random.default_rng(seed)
    deadline = time.monotonic() + 60
    rounds = 0
    while True:
        send_traffic(pb, server["grpc"], rng)
        rounds += 1
        time.sleep(2.5)
        total = prom_query(port, 'sum(hbsa_requests_total{job="hbsa", method="Attend", code="OK"})')
        q99 = prom_query(port, QUANTILE)
        if total and float(total[0]["value"][1]) >= 8 and q99 and math.isfinite(float(q99[0]["value"][1])):
            return float(q99[0]["value"][1])
        assert time.monotonic() < deadline and rounds < 20, f"no counter/quantile after {rounds} rounds"


def test_prometheus_sees_requests_and_latency(server, prometheus, pb):
    port = prometheus["port"]
    p99 = traffic_seen_by_prometheus(server, prometheus, pb, seed=6)
    assert 0 < p99 < 60, p99
    codes = {r["metric"]["code"] for r in prom_query(port, 'hbsa_requests_total{job="hbsa"}')}
    assert {"OK", "INVALID_ARGUMENT"} <= codes

    # Rules: every group loaded and healthy; the recording rules produce values.
    groups = prom_get(port, "/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in groups} == {"hbsa.recording", "hbsa.alerts"}
    for g in groups:
        for r in g["rules"]:
            assert r["health"] in ("ok", "unknown"), f"rule {r['name']}: {r.get('lastError')}"
    deadline = time.monotonic() + 20
    while not (prom_query(port, "hbsa:request_duration_seconds:p99_5m") and prom_query(port, "hbsa:requests:rate5m")):
        assert time.monotonic() < deadline, "recording rules produced nothing"
        time.sleep(1)
    firing = {a["labels"]["alertname"] for a in prom_get(port, "/api/v1/alerts")["data"]["alerts"]}
    assert "HbsaServerDown" not in firing


def test_dashboard_queries_return_data(server, prometheus, pb):
    port = prometheus["port"]
    traffic_seen_by_prometheus(server, prometheus, pb, seed=7)
    dash = json.loads((OBS / "grafana" / "hbsa-dashboard.json").read_text())
    queries = [(p["title"], t["expr"].replace("$__rate_interval", "1m").replace("$job", "hbsa")
                .replace("$instance", ".*")) for p in dash["panels"] for t in p.get("targets", [])]
    rng = np.random.default_rng(9)
    for attempt in range(8):  # series born in the last round need one more scrape for a rate
        empty = sorted({title for title, expr in queries if not prom_query(port, expr)})
        if set(empty) <= set(MAY_BE_EMPTY):
            break
        send_traffic(pb, server["grpc"], rng, n_ok=2)
        time.sleep(2.5)
    assert set(empty) <= set(MAY_BE_EMPTY), f"dashboard panels with no data: {empty}"


def test_every_metric_used_exists_on_the_server(server, pb):
    send_traffic(pb, server["grpc"], np.random.default_rng(8), n_ok=2)
    exposed = sample_names(scrape(server["metrics"]))
    used = {}
    dash = json.loads((OBS / "grafana" / "hbsa-dashboard.json").read_text())
    for p in dash["panels"]:
        for t in p.get("targets", []):
            for n in metric_names(t["expr"]):
                used.setdefault(n, f"dashboard panel '{p['title']}'")
    for g in yaml.safe_load((OBS / "hbsa-rules.yml").read_text())["groups"]:
        for r in g["rules"]:
            for n in metric_names(r["expr"]):
                used.setdefault(n, f"rule {r.get('record') or r.get('alert')}")
    for r in yaml.safe_load((OBS / "prometheus-adapter.yaml").read_text())["rules"]:
        for n in metric_names(r["seriesQuery"]):
            used.setdefault(n, f"prometheus-adapter rule {r['name']['as']}")
    used.pop("up", None)  # Prometheus's own series, not the server's
    assert len(used) >= 12, sorted(used)
    assert {"process_cpu_seconds_total", "process_open_fds", "hbsa_gpu_utilization_ratio"} <= set(used)
    # The GPU families exist only on GPU servers (scripts/gpu/server_run.sh checks them there);
    # a CPU server must not export them at all (absent, not zero).
    assert len(GPU_ONLY_METRICS) >= 4, GPU_ONLY_METRICS
    assert not exposed & GPU_ONLY_METRICS, "a CPU server exported GPU families"
    missing = {n: where for n, where in used.items() if n not in exposed and n not in GPU_ONLY_METRICS}
    assert not missing, f"metrics used but not exported by hbsa-server: {missing}"
    # The latency and stage histograms carry the executor's device label.
    text = scrape(server["metrics"])
    assert re.search(r'^hbsa_request_duration_seconds_count\{device="cpu",method="Attend"\} [1-9]', text, re.M)
    assert re.search(r'^hbsa_stage_duration_seconds_count\{device="cpu",stage="kernel"\} [1-9]', text, re.M)


def test_sigterm_drains_and_exits_zero(tmp_path, pb):
    drain = 3
    proc, grpc_port, _, log = start_server(tmp_path, {"HBSA_DRAIN_GRACE_SECONDS": str(drain)})
    try:
        assert health(grpc_port, "") == health_pb2.HealthCheckResponse.SERVING
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        not_serving = False
        while proc.poll() is None and time.monotonic() - t0 < drain + 10:
            try:
                if health(grpc_port, "hbsa.v1.Attention", timeout=0.5) == health_pb2.HealthCheckResponse.NOT_SERVING:
                    not_serving = True
            except grpc.RpcError:
                not_serving = True  # already closed: no longer serving either
            time.sleep(0.05)
        rc = proc.wait(timeout=drain + 10)
        assert not_serving
        assert rc == 0, f"drain must exit 0, got {rc}"
        assert time.monotonic() - t0 < drain + 10
    finally:
        stop(proc)
        log.close()
