"""The offline chart validation (``make helm-lint``) refuses what Kubernetes or the operators would:
an unknown field in a Kubernetes object or a custom resource, a query of a metric the services do
not export, an alert expression promtool cannot parse."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("chart_validate", ROOT / "deploy" / "k8s" / "validate.py")
assert _spec and _spec.loader
validate = importlib.util.module_from_spec(_spec)
sys.modules["chart_validate"] = validate
_spec.loader.exec_module(validate)


def deployment(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gateway"},
        "spec": {
            "selector": {"matchLabels": {"app": "gateway"}},
            "template": {
                "metadata": {"labels": {"app": "gateway"}},
                "spec": {"containers": [{"name": "gateway", "image": "callpipe:0.1.0"}]},
            },
            **spec,
        },
    }


def test_kubernetes_objects_are_checked_strictly() -> None:
    assert validate.validate(deployment(replicas=2), "test") == []
    problems = validate.validate(deployment(replicaz=2), "test")
    assert problems and all("replicaz" in p for p in problems)
    assert validate.validate(deployment(replicas="two"), "test")


def test_custom_resources_are_checked_against_their_schemas() -> None:
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "callpipe"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics"}],
        },
    }
    assert validate.validate(monitor, "test") == []
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    assert any("intervall" in p for p in validate.validate(monitor, "test"))


def test_queries_must_name_exported_metrics() -> None:
    known = validate.exported_metrics()
    assert {"callpipe_consumer_lag_messages", "callpipe_call_end_to_end_seconds_bucket"} <= known
    assert validate.check_queries(["sum(rate(callpipe_ingest_calls_total[5m]))"], known, "t") == []
    assert validate.check_queries(["sum(callpipe_consumer_lagg)"], known, "t")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (make test-tools)")
def test_alert_expressions_go_through_promtool() -> None:
    good = {"spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]}}
    bad = {"spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(rate(x[5m])"}]}]}}
    assert validate.promtool_check(good, "t") == []
    assert validate.promtool_check(bad, "t")
