"""Render the Helm chart with the real Helm engine (helm-python-sdk, offline) and walk its manifests."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "sovtel"
EXAMPLES = ("air-gapped", "federated", "hybrid")
VALUE_SETS = ("default", *EXAMPLES)
RELEASE = "sovtel"
NAMESPACE = "sovtel"

WORKLOAD_KINDS = ("DaemonSet", "Deployment", "StatefulSet", "CronJob")
CRD_KINDS = ("ServiceMonitor", "PrometheusRule")


def example_values(name: str) -> dict[str, Any]:
    """The values of one example file, or {} for the chart's defaults."""
    if name == "default":
        return {}
    return yaml.safe_load((CHART / "examples" / f"{name}.yaml").read_text()) or {}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Every manifest the chart renders for ``values`` (NOTES.txt left out)."""
    files = helm_python.Chart.load(str(CHART)).render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


@functools.cache
def _render_set(name: str) -> tuple[dict[str, Any], ...]:
    return tuple(render(example_values(name)))


def rendered(name: str) -> list[dict[str, Any]]:
    """The manifests of a named value set (cached; a deep copy, so tests may not disturb each other)."""
    return copy.deepcopy(list(_render_set(name)))


def merged(base: str, **overrides: Any) -> dict[str, Any]:
    """A value set with nested overrides applied (dotted keys: ``merged('default', **{'a.b': 1})``)."""
    values = example_values(base)
    for dotted, value in overrides.items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The manifests of one kind."""
    return [d for d in docs if d.get("kind") == kind]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The manifest of ``kind`` called ``name``; fails the test if there is none."""
    for d in of_kind(docs, kind):
        if d["metadata"]["name"] == name:
            return d
    raise AssertionError(f"no {kind} {name} among {[d['metadata']['name'] for d in of_kind(docs, kind)]}")


def pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a workload."""
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every manifest that runs pods."""
    return (d for d in docs if d.get("kind") in WORKLOAD_KINDS)


def config_map_file(docs: list[dict[str, Any]], name: str, key: str) -> Any:
    """A YAML file held in a rendered ConfigMap, parsed."""
    return yaml.safe_load(named(docs, "ConfigMap", name)["data"][key])
