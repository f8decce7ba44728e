"""Fixtures: one real hbsa-server (CPU backend) for the session, a tritonclient gRPC client on
it, and the golden cases (loaded as tests/client/python does, without the hbsa package)."""
import json
import os
import sys

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "client"))
from hbsa_server import HbsaServer  # noqa: E402

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


class Case:
    def __init__(self, path):
        self.name = os.path.basename(path)
        self.meta = json.load(open(os.path.join(path, "case.json")))
        load = lambda n: np.load(os.path.join(path, n + ".npy"))  # noqa: E731
        self.q, self.k, self.v = load("q"), load("k"), load("v")
        self.block_mask = load("block_mask").astype(bool)
        self.out, self.lse = load("out"), load("lse")
        self.cu_q = np.asarray(self.meta["cu_q"], np.int32)
        self.cu_k = np.asarray(self.meta["cu_k"], np.int32)
        self.dtype = self.meta["dtype"]


def golden_root():
    """$HBSA_GOLDEN_DIR, else the repository's own cases (tests/golden/cases)."""
    return os.environ.get("HBSA_GOLDEN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "golden", "cases")


def all_cases():
    root = golden_root()
    return sorted(os.path.join(root, d) for d in os.listdir(root)
                  if os.path.isfile(os.path.join(root, d, "case.json")))
