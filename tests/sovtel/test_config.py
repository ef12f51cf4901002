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
