"""tests/deploy/test_observability.py: static checks of deploy/observability.

`promtool check config` and `check rules` on the repository files, `promtool test rules` on the
alert unit tests, the Kubernetes scrape job (which Debian's promtool cannot parse, having no
Kubernetes discovery) checked with its discovery block swapped for a static one plus a
cross-check of what it keeps against the rendered Deployment, and the Grafana dashboard's
structure and coverage. That every metric name used exists on a live server is checked in
test_e2e.py.
"""
from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from conftest import OBS, find, metric_names, render, run, tool

DASHBOARD = OBS / "grafana" / "hbsa-dashboard.json"


def promtool():
    return tool("promtool")


def test_promtool_check_config():
    res = run([promtool(), "check", "config", str(OBS / "prometheus.yml")])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout + res.stderr


def test_promtool_check_rules():
    res = run([promtool(), "check", "rules", str(OBS / "hbsa-rules.yml")])
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_unit_tests_of_the_alerts():
    res = run([promtool(), "test", "rules", str(OBS / "tests" / "hbsa-rules.test.yml")])
    assert res.returncode == 0, res.stdout + res.stderr


def test_alerts_cover_the_required_conditions():
    groups = yaml.safe_load((OBS / "hbsa-rules.yml").read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    records = {r["record"]: r["expr"] for r in rules if "record" in r}
    alerts = {r["alert"]: r["expr"] for r in rules if "alert" in r}

    def resolved(expr):  # an alert's expression with the recording rules it reads spelled out
        for name, body in records.items():
            expr = expr.replace(name, f"({body})")
        return expr

    assert "hbsa_requests_total" in resolved(alerts["HbsaHighErrorRatio"])
    assert re.search(r"histogram_quantile\(0\.99,.*hbsa_request_duration_seconds_bucket",
                     resolved(alerts["HbsaHighP99Latency"]), re.S)
    assert "hbsa_queue_depth" in alerts["HbsaQueueSaturated"]
    assert "hbsa_gpu_memory_used_bytes" in alerts["HbsaGpuMemoryNearFull"]
    assert "process_open_fds / process_max_fds" in alerts["HbsaFileDescriptorsNearLimit"]
    assert re.fullmatch(r"up\{job=~\"hbsa\.\*\"\} == 0", alerts["HbsaServerDown"])
    for r in rules:
        if "alert" in r:
            assert r["labels"]["severity"] in {"warning", "critical"}
            assert r["annotations"]["summary"] and r["annotations"]["description"]


def test_kubernetes_scrape_job(tmp_path):
    cfg = yaml.safe_load((OBS / "prometheus-kubernetes.yml").read_text())
    (job,) = cfg["scrape_configs"]
    sd = job.pop("kubernetes_sd_configs")
    assert sd[0]["role"] == "pod" and set(sd[0]["namespaces"]["names"]) == {"hbsa", "hbsa-dev"}
    # promtool checks the rest (relabelling included) with discovery replaced by a static target.
    job["static_configs"] = [{"targets": ["127.0.0.1:9464"]}]
    shutil.copy(OBS / "hbsa-rules.yml", tmp_path / "hbsa-rules.yml")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    res = run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")])
    assert res.returncode == 0, res.stdout + res.stderr
    # What it keeps must exist on the pods deploy/k8s creates.
    keeps = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    for overlay in ("gpu", "cpu"):
        objs = render(overlay)
        pod = find(objs, "Deployment")["spec"]["template"]
        label = keeps["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == label
        port = keeps["__meta_kubernetes_pod_container_port_name"]
        assert port in {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod"} <= targets, "the prometheus-adapter rules need namespace and pod labels"


def dashboard_exprs():
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] if p["type"] != "row" for t in p["targets"]]


def test_dashboard_structure():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "hbsa-server" and dash["schemaVersion"] >= 36
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= variables
    cells = set()
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, f"panel {p['title']} runs off the grid"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['title']} overlaps another"
                cells.add((x, y))
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}"
            assert p["targets"] and all(t["expr"] for t in p["targets"])
            for t in p["targets"]:
                assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
                if "hbsa_" in t["expr"] or "process_" in t["expr"] or "up{" in t["expr"]:
                    assert '$job' in t["expr"] and '$instance' in t["expr"], f"{p['title']} ignores the selectors"


def test_dashboard_covers_what_operators_need():
    exprs = "\n".join(e for _, e in dashboard_exprs())
    assert re.search(r"histogram_quantile\(0\.99, sum by \(method, le\) \(rate\(hbsa_request_duration_seconds_bucket", exprs)
    assert re.search(r"histogram_quantile\(0\.99, sum by \(stage, le\) \(rate\(hbsa_stage_duration_seconds_bucket", exprs)
    used = set().union(*(metric_names(e) for _, e in dashboard_exprs()))
    for name in ("hbsa_requests_total", "hbsa_queue_depth", "hbsa_inflight_requests", "hbsa_tokens_total",
                 "hbsa_flops_total", "hbsa_device_memory_used_bytes", "hbsa_device_memory_budget_bytes",
                 "hbsa_received_bytes_total", "hbsa_sent_bytes_total", "hbsa_stream_requests_total",
                 "hbsa_build_info", "hbsa_gpu_utilization_ratio", "hbsa_gpu_memory_used_bytes",
                 "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert name in used, f"dashboard shows nothing from {name}"
    assert re.search(r'sum by \(code, method\) \(rate\(hbsa_requests_total\{[^}]*code!="OK"', exprs), "errors by code"
    assert re.search(r"histogram_quantile\(0\.99, sum by \(instance, device, le\) \(rate\(hbsa_request_duration_seconds_bucket", exprs), "latency by device"


@pytest.mark.parametrize("expr,names", [
    ('sum(rate(hbsa_requests_total{code="hbsa_fake"}[5m]))', {"hbsa_requests_total"}),
    ("hbsa:request_errors:ratio_rate5m > 0.05", set()),
    ("up{job=~\"hbsa.*\"} == 0", {"up"}),
    ("histogram_quantile(0.5, rate(hbsa_stage_duration_seconds_bucket[1m]))", {"hbsa_stage_duration_seconds_bucket"}),
    ("process_open_fds / process_max_fds > 0.8", {"process_open_fds", "process_max_fds"}),
])
def test_metric_name_extraction(expr, names):
    assert metric_names(expr) == names
