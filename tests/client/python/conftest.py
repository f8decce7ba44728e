"""Fixtures: one real hbsa-server (CPU backend) for the session, and the golden cases."""
import json
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hbsa_server import HbsaServer  # noqa: E402

import hbsa  # noqa: E402  (the installed package)


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("HBSA_SERVER_BIN")
    if not binary:
        pytest.fail("HBSA_SERVER_BIN is not set (run through tests/client/run_python_tests.sh)")

    def ready(target):
        c = hbsa.Client(target, timeout=1.0, retries=1)
        try:
            return c.health() == "SERVING"
        finally:
            c.close()

    with HbsaServer(binary, ready) as s:
        yield s


@pytest.fixture(scope="session")
def client(server):
    c = hbsa.Client(server.target)
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

    def args(self):
        return (self.q, self.k, self.v, self.cu_q, self.cu_k, self.block_mask, self.meta["sq"],
                self.meta["sk"], self.meta["causal"], self.meta["scale"])


def golden_root():
    """$HBSA_GOLDEN_DIR, else the repository's own cases (tests/golden/cases)."""
    return os.environ.get("HBSA_GOLDEN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "golden", "cases")


def all_cases():
    root = golden_root()
    return sorted(os.path.join(root, d) for d in os.listdir(root)
                  if os.path.isfile(os.path.join(root, d, "case.json")))
