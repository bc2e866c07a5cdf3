"""Render the Helm chart for each values combination in ``callpipe/ci/`` and validate every manifest
offline: Kubernetes kinds against the Kubernetes JSON schemas shipped by the ``kubernetes-validate``
package (strict: an unknown field is an error), the custom resources (KEDA ScaledObject,
Prometheus Operator PodMonitor, ServiceMonitor, PrometheusRule) against the schemas in
``schemas/`` (the fields the chart uses, as the CRDs define them). The alert rules also go through
``promtool check rules`` when promtool is installed (``make test-tools`` installs Prometheus), and
every metric the dashboard and the alerts query must be one the services export.

Usage (``make helm-lint``): python deploy/k8s/validate.py --helm .local/bin/helm
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
CHART = HERE / "callpipe"
SCHEMAS = HERE / "schemas"
ROOT = HERE.parents[1]
#: The oldest Kubernetes the chart supports (README: 1.25 or later) and the newest the package knows.
KUBERNETES_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}
_METRIC = re.compile(r"\b(callpipe_[a-z0-9_]+)")


def render(helm: str, values: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm, "template", "callpipe", str(CHART), "--namespace", "callpipe", "-f", str(values)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def exported_metrics() -> set[str]:
    """Every series name the services can export (histograms: _bucket, _sum, _count)."""
    sys.path.insert(0, str(ROOT))
    from prometheus_client import REGISTRY  # noqa: PLC0415 - after the path is set

    import services.common.metrics  # noqa: F401, PLC0415 - registers the metrics

    names: set[str] = set()
    for metric in REGISTRY.collect():
        if metric.name.startswith("callpipe_"):
            names |= {sample.name for sample in metric.samples} | {metric.name}
            if metric.type == "histogram":
                names |= {f"{metric.name}_{s}" for s in ("bucket", "sum", "count")}
            if metric.type == "counter":
                names.add(f"{metric.name}_total")
    return names


def check_queries(texts: list[str], known: set[str], where: str) -> list[str]:
    return [
        f"{where}: {name} is not a metric the services export"
        for t in texts
        for name in _METRIC.findall(t)
        if name not in known
    ]


def validate(doc: dict[str, Any], source: str) -> list[str]:
    kind = (doc.get("apiVersion", ""), doc.get("kind", ""))
    name = f"{source}: {kind[1]} {doc.get('metadata', {}).get('name')}"
    if kind in CUSTOM:
        schema = json.loads((SCHEMAS / CUSTOM[kind]).read_text())
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        return [f"{name}: {e.json_path}: {e.message}" for e in errors]
    problems = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{name} (Kubernetes {version}): {exc.path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{name}: no schema for {kind} in Kubernetes {version}")
    return problems


def promtool_check(rule: dict[str, Any], source: str) -> list[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        print(f"{source}: promtool not installed (make test-tools); alert expressions not checked")
        return []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.safe_dump(rule["spec"]))
        result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    return [] if result.returncode == 0 else [f"{source}: promtool: {result.stdout}{result.stderr}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--helm", default="helm")
    args = parser.parse_args(argv)
    known = exported_metrics()
    dashboard = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    problems = check_queries(exprs, known, "grafana-dashboard.json")
    for values in sorted((CHART / "ci").glob("*-values.yaml")):
        docs = render(args.helm, values)
        kinds: dict[str, int] = {}
        for doc in docs:
            kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
            problems += validate(doc, values.name)
            if doc["kind"] == "PrometheusRule":
                problems += promtool_check(doc, values.name)
                rules = [r["expr"] for g in doc["spec"]["groups"] for r in g["rules"]]
                problems += check_queries([str(e) for e in rules], known, f"{values.name} alerts")
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        versions = " and ".join(KUBERNETES_VERSIONS)
        print(f"{values.name}: {len(docs)} manifests checked against Kubernetes {versions} ({summary})")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
