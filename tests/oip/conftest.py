"""Fixtures: one real hbsa-server (CPU backend) for the session, a tritonclient gRPC client on
it, and the golden cases (loaded as tests/client/python does, without the hbsa package)."""
import os
import sys

import pytest
import tritonclient.grpc as grpcclient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client"))
from hbsa_server import HbsaServer  # noqa: E402
from golden_cases import Case, all_cases, golden_root  # noqa: E402,F401  (for the tests)

# SEMANTICS.md: (atol, rtol) for out and the absolute bar for the LSE, per input dtype.
TOL = {"fp16": (2e-3, 2e-3, 1e-3), "bf16": (1e-2, 1e-2, 1e-3), "fp32": (1e-4, 1e-4, 1e-5)}


def server_binary():
    binary = os.environ.get("HBSA_SERVER_BIN")
    if not binary:
        pytest.fail("HBSA_SERVER_BIN is not set (run through tests/oip/run_oip_tests.sh)")
    return binary


def triton_ready(target):
    c = grpcclient.InferenceServerClient(url=target)
    try:
        return c.is_server_ready()
    finally:
        c.close()


@pytest.fixture(scope="session")
def server():
    with HbsaServer(server_binary(), triton_ready) as s:
        yield s


@pytest.fixture(scope="session")
def client(server):
    c = grpcclient.InferenceServerClient(url=server.target)
    yield c
    c.close()
