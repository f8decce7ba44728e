"""Fixtures: one real hbsa-server (CPU backend) for the session, and the golden cases."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hbsa_server import HbsaServer  # noqa: E402
from golden_cases import Case, all_cases, golden_root  # noqa: E402,F401  (for the tests)

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
