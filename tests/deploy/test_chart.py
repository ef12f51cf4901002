"""The Helm chart: it renders and lints with the real Helm engine, every manifest is valid Kubernetes,
and the properties an operator relies on hold for the defaults and every example deployment pattern."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from processors.keyring import KeyRing
from retention.config import parse_jobs_config
from sovtel.config import ConfigError, parse_config
from tests.deploy.chart import (
    CHART,
    CRD_KINDS,
    RELEASE,
    ROOT,
    VALUE_SETS,
    config_map_file,
    example_values,
    merged,
    named,
    of_kind,
    pod_template,
    render,
    rendered,
    workloads,
)

KUBERNETES_VERSION = "1.30.0"
SECRETISH_NAME = re.compile(r"(KEY|SECRET|PASSWORD|PASSWD|TOKEN|PEPPER|CREDENTIAL)", re.IGNORECASE)


def _labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a NetworkPolicy podSelector (matchLabels only; the chart uses no expressions) selects ``labels``."""
    assert "matchExpressions" not in selector
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _policies_for(docs: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in of_kind(docs, "NetworkPolicy") if _labels_match(p["spec"]["podSelector"], labels)]


def _allows_all(rule: dict[str, Any]) -> bool:
    """Whether an egress rule lets traffic out to anywhere (no peers, an empty peer, or a /0 block)."""
    peers = rule.get("to")
    if not peers:
        return True
    for peer in peers:
        if not peer:
            return True
        block = peer.get("ipBlock")
        if block and ipaddress.ip_network(block["cidr"]).prefixlen == 0:
            return True
        if peer.get("namespaceSelector") == {} and not peer.get("podSelector"):
            return True
    return False


def _egress_cidrs(policies: list[dict[str, Any]]) -> set[str]:
    return {
        peer["ipBlock"]["cidr"]
        for p in policies
        for rule in p["spec"].get("egress") or []
        for peer in rule.get("to") or []
        if "ipBlock" in peer
    }


def _tier_cidrs(values: dict[str, Any], tiers: list[str]) -> set[str]:
    return {rule["cidr"] for t in tiers for rule in values["tiers"][t].get("egress", [])}


def _chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def _effective(values: dict[str, Any]) -> dict[str, Any]:
    """The chart's defaults with ``values`` merged over them, as Helm merges maps."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {k: merge(base.get(k), over[k]) if k in over else base[k] for k in {*base, *over}}
        return over

    return merge(_chart_defaults(), values)


def _containers(pod: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [*(spec.get("initContainers") or [] if init else []), *spec["containers"]]


def _check_custom_resource(doc: dict[str, Any]) -> None:
    """Structural check of the Prometheus Operator kinds, which have no schema in kubernetes-validate."""
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])
    assert all(isinstance(v, str) for v in doc["metadata"].get("labels", {}).values())
    spec = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
        assert spec["selector"]["matchLabels"]
        assert spec["endpoints"] and all(e["port"] for e in spec["endpoints"])
        return
    assert set(spec) == {"groups"}
    names = [g["name"] for g in spec["groups"]]
    assert len(names) == len(set(names)), "rule group names must be unique"
    for group in spec["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}
            assert ("alert" in rule) != ("record" in rule)
            assert isinstance(rule["expr"], str) and rule["expr"].count("(") == rule["expr"].count(")")
            assert all(isinstance(v, str) for v in {**rule.get("labels", {}), **rule.get("annotations", {})}.values())
            if "for" in rule:
                assert re.fullmatch(r"\d+[smhd]", rule["for"])


class TestRendering:
    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_lint_strict_reports_no_warning(self, value_set):
        """helm lint --strict finds no warning or error for the defaults and every example."""
        result = helm_python.lint(str(CHART), example_values(value_set), strict=True)
        problems = [m for m in result["messages"] if m["severity"] >= 2]
        assert not result["errors"] and not problems, problems or result["errors"]

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_every_manifest_is_valid_kubernetes(self, value_set):
        """Every core manifest validates strictly against the Kubernetes 1.30 schemas; CRD kinds structurally."""
        docs = rendered(value_set)
        assert docs
        for doc in docs:
            if doc["kind"] in CRD_KINDS:
                _check_custom_resource(doc)
            else:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)

    def test_schema_rejects_unknown_values(self):
        """values.schema.json refuses a misspelt key instead of silently ignoring it."""
        with pytest.raises(helm_python.HelmValuesError, match="collecter"):
            render({"collecter": {"enabled": False}})

    def test_schema_rejects_a_bad_schedule(self):
        """A CronJob schedule that is not five cron fields is refused at render time."""
        with pytest.raises(helm_python.HelmValuesError, match="schedule"):
            render(merged("default", **{"jobs.audit.schedule": "daily"}))

    def test_tier_without_endpoint_fails_with_a_reason(self):
        """A tier with no ClickHouse host and no bundled server fails rendering and says which tier."""
        with pytest.raises(helm_python.HelmError, match=r"tiers\.local\.clickhouse\.host is empty"):
            render(merged("default", **{"tiers.local.clickhouse.host": ""}))

    def test_component_writing_to_a_disabled_tier_fails(self):
        """Listing a disabled tier for the collector is a render error, not a silent drop."""
        with pytest.raises(helm_python.HelmError, match=r'tier "sovereign" is not enabled'):
            render(merged("default", **{"collector.tiers": ["local", "sovereign"]}))

    def test_air_gapped_pulls_every_image_from_the_private_registry(self):
        """With global.imageRegistry set, every container image comes from that registry."""
        docs = rendered("air-gapped")
        registry = example_values("air-gapped")["global"]["imageRegistry"]
        images = [c["image"] for w in workloads(docs) for c in _containers(pod_template(w))]
        assert images and all(i.startswith(registry + "/") for i in images), images
        assert all(pod_template(w)["spec"]["imagePullSecrets"] for w in workloads(docs))


class TestCollector:
    def test_daemonset_runs_on_gpu_nodes(self):
        """The collector DaemonSet selects GPU nodes, tolerates their taint and uses the NVIDIA runtime."""
        pod = pod_template(named(rendered("default"), "DaemonSet", f"{RELEASE}-collector"))["spec"]
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert pod["runtimeClassName"] == "nvidia"
        container = pod["containers"][0]
        assert container["args"] == ["run", "-c", "/etc/sovtel/sovtel.yaml"]
        assert {p["containerPort"] for p in container["ports"]} == {4317, 4318, 8888}

    @pytest.mark.parametrize(
        ("state", "volume_key"),
        [({"type": "hostPath"}, "hostPath"), ({"type": "pvc", "existingClaim": "q"}, "persistentVolumeClaim")],
    )
    def test_durable_queue_lives_on_the_node_or_a_claim(self, state, volume_key):
        """The state directory (durable queue) is a hostPath or a PVC with a per-node sub-directory."""
        docs = render(merged("default", **{f"collector.state.{k}": v for k, v in state.items()}))
        pod = pod_template(named(docs, "DaemonSet", f"{RELEASE}-collector"))["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "state")
        assert volume_key in volume
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "state")
        assert mount["mountPath"] == "/var/lib/sovtel"
        assert ("subPathExpr" in mount) == (state["type"] == "pvc")

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_rendered_configs_pass_sovtels_own_validation(self, value_set):
        """The collector's and gateway's sovtel.yaml pass sovtel.config.parse_config, so the chart cannot drift."""
        docs = rendered(value_set)
        for component in ("collector", "gateway"):
            data = config_map_file(docs, f"{RELEASE}-{component}", "sovtel.yaml")
            cfg = parse_config(data, source=f"{value_set}/{component}")
            assert cfg.service.telemetry.metrics.address == "0.0.0.0:8888"
            has_nvml = any(name == "nvml" for _, name in cfg.components)
            assert has_nvml == (component == "collector")

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_exporters_match_the_components_tiers(self, value_set):
        """Each component has exactly one clickhouse exporter per tier it writes, with the password by reference."""
        docs = rendered(value_set)
        values = _effective(example_values(value_set))
        for component in ("collector", "gateway"):
            cfg = config_map_file(docs, f"{RELEASE}-{component}", "sovtel.yaml")
            tiers = values[component]["tiers"]
            assert set(cfg["exporters"]) == {f"clickhouse/{t}" for t in tiers}
            for t in tiers:
                exporter = cfg["exporters"][f"clickhouse/{t}"]
                assert exporter["database"] == values["tiers"][t]["database"]
                assert exporter["password"] == f"env:SOVTEL_CLICKHOUSE_PASSWORD_{t.upper()}"

    @pytest.mark.parametrize("component", ["collector", "gateway"])
    def test_otlp_tls_and_bearer_tokens_come_from_secrets(self, component):
        """Receiver TLS files are the mounted TLS Secret and bearer tokens are env references fed by secretKeyRef."""
        docs = rendered("federated") if component == "gateway" else rendered("air-gapped")
        cfg = config_map_file(docs, f"{RELEASE}-{component}", "sovtel.yaml")
        parse_config(cfg)
        otlp = cfg["receivers"]["otlp"]
        workload = next(w for w in workloads(docs) if w["metadata"]["name"] == f"{RELEASE}-{component}")
        container = pod_template(workload)["spec"]["containers"][0]
        if component == "collector":
            assert otlp["protocols"]["grpc"]["tls"] == {"cert_file": "/etc/sovtel/tls/tls.crt",
                                                        "key_file": "/etc/sovtel/tls/tls.key"}
            assert any(m["mountPath"] == "/etc/sovtel/tls" for m in container["volumeMounts"])
        else:
            tokens = otlp["auth"]["bearer_tokens"]
            assert [t["tenant"] for t in tokens] == ["claims", "support"]
            env = {e["name"]: e for e in container["env"]}
            for t in tokens:
                assert env[t["token"].removeprefix("env:")]["valueFrom"]["secretKeyRef"]["name"] == "sovtel-otlp-tokens"

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_every_pipeline_routes_only_to_permitting_sinks(self, value_set):
        """Each exporter declares its tier's jurisdiction and permitted tiers; pipelines carry only those tiers."""
        docs = rendered(value_set)
        values = _effective(example_values(value_set))
        for component in ("collector", "gateway"):
            cfg = config_map_file(docs, f"{RELEASE}-{component}", "sovtel.yaml")
            for name, exporter in cfg["exporters"].items():
                tier = values["tiers"][name.removeprefix("clickhouse/")]
                assert exporter["tiers"] == tier["permits"] and exporter["jurisdiction"] == tier["jurisdiction"]
            for pipeline in cfg["service"]["pipelines"].values():
                permitted = {t for e in pipeline["exporters"] for t in cfg["exporters"][e]["tiers"]}
                assert set(pipeline["tiers"]) == permitted

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_rendered_configs_carry_the_residency(self, value_set):
        """service.country and service.sovereign_jurisdictions come from residency, so sovtel checks each
        tier's jurisdiction against them at start-up."""
        docs = rendered(value_set)
        residency = _effective(example_values(value_set))["residency"]
        for component in ("collector", "gateway"):
            cfg = parse_config(config_map_file(docs, f"{RELEASE}-{component}", "sovtel.yaml"))
            assert cfg.service.country == residency["country"].upper()
            assert cfg.service.sovereign_jurisdictions == [c.upper() for c in residency["sovereign"]]

    def test_a_local_tier_outside_the_country_fails_sovtels_validation(self):
        """A local-tier store in the US with residency.country DE renders, but sovtel refuses the config,
        naming the exporter's jurisdiction."""
        docs = render(merged("default", **{"tiers.local.jurisdiction": "us"}))
        data = config_map_file(docs, f"{RELEASE}-collector", "sovtel.yaml")
        with pytest.raises(ConfigError) as err:
            parse_config(data)
        assert any(e.startswith("exporters.clickhouse/local.jurisdiction: jurisdiction 'US' is outside the "
                                "operator's country (DE") for e in err.value.errors), err.value.errors

    @pytest.mark.parametrize(("key", "value"), [("tiers.local.jurisdiction", "Germany"),
                                                ("residency.country", "EU1")])
    def test_schema_rejects_free_text_jurisdictions(self, key, value):
        """values.schema.json accepts only two-letter codes or EEA where a jurisdiction belongs."""
        with pytest.raises(helm_python.HelmValuesError):
            render(merged("default", **{key: value}))

    def test_gateway_scales_with_an_hpa(self):
        """The gateway Deployment leaves its replica count to a CPU-based HorizontalPodAutoscaler."""
        docs = rendered("default")
        deployment = named(docs, "Deployment", f"{RELEASE}-gateway")
        hpa = named(docs, "HorizontalPodAutoscaler", f"{RELEASE}-gateway")
        assert "replicas" not in deployment["spec"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


class TestSecurity:
    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_every_workload_is_confined_by_an_egress_policy(self, value_set):
        """Every pod is selected by a NetworkPolicy with Egress, and no selecting policy allows egress anywhere."""
        docs = rendered(value_set)
        for workload in workloads(docs):
            labels = pod_template(workload)["metadata"]["labels"]
            policies = _policies_for(docs, labels)
            assert any("Egress" in p["spec"]["policyTypes"] for p in policies), workload["metadata"]["name"]
            for p in policies:
                rules = p["spec"].get("egress") or []
                assert not any(_allows_all(r) for r in rules), (workload["metadata"]["name"], p["metadata"]["name"])

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_egress_goes_only_to_the_components_tiers(self, value_set):
        """A component's egress CIDRs are exactly those of its tiers' stores (plus the Pushgateway for jobs)."""
        docs = rendered(value_set)
        values = _effective(example_values(value_set))
        for component in ("collector", "gateway", "jobs"):
            labels = {"app.kubernetes.io/name": "sovtel", "app.kubernetes.io/instance": RELEASE,
                      "app.kubernetes.io/component": component}
            tiers = list(values[component]["tiers"])
            if component == "jobs" and values["jobs"]["quality"]["tier"] not in tiers:
                tiers.append(values["jobs"]["quality"]["tier"])
            expected = _tier_cidrs(values, tiers)
            if component == "jobs" and values["monitoring"]["pushgateway"]["url"]:
                expected |= {r["cidr"] for r in values["monitoring"]["pushgateway"]["egress"]}
            assert _egress_cidrs(_policies_for(docs, labels)) == expected, component

    def test_federated_release_cannot_reach_the_public_tier(self):
        """In the federated pattern no policy lets a pod reach the public tier's store."""
        docs = rendered("federated")
        public = {r["cidr"] for r in example_values("federated")["tiers"]["public"]["egress"]}
        assert public and not public & _egress_cidrs(of_kind(docs, "NetworkPolicy"))

    def test_default_deny_covers_every_pod(self):
        """A default-deny policy (ingress and egress, no rules) selects every pod of the release."""
        docs = rendered("default")
        deny = named(docs, "NetworkPolicy", f"{RELEASE}-default-deny")
        assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert "egress" not in deny["spec"] and "ingress" not in deny["spec"]
        for workload in workloads(docs):
            assert _labels_match(deny["spec"]["podSelector"], pod_template(workload)["metadata"]["labels"])

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_no_secret_literals(self, value_set):
        """The chart renders no Secret, no secret-like env value, and only env:/file: references in configs."""
        docs = rendered(value_set)
        assert not of_kind(docs, "Secret")
        for workload in workloads(docs):
            for container in _containers(pod_template(workload)):
                for env in container.get("env", []):
                    if "value" in env:
                        assert not SECRETISH_NAME.search(env["name"]), env
                    else:
                        assert set(env["valueFrom"]) <= {"secretKeyRef", "fieldRef"}, env
        for cm in of_kind(docs, "ConfigMap"):
            for text in cm["data"].values():
                for match in re.finditer(r"(?im)^\s*(password|key|signing_key|receipt_key|ref|token):\s*(\S+)", text):
                    value = match.group(2).strip("'\"")
                    assert re.match(r"^(env:|file:|\$\{)", value), (cm["metadata"]["name"], match.group(0))

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_secrets_are_referenced_by_the_names_in_values(self, value_set):
        """Every secretKeyRef and secret volume names an existingSecret from values."""
        docs = rendered(value_set)
        values = _effective(example_values(value_set))
        allowed = {s["existingSecret"] for s in values["secrets"].values()}
        allowed |= {t["clickhouse"]["existingSecret"] for t in values["tiers"].values()}
        allowed.add(values["clickhouse"]["bundled"]["existingSecret"])
        allowed |= {t["existingSecret"] for t in values["pipeline"]["bearerTokens"]}
        if values["pipeline"]["tls"]["existingSecret"]:
            allowed.add(values["pipeline"]["tls"]["existingSecret"])
        used = set()
        for workload in workloads(docs):
            pod = pod_template(workload)["spec"]
            used |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
            for container in _containers(pod_template(workload)):
                used |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                         if "secretKeyRef" in e.get("valueFrom", {})}
        assert used and used <= allowed

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_probes_limits_and_non_root(self, value_set):
        """Long-running containers have probes; every container has requests and limits; pods run as non-root."""
        docs = rendered(value_set)
        for workload in workloads(docs):
            pod = pod_template(workload)
            name = workload["metadata"]["name"]
            assert pod["spec"]["securityContext"]["runAsNonRoot"] is True, name
            for container in _containers(pod):
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["limits"]) and resources["requests"], (name, container)
                assert container["securityContext"]["allowPrivilegeEscalation"] is False
                assert "ALL" in container["securityContext"]["capabilities"]["drop"]
            if workload["kind"] == "CronJob":
                assert workload["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
                continue
            for container in _containers(pod, init=False):
                assert "livenessProbe" in container and "readinessProbe" in container, (name, container["name"])

    def test_only_the_chown_init_container_runs_as_root(self):
        """The sole root container chowns the hostPath state directory with CAP_CHOWN and nothing else."""
        docs = rendered("default")
        root = [
            c for w in workloads(docs) for c in _containers(pod_template(w))
            if c["securityContext"].get("runAsNonRoot") is False
        ]
        assert [c["name"] for c in root] == ["chown-state"]
        assert root[0]["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
        sovtel = [c for w in workloads(docs) if w["kind"] != "StatefulSet" for c in _containers(pod_template(w))]
        assert all(c["securityContext"]["readOnlyRootFilesystem"] for c in sovtel)


class TestJobs:
    def test_schedules_come_from_values(self):
        """Each CronJob runs its sovtel command on the schedule given in values."""
        schedules = {"retention": "1 1 * * *", "audit": "2 2 * * 0", "quality": "*/20 * * * *"}
        values = merged("default", **{f"jobs.{job}.schedule": s for job, s in schedules.items()})
        docs = render(values)
        commands = {"retention": ["retention", "apply"], "audit": ["audit", "run"], "quality": ["quality", "report"]}
        for job, schedule in schedules.items():
            cron = named(docs, "CronJob", f"{RELEASE}-{job}")
            assert cron["spec"]["schedule"] == schedule
            assert cron["spec"]["concurrencyPolicy"] == "Forbid"
            args = pod_template(cron)["spec"]["containers"][0]["args"]
            assert args[:2] == commands[job]

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_jobs_config_passes_the_jobs_parser(self, value_set):
        """The rendered jobs.yaml passes retention's own parser and lists the jobs' tier stores."""
        docs = rendered(value_set)
        values = _effective(example_values(value_set))
        cfg = parse_jobs_config(config_map_file(docs, f"{RELEASE}-jobs", "jobs.yaml"), source=value_set)
        assert [s.databases[0] for s in cfg.tiers] == [values["tiers"][t]["database"] for t in values["jobs"]["tiers"]]
        assert all(s.password and s.password.startswith("env:") for s in cfg.tiers)
        assert cfg.ledger.signing_key and cfg.ledger.signing_key.startswith("file:/etc/sovtel/keys/signing/")

    @pytest.mark.parametrize("value_set", VALUE_SETS)
    def test_key_ring_passes_the_key_ring_model(self, value_set):
        """The rendered key ring is a valid sovtel key ring whose files are the mounted Secrets."""
        ring = KeyRing.model_validate(config_map_file(rendered(value_set), f"{RELEASE}-keyring", "keyring.yaml"))
        assert ring.node and ring.pepper
        for kind, keys in (("node", ring.node.keys), ("pepper", ring.pepper.keys)):
            assert all(k.ref.startswith(f"file:/etc/sovtel/keys/{kind}/") for k in keys.values())

    def test_audit_pushes_to_the_pushgateway_when_configured(self):
        """With a Pushgateway URL the audit job pushes its gauges there."""
        cron = named(rendered("hybrid"), "CronJob", f"{RELEASE}-audit")
        args = pod_template(cron)["spec"]["containers"][0]["args"]
        assert args[args.index("--pushgateway") + 1] == example_values("hybrid")["monitoring"]["pushgateway"]["url"]


class TestClickHouse:
    def test_external_by_default(self):
        """By default no ClickHouse runs in the release; the exporters point at the external endpoint."""
        docs = rendered("default")
        assert not of_kind(docs, "StatefulSet")
        cfg = config_map_file(docs, f"{RELEASE}-collector", "sovtel.yaml")
        assert cfg["exporters"]["clickhouse/local"]["host"] == _chart_defaults()["tiers"]["local"]["clickhouse"]["host"]

    def test_bundled_trial_server(self):
        """The bundled server uses the image tag from values and tiers without a host write to it."""
        docs = render(merged("default", **{"clickhouse.bundled.enabled": True, "clickhouse.bundled.image.tag": "25.3",
                                           "tiers.local.clickhouse.host": ""}))
        sts = named(docs, "StatefulSet", f"{RELEASE}-clickhouse")
        assert pod_template(sts)["spec"]["containers"][0]["image"] == "docker.io/clickhouse/clickhouse-server:25.3"
        cfg = config_map_file(docs, f"{RELEASE}-collector", "sovtel.yaml")
        assert cfg["exporters"]["clickhouse/local"]["host"] == f"{RELEASE}-clickhouse"
        parse_config(cfg)
        collector_policy = named(docs, "NetworkPolicy", f"{RELEASE}-collector")
        peers = [p for r in collector_policy["spec"]["egress"] for p in r["to"]]
        clickhouse = {"app.kubernetes.io/name": "sovtel", "app.kubernetes.io/instance": RELEASE,
                      "app.kubernetes.io/component": "clickhouse"}
        assert {"podSelector": {"matchLabels": clickhouse}} in peers
        ch_policy = named(docs, "NetworkPolicy", f"{RELEASE}-clickhouse")
        assert ch_policy["spec"]["egress"] == []


class TestGrafana:
    def test_dashboards_in_the_chart_are_the_generated_ones(self):
        """The chart's dashboard files are byte-identical to dashboards/generated (run cp to resync)."""
        chart_files = {p.name: p.read_bytes() for p in (CHART / "files" / "dashboards").glob("*.json")}
        generated = {p.name: p.read_bytes() for p in (ROOT / "dashboards" / "generated").glob("*.json")}
        assert generated and chart_files == generated, (
            "resync: cp dashboards/generated/*.json deploy/helm/sovtel/files/dashboards/"
        )

    def test_dashboard_config_maps_carry_the_sidecar_label(self):
        """Every generated dashboard is a ConfigMap labelled grafana_dashboard=1 holding its JSON."""
        docs = rendered("default")
        found = {}
        for cm in of_kind(docs, "ConfigMap"):
            if cm["metadata"]["labels"].get("grafana_dashboard") == "1":
                for key, text in cm["data"].items():
                    found[key] = json.loads(text)
        generated = {p.name: json.loads(p.read_text()) for p in (ROOT / "dashboards" / "generated").glob("*.json")}
        assert found == generated

    def test_datasources_match_the_dashboards_uids(self):
        """The provisioned data sources carry the uids the dashboards query, and the password by env reference."""
        docs = rendered("default")
        cm = next(c for c in of_kind(docs, "ConfigMap") if c["metadata"]["labels"].get("grafana_datasource") == "1")
        sources = yaml.safe_load(cm["data"]["sovtel-datasources.yaml"])["datasources"]
        by_uid = {s["uid"]: s for s in sources}
        used = set()
        for path in (ROOT / "dashboards" / "generated").glob("*.json"):
            used |= set(re.findall(r'"uid": "(sovtel-(?:clickhouse|prometheus))"', path.read_text()))
        assert used and used <= set(by_uid)
        assert by_uid["sovtel-clickhouse"]["type"] == "grafana-clickhouse-datasource"
        assert by_uid["sovtel-clickhouse"]["secureJsonData"]["password"] == "${SOVTEL_CLICKHOUSE_READER_PASSWORD}"


class TestMonitoring:
    def test_default_install_needs_no_crds(self):
        """With default values nothing of the Prometheus Operator's API is rendered."""
        assert not [d for d in rendered("default") if d["apiVersion"].startswith("monitoring.coreos.com")]

    def test_quality_alerts_in_the_chart_are_the_packaged_ones(self):
        """The chart's copy of the quality alert rules is identical to quality/alerts.yaml."""
        packaged = (ROOT / "quality" / "alerts.yaml").read_bytes()
        assert (CHART / "files" / "alerts" / "quality.yaml").read_bytes() == packaged

    def test_rules_cover_the_operational_risks(self):
        """The PrometheusRule alerts on queue growth, drops, audit failure, GPU XID/ECC and drift."""
        rule = named(rendered("air-gapped"), "PrometheusRule", RELEASE)
        alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
        assert {"SovtelQueueGrowing", "SovtelRecordsDropped", "SovtelAuditFailed", "SovtelGpuXidStorm",
                "SovtelGpuEccUncorrected", "SovtelModelDrift"} <= alerts
        monitor = named(rendered("air-gapped"), "ServiceMonitor", RELEASE)
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"

    def test_rules_use_only_metrics_the_code_exports(self):
        """Every metric an alert expression names is defined somewhere in sovtel's source."""
        rule = named(rendered("air-gapped"), "PrometheusRule", RELEASE)
        source = "\n".join(
            p.read_text() for pkg in ("sovtel", "collectors", "processors", "retention", "quality", "storage")
            for p in (ROOT / pkg).rglob("*.py")
        )
        names = set()
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                # Label lists (by/on/… and {matchers}) name labels, not metrics.
                expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)|\{[^}]*\}", "", r["expr"])
                names |= set(re.findall(r"\b((?:sovtel|hw|gpu)_[a-z0-9_]+)\b", expr))
        assert names
        missing = [n for n in sorted(names) if re.sub(r"_total$", "", n) not in source]
        assert not missing, missing

