"""tests/deploy/test_build_script.py: scripts/build.sh, the build stage of the container images.

Runs the script on this CMake build tree (already built, so nothing is recompiled) with an
install prefix in a temporary folder and --bundle-libs, as the Dockerfiles do into /opt/hbsa.
Checks that the programs are installed and identical to the built ones, and that with only
<prefix>/lib added every shared library they need resolves from the bundle (except the C
library and the NVIDIA driver, which the runtime image and the container toolkit provide): that
is what lets the runtime stage run without any -dev package. Also checks that bad options are
refused.
"""
from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, run, server_bin

BUILD_SH = str(ROOT / "scripts" / "build.sh")
SYSTEM = ("libc.so", "libm.so", "libdl.so", "librt.so", "libpthread.so", "ld-linux", "libresolv.so",
          "libutil.so", "linux-vdso", "libcuda.so", "libnvidia-")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    build = os.environ.get("HBSA_BUILD_DIR")
    assert build and (Path(build) / "CMakeCache.txt").exists(), "HBSA_BUILD_DIR must name a configured tree"
    prefix = tmp_path_factory.mktemp("prefix")
    res = run([BUILD_SH, "--build-dir", build, "--prefix", str(prefix), "--bundle-libs", "--jobs", "2"],
              timeout=280)
    assert res.returncode == 0, f"build.sh failed:\n{res.stdout}\n{res.stderr}"
    return prefix, res.stdout


def test_installs_the_built_server(installed):
    prefix, log = installed
    exe = prefix / "bin" / "hbsa-server"
    assert exe.exists() and os.access(exe, os.X_OK)
    assert filecmp.cmp(exe, server_bin(), shallow=False), "installed hbsa-server differs from the built one"
    cli = os.environ.get("HBSA_CLI_BIN")
    if cli:
        assert filecmp.cmp(prefix / "bin" / "hbsa", cli, shallow=False)
    assert "installed" in log


def test_bundle_resolves_every_library(installed):
    prefix, _ = installed
    lib = prefix / "lib"
    assert any(lib.iterdir()), "nothing bundled"
    env = dict(os.environ, LD_LIBRARY_PATH=str(lib))
    for exe in (prefix / "bin").iterdir():
        out = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, env=env, check=True).stdout
        for line in out.splitlines():
            line = line.strip()
            assert "not found" not in line, f"{exe.name}: {line}"
            if "=>" not in line or any(s in line.split("=>")[0] for s in SYSTEM):
                continue
            path = line.split("=>")[1].split("(")[0].strip()
            assert path.startswith(str(lib)), f"{exe.name}: {line} is not taken from the bundle"
    grpc = [p.name for p in lib.iterdir() if p.name.startswith(("libgrpc++", "libgrpc.so", "libprotobuf"))]
    # A static gRPC build bundles nothing of gRPC; Debian's is shared, so its libraries must be here.
    if "libgrpc" in subprocess.run(["ldd", server_bin()], capture_output=True, text=True).stdout:
        assert grpc, "gRPC is linked dynamically but was not bundled"


def test_installed_server_runs_from_the_prefix(installed):
    prefix, _ = installed
    env = dict(os.environ, LD_LIBRARY_PATH=str(prefix / "lib"))
    res = subprocess.run([str(prefix / "bin" / "hbsa-server"), "--help"], capture_output=True, text=True,
                         env=env, timeout=30)
    assert res.returncode == 0 and "--listen" in res.stdout + res.stderr


@pytest.mark.parametrize("args,message", [
    (["--cuda", "maybe"], "--cuda must be auto, on or off"),
    (["--tests", "yes"], "--tests must be on or off"),
    (["--jobs", "many"], "--jobs must be a positive integer"),
    (["--frobnicate"], "unknown option"),
])
def test_bad_options_are_refused(args, message):
    res = run([BUILD_SH, *args])
    assert res.returncode == 2 and message in res.stderr, res.stderr
