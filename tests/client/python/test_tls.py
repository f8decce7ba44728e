"""The Python client's TLS, mutual TLS and bearer-token options against a real hbsa-server started
with --tls-cert-file/--tls-key-file/--tls-client-ca-file/--auth-token-file (certificates made by
tests/common/make_test_certs.sh with the openssl CLI)."""
import asyncio
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from hbsa_server import HbsaServer, make_test_certs  # noqa: E402

import hbsa  # noqa: E402
from conftest import Case, all_cases  # noqa: E402

TOKEN = "python-test-token"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = make_test_certs(tmp_path_factory.mktemp("pki"))
    with open(os.path.join(d, "token"), "w") as f:
        f.write(TOKEN + "\n")
    return d


@pytest.fixture(scope="module")
def tls_server(pki):
    p = lambda n: os.path.join(pki, n)  # noqa: E731

    def ready(target):
        c = hbsa.Client(target, timeout=1.0, retries=1, ca_file=p("ca.pem"),
                        cert_file=p("client.pem"), key_file=p("client.key"))
        try:
            return c.health() == "SERVING"
        finally:
            c.close()

    args = ["--tls-cert-file", p("server.pem"), "--tls-key-file", p("server.key"),
            "--tls-client-ca-file", p("ca.pem"), "--auth-token-file", p("token")]
    with HbsaServer(os.environ["HBSA_SERVER_BIN"], ready, extra_args=args) as s:
        yield s


def client(server, pki, ca="ca", cert="client", **kw):
    p = lambda n: os.path.join(pki, n)  # noqa: E731
    return hbsa.Client(server.target, timeout=10.0, retries=1, ca_file=p(ca + ".pem"),
                       cert_file=p(cert + ".pem") if cert else None,
                       key_file=p(cert + ".key") if cert else None, **kw)


def first_case():
    return Case(all_cases()[0])


def test_mutual_tls_with_token_computes(tls_server, pki):
    c = first_case()
    for kw in ({"token": TOKEN}, {"token_file": os.path.join(pki, "token")}):
        with client(tls_server, pki, **kw) as cl:
            out, lse = cl.attend(*c.args(), return_lse=True)
            got = np.asarray(out)
            got = (got.astype(np.uint32) << 16).view(np.float32) if c.dtype == "bf16" else \
                got.astype(np.float32)
            assert np.allclose(got, c.out, atol=1e-2, rtol=1e-2)
            assert cl.capabilities().backend == "cpu"


def test_async_client_over_tls(tls_server, pki):
    c = first_case()
    p = lambda n: os.path.join(pki, n)  # noqa: E731

    async def run():
        async with hbsa.AsyncClient(tls_server.target, timeout=10.0, retries=1,
                                    ca_file=p("ca.pem"), cert_file=p("client.pem"),
                                    key_file=p("client.key"), token=TOKEN) as cl:
            return await cl.attend(*c.args())

    out = asyncio.run(run())
    assert out.shape == c.out.shape


def test_without_token_unauthenticated_but_health_answers(tls_server, pki):
    with client(tls_server, pki) as cl:
        assert cl.health() == "SERVING"
        with pytest.raises(hbsa.UnauthenticatedError):
            cl.attend(*first_case().args())
    with client(tls_server, pki, token=TOKEN + "x") as cl:
        with pytest.raises(hbsa.UnauthenticatedError):
            cl.capabilities()


def test_handshake_refused_without_client_cert_or_trust(tls_server, pki):
    for kw in ({"cert": None}, {"ca": "other-ca"}, {"cert": "other-client"}):
        with client(tls_server, pki, token=TOKEN, **kw) as cl:
            with pytest.raises(hbsa.UnavailableError):
                cl.capabilities()


def test_client_side_refusals(pki):
    with pytest.raises(hbsa.InvalidArgumentError, match="needs TLS"):
        hbsa.Client("127.0.0.1:1", token=TOKEN)
    with pytest.raises(hbsa.InvalidArgumentError, match="go together"):
        hbsa.Client("127.0.0.1:1", cert_file=os.path.join(pki, "client.pem"))
    with pytest.raises(hbsa.InvalidArgumentError, match="cannot read"):
        hbsa.Client("127.0.0.1:1", ca_file=os.path.join(pki, "missing.pem"))
