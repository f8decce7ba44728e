#!/usr/bin/env python3
"""cli_test.py: the `hbsa` CLI and `hbsa-bench` against a real hbsa-server on loopback.

Stdlib only (any python3). Checks exit codes and output of health, info (text and --json),
attend --case --check in every mask form, attend from raw .npy files (output written and read
back), usage errors, an RPC error, and an hbsa-bench smoke run whose CSV and JSON fields are
checked (concurrency sweep with spot-checks and a /metrics scrape, then Poisson rate mode).
Also the front door of every program: --version (the repository's VERSION) on hbsa-server,
hbsa, hbsa-bench and hbsa-check; -h and --help on every hbsa command; HBSA_TARGET in place of
--target, the flag winning over it;
then the connection flags (--tls-ca, --tls-cert/--tls-key, --token-file) against a server with
mutual TLS and a bearer token (certificates from tests/common/make_test_certs.sh).
"""
import argparse
import csv
import json
import os
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hbsa_server import HbsaServer, free_port, make_test_certs  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def run(cmd, timeout=300, env=None):
    """Runs cmd; `env` adds variables to (or, with a None value, removes them from) ours."""
    full = dict(os.environ)
    full.pop("HBSA_TARGET", None)
    for k, v in (env or {}).items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full)
    return p.returncode, p.stdout, p.stderr


def check_front_door(o):
    """--version and -h/--help of every program and hbsa command (no server needed)."""
    with open(o.version_file) as f:
        version = f.read().strip()
    for prog, name in ((o.server, "hbsa-server"), (o.hbsa, "hbsa"), (o.bench, "hbsa-bench"),
                       (o.check_bin, "hbsa-check")):
        rc, out, err = run([prog, "--version"], 30)
        check(rc == 0 and out.strip() == "%s %s" % (name, version),
              "%s --version prints '%s %s' (%d: %s%s)" % (name, name, version, rc, out.strip(), err.strip()))
        for flag in ("-h", "--help"):
            rc, out, _ = run([prog, flag], 30)
            check(rc == 0 and "--version" in out, "%s %s exits 0 and documents --version" % (name, flag))
    for cmd in ("health", "info", "attend"):
        for flag in ("-h", "--help"):
            rc, out, err = run([o.hbsa, cmd, flag], 30)
            check(rc == 0 and out.startswith("hbsa %s:" % cmd) and "HBSA_TARGET" in out,
                  "hbsa %s %s prints its help (mentions HBSA_TARGET), exit 0 (%d %s)" % (cmd, flag, rc, err.strip()))
        rc, _, err = run([o.hbsa, cmd], 30)
        check(rc == 2 and "HBSA_TARGET" in err, "hbsa %s without --target or HBSA_TARGET is a usage error" % cmd)
    rc, out, _ = run([o.hbsa, "--help"], 30)
    check(rc == 0 and "HBSA_TARGET" in out and "--version" in out, "hbsa --help documents HBSA_TARGET and --version")


def write_npy_int32(path, values):
    header = "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }" % len(values)
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack("<%di" % len(values), *values))


def npy_shape(path):
    with open(path, "rb") as f:
        head = f.read(256).decode("latin1")
    return head[head.index("'shape': (") + 10:head.index(")")]


def main():
    ap = argparse.ArgumentParser()
    for a in ("--server", "--hbsa", "--bench", "--check-bin", "--version-file", "--golden", "--workdir"):
        ap.add_argument(a, required=True)
    o = ap.parse_args()
    shutil.rmtree(o.workdir, ignore_errors=True)
    os.makedirs(o.workdir)
    hbsa = o.hbsa

    def ready(target):
        return run([hbsa, "health", "--target", target, "--timeout-ms", "1000"], 10)[0] == 0

    cases = sorted(d for d in os.listdir(o.golden) if os.path.isfile(os.path.join(o.golden, d, "case.json")))
    check(len(cases) >= 16, "at least 16 golden cases (%d)" % len(cases))
    check_front_door(o)
    with HbsaServer(o.server, ready) as s:
        t = s.target
        dead = "127.0.0.1:%d" % free_port()
        rc, out, _ = run([hbsa, "health"], env={"HBSA_TARGET": t})
        check(rc == 0 and out.strip() == "SERVING", "health with HBSA_TARGET and no --target")
        rc, out, _ = run([hbsa, "health", "--target", t, "--timeout-ms", "2000"], env={"HBSA_TARGET": dead})
        check(rc == 0 and out.strip() == "SERVING", "--target wins over HBSA_TARGET")
        rc, _, err = run([hbsa, "health", "--target", dead, "--timeout-ms", "2000"], env={"HBSA_TARGET": t})
        check(rc == 3, "--target wins over HBSA_TARGET (dead flag target fails: %d)" % rc)
        rc, out, _ = run([hbsa, "info"], env={"HBSA_TARGET": t})
        check(rc == 0 and "backend:" in out, "info with HBSA_TARGET")
        rc, out, _ = run([hbsa, "attend", "--case", os.path.join(o.golden, cases[0]), "--check"],
                         env={"HBSA_TARGET": t})
        check(rc == 0 and "check PASS" in out, "attend --check with HBSA_TARGET")
        rc, out, _ = run([hbsa, "health", "--target", t])
        check(rc == 0 and out.strip() == "SERVING", "health prints SERVING, exit 0")
        rc, out, _ = run([hbsa, "health", "--target", t, "--service", "hbsa.v1.Attention"])
        check(rc == 0 and out.strip() == "SERVING", "health --service hbsa.v1.Attention")
        rc, out, err = run([hbsa, "health", "--target", t, "--service", "no.such.Service"])
        check(rc != 0, "health of an unknown service exits non-zero (%d: %s%s)" % (rc, out.strip(), err.strip()))
        rc, out, _ = run([hbsa, "info", "--target", t])
        check(rc == 0 and "backend:" in out and "cpu" in out and "per_sequence" in out, "info (text)")
        rc, out, _ = run([hbsa, "info", "--target", t, "--json"])
        caps = json.loads(out) if rc == 0 else {}
        check(caps.get("backend") == "cpu" and "limits" in caps, "info --json parses, backend cpu")

        for case in cases:
            for form in ("dense", "per_sequence", "compact"):
                rc, out, err = run([hbsa, "attend", "--target", t, "--case", os.path.join(o.golden, case),
                                    "--check", "--mask-form", form])
                check(rc == 0 and "check PASS" in out and "server total" in out,
                      "attend --check %s %s%s" % (case, form, "" if rc == 0 else ": " + out + err))

        # Raw inputs from .npy files: the case's arrays plus cu_seqlens written here.
        case_dir = os.path.join(o.golden, "readme_example_noncausal")
        meta = json.load(open(os.path.join(case_dir, "case.json")))
        cu_q, cu_k = os.path.join(o.workdir, "cu_q.npy"), os.path.join(o.workdir, "cu_k.npy")
        write_npy_int32(cu_q, meta["cu_q"])
        write_npy_int32(cu_k, meta["cu_k"])
        out_npy, lse_npy = os.path.join(o.workdir, "out.npy"), os.path.join(o.workdir, "lse.npy")
        cmd = [hbsa, "attend", "--target", t, "--q", os.path.join(case_dir, "q.npy"),
               "--k", os.path.join(case_dir, "k.npy"), "--v", os.path.join(case_dir, "v.npy"),
               "--cu-seqlens-q", cu_q, "--cu-seqlens-k", cu_k,
               "--block-mask", os.path.join(case_dir, "block_mask.npy"),
               "--q-block-size", str(meta["sq"]), "--k-block-size", str(meta["sk"]),
               "--dtype", meta["dtype"], "--mask-form", "compact", "--out", out_npy, "--lse-out", lse_npy]
        if meta["causal"]:
            cmd.append("--causal")
        if meta["scale"] is not None:
            cmd += ["--scale", str(meta["scale"])]
        rc, out, err = run(cmd)
        check(rc == 0 and os.path.exists(out_npy) and os.path.exists(lse_npy), "attend with raw .npy inputs" + ("" if rc == 0 else ": " + err))
        if rc == 0:
            tq, hq, d = sum(meta["lq"]), meta["hq"], meta["d"]
            check(npy_shape(out_npy).replace(" ", "") == "%d,%d,%d" % (tq, hq, d), "out.npy shape [total_q, Hq, D]")
            check(npy_shape(lse_npy).replace(" ", "") == "%d,%d" % (tq, hq), "lse.npy shape [total_q, Hq]")

        rc, _, err = run([hbsa, "attend", "--target", t, "--case", case_dir, "--mask-form", "sparse"])
        check(rc == 2 and "mask-form" in err, "bad --mask-form is a usage error (2)")
        rc, _, err = run([hbsa, "attend", "--target", t, "--q", os.path.join(case_dir, "q.npy")])
        check(rc == 2 and "required" in err, "missing raw inputs is a usage error (2)")
        rc, _, err = run([hbsa, "attend", "--target", t, "--case", case_dir, "--chek"])
        check(rc == 2 and "chek" in err, "unknown flag is named")
        rc, out, _ = run([hbsa, "attend", "--help"])
        check(rc == 0 and "--mask-form" in out and "Example" in out, "attend --help")

        # hbsa-bench: concurrency sweep with checks and metrics, then Poisson rate mode.
        csv_path, json_path = os.path.join(o.workdir, "bench.csv"), os.path.join(o.workdir, "bench.json")
        rc, out, err = run([o.bench, "--target", t, "--concurrency", "1,2", "--batch", "2", "--seqlen-q", "64",
                            "--heads-q", "4", "--heads-k", "2", "--head-dim", "32", "--q-block-size", "16",
                            "--k-block-size", "32", "--causal", "--mask-form", "compact", "--lse",
                            "--window-ms", "300", "--max-windows", "4", "--stable-windows", "2", "--stability", "0.5",
                            "--warmup", "3", "--check-fraction", "0.2", "--max-checks", "5",
                            "--metrics-url", s.metrics_url, "--csv", csv_path, "--json", json_path])
        check(rc == 0, "hbsa-bench concurrency sweep exits 0" + ("" if rc == 0 else ": " + out + err))
        rows = list(csv.DictReader(open(csv_path))) if os.path.exists(csv_path) else []
        check(len(rows) == 2 and [r["concurrency"] for r in rows] == ["1", "2"], "CSV has one row per level")
        for r in rows:
            check(float(r["throughput_rps"]) > 0 and float(r["payload_gbps"]) > 0, "CSV throughput > 0 (c=%s)" % r["concurrency"])
            check(0 < float(r["p50_ms"]) <= float(r["p90_ms"]) <= float(r["p95_ms"]) <= float(r["p99_ms"]) <= float(r["max_ms"]),
                  "CSV percentiles ordered (c=%s)" % r["concurrency"])
            check(int(r["errors"]) == 0 and int(r["check_failures"]) == 0 and int(r["checks"]) > 0,
                  "CSV: no errors, spot-checks ran and passed (c=%s)" % r["concurrency"])
            check(r["server_requests_ok"] != "" and float(r["server_requests_ok"]) >= int(r["requests"]),
                  "CSV: server counted at least the measured requests (c=%s)" % r["concurrency"])
        doc = json.load(open(json_path)) if os.path.exists(json_path) else {}
        levels = doc.get("levels", [])
        check(len(levels) == 2 and all(k in levels[0] for k in ("p50_ms", "p99_ms", "throughput_rps", "stable", "server")),
              "JSON has levels with latency, throughput, stability and server fields")
        if levels and levels[0].get("server"):
            check(levels[0]["server"]["stage_mean_ms"].get("kernel", 0) > 0, "JSON: server kernel stage time > 0")
        rc, out, err = run([o.bench, "--target", t, "--request-rate", "40", "--batch", "1", "--seqlen-q", "32",
                            "--heads-q", "2", "--heads-k", "1", "--head-dim", "16", "--window-ms", "500",
                            "--max-windows", "3", "--stable-windows", "2", "--warmup", "2", "--csv", csv_path])
        rows = list(csv.DictReader(open(csv_path))) if rc == 0 else []
        check(rc == 0 and len(rows) == 1 and rows[0]["mode"] == "rate" and 10 < float(rows[0]["throughput_rps"]) < 100,
              "hbsa-bench --request-rate 40: throughput near 40/s (%s)" % (rows[0]["throughput_rps"] if rows else out + err))
        rc, out, _ = run([o.bench, "--help"])
        check(rc == 0 and "--concurrency" in out and "--request-rate" in out and "Example" in out, "hbsa-bench --help")

    tls_checks(o, hbsa, case_dir)

    # A dead target: the call fails with exit 3 and names the code.
    rc, _, err = run([hbsa, "attend", "--target", "127.0.0.1:%d" % free_port(), "--case", case_dir, "--timeout-ms", "2000"])
    check(rc == 3 and "UNAVAILABLE" in err, "attend to a dead port exits 3 with UNAVAILABLE")
    print("%d failure(s)" % len(FAILURES))
    return 1 if FAILURES else 0


def tls_checks(o, hbsa, case_dir):
    pki = make_test_certs(os.path.join(o.workdir, "pki"))
    p = lambda n: os.path.join(pki, n)  # noqa: E731
    token = p("token")
    with open(token, "w") as f:
        f.write("cli-test-token\n")
    mtls = ["--tls-ca", p("ca.pem"), "--tls-cert", p("client.pem"), "--tls-key", p("client.key")]

    def ready(target):
        return run([hbsa, "health", "--target", target, "--timeout-ms", "1000"] + mtls, 10)[0] == 0

    args = ["--tls-cert-file", p("server.pem"), "--tls-key-file", p("server.key"),
            "--tls-client-ca-file", p("ca.pem"), "--auth-token-file", token]
    with HbsaServer(o.server, ready, extra_args=args) as s:
        t = s.target
        rc, out, _ = run([hbsa, "health", "--target", t] + mtls)
        check(rc == 0 and out.strip() == "SERVING", "TLS: health with CA and client certificate, no token")
        rc, out, err = run([hbsa, "info", "--target", t, "--token-file", token] + mtls)
        check(rc == 0 and "backend:" in out, "TLS: info with the token" + ("" if rc == 0 else ": " + err))
        rc, _, err = run([hbsa, "info", "--target", t] + mtls)
        check(rc == 3 and "UNAUTHENTICATED" in err, "TLS: info without the token exits 3 UNAUTHENTICATED")
        rc, out, err = run([hbsa, "attend", "--target", t, "--case", case_dir, "--check",
                            "--token-file", token] + mtls)
        check(rc == 0 and "check PASS" in out, "TLS: attend --check with the token" + ("" if rc == 0 else ": " + out + err))
        env_rc = subprocess.run([hbsa, "info", "--target", t] + mtls, capture_output=True, text=True,
                                env=dict(os.environ, HBSA_TOKEN="cli-test-token")).returncode
        check(env_rc == 0, "TLS: the token from HBSA_TOKEN")
        rc, _, err = run([hbsa, "health", "--target", t, "--tls-ca", p("ca.pem"), "--timeout-ms", "3000"])
        check(rc == 3 and "UNAVAILABLE" in err, "mutual TLS: no client certificate, handshake refused (exit 3)")
        rc, _, err = run([hbsa, "health", "--target", t, "--tls-ca", p("other-ca.pem"), "--tls-cert",
                          p("client.pem"), "--tls-key", p("client.key"), "--timeout-ms", "3000"])
        check(rc == 3 and "UNAVAILABLE" in err, "TLS: a client trusting another CA is refused (exit 3)")
        rc, _, err = run([hbsa, "health", "--target", t, "--timeout-ms", "3000"])
        check(rc == 3, "TLS: a plaintext client cannot talk to the TLS port (exit 3)")
        rc, _, err = run([hbsa, "info", "--target", t, "--token-file", token])
        check(rc == 2 and "needs TLS" in err, "--token-file without TLS is a usage error (2)")
        rc, _, err = run([hbsa, "info", "--target", t, "--tls-ca", p("missing.pem")])
        check(rc == 2 and "missing.pem" in err, "an unreadable --tls-ca is a usage error naming the file")
        rc, out, err = run([o.bench, "--target", t, "--concurrency", "1", "--batch", "1", "--seqlen-q", "32",
                            "--heads-q", "2", "--heads-k", "1", "--head-dim", "16", "--window-ms", "300",
                            "--max-windows", "2", "--stable-windows", "1", "--warmup", "1",
                            "--token-file", token] + mtls)
        check(rc == 0, "TLS: hbsa-bench with the connection flags" + ("" if rc == 0 else ": " + out + err))
        rc, out, _ = run([hbsa, "health", "--help"])
        check(rc == 0 and "--tls-ca" in out and "--token-file" in out, "health --help lists the connection flags")


if __name__ == "__main__":
    sys.exit(main())
