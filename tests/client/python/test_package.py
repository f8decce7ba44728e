"""The installed package itself: the versions it was installed with, its own version, and stubs
that import cleanly (no runtime-version warning) on the protobuf/grpcio it runs on."""
import importlib.metadata as md
import os
import subprocess
import sys

import hbsa

FLOORS = {"grpcio": "1.60", "protobuf": "4.25", "numpy": "1.24"}  # pyproject.toml's


def _key(v):
    """A release version as a comparable tuple without trailing zeros ("1.60.0" -> (1, 60))."""
    parts = [int(p) for p in v.split("+")[0].split(".") if p.isdigit()]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_installed_versions_are_the_ones_claimed():
    """HBSA_EXPECT_VERSIONS ("grpcio==1.60,protobuf==4.25,...") is set by the lowest run; the
    newest run (empty) only requires the floors to hold."""
    installed = {p: md.version(p) for p in ("hbsa", "grpcio", "protobuf", "numpy", "pytest")}
    print("installed:", installed)
    expect = [e for e in os.environ.get("HBSA_EXPECT_VERSIONS", "").split(",") if e]
    for e in expect:
        name, want = e.split("==")
        assert _key(md.version(name)) == _key(want), "%s %s installed, %s expected" % (
            name, md.version(name), want)
    for name, floor in FLOORS.items():
        assert _key(installed[name]) >= _key(floor), (name, installed[name], floor)


def test_version_is_the_repository_version():
    path = os.environ.get("HBSA_VERSION_FILE")
    assert path, "HBSA_VERSION_FILE is not set (run through tests/client/run_python_tests.sh)"
    with open(path) as f:
        assert hbsa.__version__ == f.read().strip()


def test_stubs_import_without_warnings():
    code = ("import hbsa.v1.attention_pb2 as p, hbsa.v1.attention_pb2_grpc as g; "
            "r = p.AttendRequest(q_block_size=3, softmax_scale=0.0); "
            "assert p.AttendRequest.FromString(r.SerializeToString()).HasField('softmax_scale'); "
            "assert hasattr(g, 'AttentionStub')")
    p = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
