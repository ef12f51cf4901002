"""Tests for sovtel.config: validation in the Collector's shape, every error with its YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovtel.config import ConfigError, SecretError, load_config, parse_config, resolve_secret
from sovtel.records import Signal

GOOD = """\
receivers:
  otlp: {}
processors:
  minimise:
    purpose: operations
exporters:
  clickhouse:
    path: /tmp/store
service:
  telemetry:
    metrics:
      enabled: false
  pipelines:
    traces:
      receivers: [otlp]
      processors: [minimise]
      exporters: [clickhouse]
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sovtel.yaml"
    p.write_text(text)
    return p


class TestLoadConfig:
    def test_valid_file_loads_with_components(self, tmp_path: Path) -> None:
        """A well-formed file yields its components keyed by (section, name)."""
        cfg = load_config(write(tmp_path, GOOD))
        expected = {("receivers", "otlp"), ("processors", "minimise"), ("exporters", "clickhouse")}
        assert set(cfg.components) == expected
        assert cfg.pipeline_signal("traces") is Signal.TRACES

    def test_shipped_example_is_valid(self) -> None:
        """The example configuration in the repository validates."""
        root = Path(__file__).resolve().parents[2]
        load_config(root / "examples" / "single-node.yaml")

    def test_every_error_is_reported_with_path_and_line(self, tmp_path: Path) -> None:
        """Several independent mistakes are all reported at once, each with its line and YAML path."""
        bad = GOOD.replace("purpose: operations", "purpose: operations\n    bogus: 1").replace(
            "exporters: [clickhouse]", "exporters: [nowhere]"
        ).replace("receivers:\n  otlp: {}", "receivers:\n  otlp: {}\n  kafka: {}")
        with pytest.raises(ConfigError) as exc:
            load_config(write(tmp_path, bad))
        text = "\n".join(exc.value.errors)
        assert "processors.minimise.bogus: unknown key" in text
        assert "line 7: processors.minimise.bogus" in text
        assert "unknown receiver type 'kafka'" in text
        assert "'nowhere' is not defined in exporters" in text
        assert len(exc.value.errors) == 3

    @pytest.mark.parametrize(
        ("text", "needle"),
        [
            ("- a\n- b\n", "must be a mapping"),
            ("receivers: {}\n", "service: Field required"),
            (
                "service:\n  pipelines:\n    spans:\n      receivers: [x]\n      exporters: [y]\n",
                "pipeline name must start",
            ),
            ("a: [unclosed\n", "not valid YAML"),
        ],
    )
    def test_malformed_files_are_rejected_clearly(self, tmp_path: Path, text: str, needle: str) -> None:
        """Structural problems produce a ConfigError whose message says what is wrong."""
        with pytest.raises(ConfigError) as exc:
            load_config(write(tmp_path, text))
        assert needle in str(exc.value)

    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A file that cannot be read is reported as a ConfigError, not a traceback."""
        with pytest.raises(ConfigError, match="cannot read file"):
            load_config(tmp_path / "absent.yaml")

    def test_invalid_component_type_name_is_rejected(self) -> None:
        """A component type that is not a plain identifier is never imported."""
        data = {"receivers": {"../etc": {}}, "exporters": {"clickhouse": {"path": "x"}},
                "service": {"pipelines": {"traces": {"receivers": ["../etc"], "exporters": ["clickhouse"]}}}}
        with pytest.raises(ConfigError, match="not a valid name"):
            parse_config(data)


class TestSecrets:
    @pytest.mark.parametrize("ref", ["env:CH_PASSWORD", "file:/run/secrets/pepper"])
    def test_references_are_accepted(self, ref: str) -> None:
        """env: and file: references pass the SecretRef check."""
        from pydantic import TypeAdapter

        from sovtel.config import SecretRef

        assert TypeAdapter(SecretRef).validate_python(ref) == ref

    @pytest.mark.parametrize("literal", ["hunter2", "env:", "ENV:X", "password=abc"])
    def test_literal_secrets_are_rejected(self, literal: str) -> None:
        """A literal secret value fails validation with a message saying to use a reference."""
        from pydantic import TypeAdapter, ValidationError

        from sovtel.config import SecretRef

        with pytest.raises(ValidationError, match="by reference only"):
            TypeAdapter(SecretRef).validate_python(literal)

    def test_env_and_file_references_resolve(self, tmp_path: Path) -> None:
        """resolve_secret reads environment variables and files (stripped)."""
        f = tmp_path / "key"
        f.write_text("s3cret\n")
        assert resolve_secret("env:K", {"K": "v"}) == "v"
        assert resolve_secret(f"file:{f}") == "s3cret"

    def test_unresolvable_reference_says_which(self, tmp_path: Path) -> None:
        """A missing variable or file raises SecretError naming the reference, never the value."""
        with pytest.raises(SecretError, match="env:NOPE"):
            resolve_secret("env:NOPE", {})
        with pytest.raises(SecretError, match="cannot read file"):
            resolve_secret(f"file:{tmp_path / 'absent'}")


def errors_of(tmp_path: Path, text: str) -> list[str]:
    """The problems load_config reports for ``text`` (none if it is valid)."""
    try:
        load_config(write(tmp_path, text))
    except ConfigError as exc:
        return exc.errors
    return []


US_SINK = """\
receivers:
  otlp: {}
processors:
  minimise: {}
exporters:
  clickhouse/us:
    host: ch.us.example
    jurisdiction: us
    tiers: [local, sovereign]
service:
  country: de
  pipelines:
    traces:
      receivers: [otlp]
      processors: [minimise]
      exporters: [clickhouse/us]
      tiers: [local, sovereign]
"""


class TestJurisdictions:
    def test_a_us_sink_permitting_local_and_sovereign_fails_with_path_and_line(self, tmp_path: Path) -> None:
        """The issue's case: jurisdiction us permitting local and sovereign fails, once per tier, at its line."""
        errors = errors_of(tmp_path, US_SINK)
        assert len(errors) == 2, errors
        assert all(e.startswith("line 8: exporters.clickhouse/us.jurisdiction: jurisdiction 'US'") for e in errors)
        assert "operator's country (DE, service.country), where tier 'local'" in errors[0]
        assert "outside EU, EEA (service.sovereign_jurisdictions), where tier 'sovereign'" in errors[1]

    def test_codes_are_case_insensitive_and_normalised(self, tmp_path: Path) -> None:
        """A German store in lower case fits a lower-case operator country; the service keeps upper case."""
        cfg = load_config(write(tmp_path, US_SINK.replace("jurisdiction: us", "jurisdiction: de")))
        assert cfg.service.country == "DE" and cfg.service.sovereign_jurisdictions == ["EU", "EEA"]

    @pytest.mark.parametrize(
        ("old", "new", "needle"),
        [
            ("jurisdiction: us", "jurisdiction: global", "line 8: exporters.clickhouse/us.jurisdiction: unknown"),
            ("country: de", "country: eu", "line 11: service.country: Value error, unknown country 'eu'"),
            ("country: de", "country: de\n  sovereign_jurisdictions: [europe]",
             "line 12: service.sovereign_jurisdictions: Value error, unknown jurisdiction 'europe'"),
            ("  country: de\n", "", "service.country is not set"),
            ("    jurisdiction: us\n", "", "line 6: exporters.clickhouse/us.jurisdiction: a server sink permitting"),
        ],
    )
    def test_free_text_or_missing_codes_fail_with_path_and_line(self, tmp_path: Path, old: str, new: str,
                                                                 needle: str) -> None:
        """Unknown codes, a group as the operator's country and undeclared places are errors at their line."""
        errors = errors_of(tmp_path, US_SINK.replace(old, new))
        assert any(needle in e for e in errors), errors

    def test_an_explicit_sovereign_list_admits_a_country_outside_the_eu(self, tmp_path: Path) -> None:
        """sovereign_jurisdictions: [EEA, CH] lets a Swiss store hold sovereign rows, still not local ones."""
        text = US_SINK.replace("jurisdiction: us", "jurisdiction: ch").replace(
            "country: de", "country: de\n  sovereign_jurisdictions: [eea, ch]")
        errors = errors_of(tmp_path, text)
        assert len(errors) == 1 and "where tier 'local' must stay" in errors[0], errors


PIPELINE = """\
receivers:
  otlp: {}
  nvml: {}
processors:
  minimise: {keep_content: KEEP}
  pii: {key: env:PII_KEY}
exporters:
  clickhouse: {path: /tmp/store}
service:
  pipelines:
    SIGNAL:
      receivers: [otlp]
      processors: PROCESSORS
      exporters: [clickhouse]
"""


def pipeline(signal: str = "traces", processors: str = "[]", keep: str = "false", extra: str = "") -> str:
    """A one-pipeline configuration; ``extra`` lines are added to the pipeline."""
    text = PIPELINE.replace("SIGNAL", signal).replace("PROCESSORS", processors).replace("KEEP", keep)
    return text + "".join(f"      {line}\n" for line in extra.splitlines())


class TestMinimisation:
    @pytest.mark.parametrize("signal", ["traces", "logs", "logs/tenant-a"])
    def test_a_pipeline_without_minimise_fails_at_its_processors(self, tmp_path: Path, signal: str) -> None:
        """processors: [] on a traces or logs pipeline is an error at the processors line, naming the opt-out."""
        errors = errors_of(tmp_path, pipeline(signal))
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"line 13: service.pipelines.{signal}.processors: a {signal.split('/', 1)[0]} "
                                    "pipeline must run minimise")
        assert "unminimised" in errors[0]

    def test_kept_content_needs_pii(self, tmp_path: Path) -> None:
        """A minimise that keeps content without pii in the pipeline is an error naming pii."""
        errors = errors_of(tmp_path, pipeline(processors="[minimise]", keep="true"))
        assert len(errors) == 1 and "must run pii ('minimise' keeps content" in errors[0], errors

    @pytest.mark.parametrize(("processors", "keep"), [("[minimise]", "false"), ("[minimise, pii]", "true"),
                                                      ("[pii, minimise]", "true")])
    def test_minimising_pipelines_pass(self, tmp_path: Path, processors: str, keep: str) -> None:
        """minimise (with pii when it keeps content) satisfies the rule; no reason is recorded."""
        cfg = load_config(write(tmp_path, pipeline(processors=processors, keep=keep)))
        assert cfg.unminimised() == {}

    def test_an_opt_out_with_a_reason_passes_and_is_kept(self, tmp_path: Path) -> None:
        """unminimised: <reason> lets a pipeline run without minimise; the reason is kept for the ledger."""
        cfg = load_config(write(tmp_path, pipeline(extra="unminimised: '  load test of the delivery path '")))
        assert cfg.unminimised() == {"traces": "load test of the delivery path"}

    @pytest.mark.parametrize(
        ("text", "needle"),
        [
            (pipeline(extra="unminimised: ''"), "line 15: service.pipelines.traces.unminimised: Value error, give "
                                                "the reason"),
            (pipeline(processors="[minimise]", extra="unminimised: because"),
             "line 15: service.pipelines.traces.unminimised: the pipeline minimises"),
            (pipeline("metrics", extra="unminimised: because"),
             "line 15: service.pipelines.metrics.unminimised: only traces and logs pipelines minimise"),
        ],
    )
    def test_an_opt_out_must_be_a_reason_where_one_is_needed(self, tmp_path: Path, text: str, needle: str) -> None:
        """A blank reason, an opt-out from nothing and an opt-out on a metrics pipeline are errors."""
        errors = errors_of(tmp_path, text)
        assert any(e.startswith(needle) for e in errors), errors

    def test_metrics_pipelines_need_no_minimise(self, tmp_path: Path) -> None:
        """A metrics pipeline without processors is valid (its rows carry no message or content)."""
        assert errors_of(tmp_path, pipeline("metrics")) == []


class TestSimulation:
    TEXT = pipeline(processors="[minimise]").replace("  nvml: {}", "  nvml:\n    simulated: true")

    def test_a_file_with_a_simulated_receiver_is_refused_at_its_line(self, tmp_path: Path) -> None:
        """sovtel run and config validate read files: simulated: true fails with path and line."""
        errors = errors_of(tmp_path, self.TEXT)
        assert len(errors) == 1, errors
        assert errors[0].startswith("line 4: receivers.nvml.simulated: a simulated receiver is for the demo and "
                                    "tests only")

    def test_in_code_configurations_may_simulate_unless_told_not_to(self) -> None:
        """The demo and tests build configurations in code: allowed by default, refused on request."""
        import yaml

        data = yaml.safe_load(self.TEXT)
        assert parse_config(data).component("receivers", "nvml").config.simulated  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match=r"line 4: receivers\.nvml\.simulated"):
            parse_config(data, text=self.TEXT, allow_simulated=False)

    def test_the_demo_configuration_validates(self, tmp_path: Path) -> None:
        """The demo's own configuration (simulated GPUs, minimise and pii) passes as it is."""
        from app.demo import demo_config

        cfg = parse_config(demo_config(tmp_path / "store"), source="demo")
        assert cfg.unminimised() == {}
