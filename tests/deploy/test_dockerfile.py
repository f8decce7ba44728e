"""tests/deploy/test_dockerfile.py: structural checks of deploy/docker/Dockerfile{,.cpu}.

CI's default run builds no image (the CPU image is built for real by the opt-in test
tests/deploy/image_test.sh, label `image`; the GPU image by nobody yet). This test parses
each Dockerfile and checks what matters: two stages (build on a devel/full image, runtime on a
runtime/slim image), the build stage running exactly the repository scripts that CI also runs
(scripts/bootstrap.sh --build-only, scripts/build.sh with options that script accepts), the runtime stage
copying only the install prefix, a non-root numeric USER that matches the Kubernetes
securityContext, an exec-form ENTRYPOINT of hbsa-server, a gRPC HEALTHCHECK through `hbsa health`
on the listen port, EXPOSEd ports that match the server's listen settings, and hadolint clean.
"""
from __future__ import annotations

import json
import re
import shlex

import pytest

from conftest import DOCKER, K8S, ROOT, find, render, run, tool

DOCKERFILES = {"Dockerfile": "gpu", "Dockerfile.cpu": "cpu"}


def parse(path):
    """Instructions of a Dockerfile as (KEYWORD, argument text), continuations joined."""
    out, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, rest = buf.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    assert not buf, f"{path.name}: dangling line continuation"
    return out


def stages(instructions):
    """Splits instructions into stages: [(from_args, name, [(kw, args), ...])]; plus global ARGs."""
    global_args, result = {}, []
    for kw, rest in instructions:
        if kw == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, f"cannot parse FROM {rest}"
            result.append((m.group(1), m.group(2), []))
        elif not result:
            assert kw == "ARG", f"only ARG may precede the first FROM, found {kw}"
            name, _, default = rest.partition("=")
            global_args[name] = default.strip('"')
        else:
            result[-1][2].append((kw, rest))
    return global_args, result


def expand(text, args):
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)


def exec_form(text):
    value = json.loads(text)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"not exec form: {text}"
    return value


def env_of(stage_body):
    env = {}
    for kw, rest in stage_body:
        if kw == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


@pytest.fixture(scope="module", params=sorted(DOCKERFILES))
def dockerfile(request):
    path = DOCKER / request.param
    global_args, st = stages(parse(path))
    return request.param, path, global_args, st


def test_two_stages_on_the_right_bases(dockerfile):
    name, _, args, st = dockerfile
    assert [s[1] for s in st] == ["build", "runtime"], f"{name}: stages must be build, runtime"
    build_from, runtime_from = expand(st[0][0], args), expand(st[1][0], args)
    if name == "Dockerfile":
        m = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-devel-ubuntu24\.04", build_from)
        assert m and int(m.group(1)) >= 12, f"build base {build_from}: want an nvidia/cuda devel image"
        assert runtime_from == build_from.replace("-devel-", "-runtime-"), \
            f"runtime base {runtime_from} must be the runtime flavour of {build_from}"
    else:
        assert build_from == "debian:12" and runtime_from == "debian:12-slim"


def test_build_stage_runs_only_the_repository_scripts(dockerfile):
    name, _, args, st = dockerfile
    runs = [rest for kw, rest in st[0][2] if kw == "RUN"]
    assert len(runs) == 2, f"{name}: the build stage must run bootstrap then build, got {runs}"
    # Only the build dependencies: the image builds with no test tool and nothing from PyPI.
    assert runs[0] == "scripts/bootstrap.sh --build-only"
    assert re.search(r"^\s*scripts/bootstrap.sh --build-only\b",
                     run([str(ROOT / "scripts/bootstrap.sh"), "--help"]).stdout, re.M)
    argv = shlex.split(runs[1])
    assert argv[0] == "scripts/build.sh", f"{name}: second RUN must be scripts/build.sh, got {argv[0]}"
    help_text = run([str(ROOT / "scripts/build.sh"), "--help"]).stdout
    opts = [a for a in argv[1:] if a.startswith("--")]
    for opt in opts:
        assert re.search(rf"^\s*{re.escape(opt)}\b", help_text, re.M), f"build.sh does not know {opt}"
    got = dict(zip(argv[1::], argv[2::]))
    assert got.get("--prefix") == "/opt/hbsa"
    assert got.get("--cuda") == ("on" if name == "Dockerfile" else "off")
    assert got.get("--tests") == "off"
    assert "--bundle-libs" in argv
    # The image copies bootstrap's input before COPY . so the dependency layer is cached.
    copies = [rest for kw, rest in st[0][2] if kw == "COPY"]
    assert copies[0].split() == ["scripts/bootstrap.sh", "/src/scripts/"]
    assert (ROOT / "scripts/bootstrap.sh").exists() and (ROOT / "scripts/build.sh").exists()


def test_runtime_stage_is_minimal_non_root_and_healthchecked(dockerfile):
    name, _, args, st = dockerfile
    body = st[1][2]
    kws = [kw for kw, _ in body]
    for kw, rest in body:
        if kw == "COPY":
            assert rest == "--from=build /opt/hbsa /opt/hbsa", f"{name}: runtime may copy only the prefix"
        if kw == "RUN":
            assert "apt-get" not in rest and "pip" not in rest, f"{name}: runtime installs nothing: {rest}"
        assert kw != "ADD", "ADD fetches or unpacks implicitly; use COPY"
    users = [rest for kw, rest in body if kw == "USER"]
    assert users, f"{name}: runtime stage has no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0, \
        f"{name}: USER must be numeric and non-root (runAsNonRoot needs a numeric uid), got {users[-1]}"
    assert kws.index("ENTRYPOINT") > max(i for i, k in enumerate(kws) if k == "USER")
    entry = exec_form(dict((k, r) for k, r in body)["ENTRYPOINT"])
    assert entry == ["/opt/hbsa/bin/hbsa-server"]
    assert dict(body).get("STOPSIGNAL") == "SIGTERM"

    env = env_of(body)
    listen_port = env["HBSA_LISTEN"].rsplit(":", 1)[1]
    metrics_port = env["HBSA_METRICS_LISTEN"].rsplit(":", 1)[1]
    exposed = sorted(p for kw, rest in body if kw == "EXPOSE" for p in rest.split())
    assert exposed == sorted([listen_port, metrics_port])
    assert env.get("TMPDIR") == "/tmp", "the only writable path (emptyDir) is /tmp"
    assert env["LD_LIBRARY_PATH"].split(":")[0] == "/opt/hbsa/lib", "bundled libraries come first"
    assert env["HBSA_BACKEND"] == ("cuda" if name == "Dockerfile" else "cpu")

    hc = dict(body)["HEALTHCHECK"]
    options, _, cmd = hc.partition("CMD ")
    for opt in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert opt in options, f"{name}: HEALTHCHECK lacks {opt}"
    argv = exec_form(cmd)
    assert argv[:2] == ["/opt/hbsa/bin/hbsa", "health"]
    flags = dict(zip(argv[2::2], argv[3::2]))
    assert flags["--target"] == f"127.0.0.1:{listen_port}"
    assert flags["--service"] == "hbsa.v1.Attention"


def test_runtime_user_matches_kubernetes_security_context(dockerfile):
    name, _, _, st = dockerfile
    user = [rest for kw, rest in st[1][2] if kw == "USER"][-1]
    pod = find(render(DOCKERFILES[name]), "Deployment")["spec"]["template"]["spec"]
    assert user == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert "/tmp" in mounts, "the read-only root needs /tmp mounted writable"


def test_dockerignore_keeps_local_state_out(dockerfile):
    name, path, _, _ = dockerfile
    ignore = (path.parent / f"{name}.dockerignore").read_text().split()
    for entry in (".git", ".venv", "build", "build-*"):
        assert entry in ignore, f"{name}.dockerignore must exclude {entry}"


def test_hadolint_is_clean():
    res = run([tool("hadolint"), "--no-color", *[str(DOCKER / n) for n in sorted(DOCKERFILES)]])
    assert res.returncode == 0, f"hadolint findings:\n{res.stdout}{res.stderr}"


def test_parser_rejects_a_broken_dockerfile(tmp_path):
    # The checks above are only as good as the parser: a runtime stage running as root or a
    # build stage with an extra RUN must be caught.
    src = (DOCKER / "Dockerfile.cpu").read_text()
    bad = tmp_path / "Dockerfile"
    bad.write_text(src.replace("USER 10001:10001", "USER 0:0"))
    _, st = stages(parse(bad))
    assert [r for k, r in st[1][2] if k == "USER"][-1] == "0:0"
    bad.write_text(src.replace("RUN scripts/bootstrap.sh", "RUN scripts/bootstrap.sh\nRUN make"))
    _, st = stages(parse(bad))
    assert len([r for k, r in st[0][2] if k == "RUN"]) == 3
