"""Tests for sovtel.yamlconfig: one loader for every configuration file, with lines, paths and every error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from quality.drift import DriftConfig, DriftConfigError, load_drift_config
from retention.config import JobsConfigError, load_jobs_config
from sovtel.config import load_config
from sovtel.yamlconfig import (
    ConfigError,
    Document,
    SecretRef,
    load_yaml_model,
    resolve_secret,
    validate_document,
    yaml_path_text,
)
from storage.serve.config import ServeConfigError, load_serve_config

COLLECTOR = """\
receivers:
  otlp: {}
exporters:
  clickhouse:
    path: /tmp/store
    colour: blue
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [clickhouse]
"""
SERVE = """\
users:
  - name: grafana
    role: reader
    token: env:GRAFANA_TOKEN
    colour: blue
"""
JOBS = """\
retention:
  personal: {days: 45}
audit:
  lookback_hours: 24
  colour: blue
"""
DRIFT = """\
alpha: 0.001
psi_threshold: 0.2
colour: blue
"""


class Settings(BaseModel):
    """A small model standing in for any configuration section."""

    model_config = ConfigDict(extra="forbid")

    name: str
    size: int = Field(default=1, ge=1)
    secret: SecretRef | None = None
    tags: list[str] = Field(default_factory=list)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


class TestLineNumbers:
    @pytest.mark.parametrize(
        ("load", "text", "expected", "error_type"),
        [
            (load_config, COLLECTOR, "line 6: exporters.clickhouse.colour: unknown key", ConfigError),
            (load_serve_config, SERVE, "line 5: users[0].colour: unknown key", ServeConfigError),
            (load_jobs_config, JOBS, "line 5: audit.colour: unknown key", JobsConfigError),
            (load_drift_config, DRIFT, "line 3: colour: unknown key", DriftConfigError),
        ],
        ids=["collector", "serve", "jobs", "drift"],
    )
    def test_bad_key_is_reported_with_its_line_in_every_kind_of_file(
        self, tmp_path: Path, load: Callable[[Path], Any], text: str, expected: str, error_type: type[ConfigError]
    ) -> None:
        """A misspelt key in any of the four configuration files names its line and YAML path."""
        path = write(tmp_path, text)
        with pytest.raises(error_type) as info:
            load(path)
        assert isinstance(info.value, ConfigError)
        assert info.value.source == str(path)
        assert any(e.startswith(expected) for e in info.value.errors), info.value.errors
        assert expected in str(info.value)

    def test_invalid_yaml_names_the_line(self, tmp_path: Path) -> None:
        """A syntax error is reported with the line the parser stopped at."""
        with pytest.raises(ConfigError, match=r"line 3: not valid YAML"):
            load_yaml_model(write(tmp_path, "name: a\ntags: [b]\n  size: 2\n"), Settings)

    def test_nested_sequence_paths_are_written_with_indexes(self) -> None:
        """A path mixes keys and indexes the way an operator reads the file."""
        assert yaml_path_text(("users", 2, "token")) == "users[2].token"
        assert yaml_path_text(()) == "<top>"

    def test_a_value_without_its_own_line_takes_its_parents(self) -> None:
        """A missing key is reported at the line of the section that should hold it."""
        document = Document.parse("top:\n  inner:\n    a: 1\n", "f.yaml")
        assert document.where(("top", "inner", "missing")) == "line 2: top.inner.missing"

    def test_self_referencing_alias_does_not_hang(self) -> None:
        """An anchor that contains an alias of itself is indexed once, not forever."""
        document = Document.parse("a: &x\n  - *x\n", "f.yaml")
        assert document.lines[("a",)] == 1


class TestEveryErrorAtOnce:
    def test_all_problems_come_back_in_one_error(self, tmp_path: Path) -> None:
        """A missing field, an out-of-range value, an unknown key and a literal secret are reported together."""
        text = "size: 0\nsecret: hunter2\ncolour: blue\ntags: [a, 1.5]\n"
        with pytest.raises(ConfigError) as info:
            load_yaml_model(write(tmp_path, text), Settings)
        errors = info.value.errors
        assert len(errors) == 5, errors
        assert any(e.startswith("line 1: name: Field required") for e in errors)
        assert any(e.startswith("line 1: size: ") for e in errors)
        assert any(e.startswith("line 2: secret: ") and "by reference only" in e for e in errors)
        assert any(e.startswith("line 3: colour: unknown key") for e in errors)
        assert any(e.startswith("line 4: tags[1]: ") for e in errors)

    def test_every_problem_of_the_serve_file_is_listed(self, tmp_path: Path) -> None:
        """Several mistakes in the users file each get their own line."""
        text = "users:\n  - {name: a, role: root, token: env:X}\nlimits:\n  max_sessions: 0\nextra: 1\n"
        with pytest.raises(ServeConfigError) as info:
            load_serve_config(write(tmp_path, text))
        assert [e.split(":", 1)[0] for e in info.value.errors] == ["line 2", "line 4", "line 5"]

    def test_checks_report_against_the_path_they_name(self, tmp_path: Path) -> None:
        """Problems found after validation are located like the model's own."""
        def no_x(settings: Settings) -> list[tuple[tuple[str | int, ...], str]]:
            return [(("tags", i), "x is not allowed") for i, t in enumerate(settings.tags) if t == "x"]

        with pytest.raises(ConfigError) as info:
            load_yaml_model(write(tmp_path, "name: a\ntags:\n  - y\n  - x\n"), Settings, checks=[no_x])
        assert info.value.errors == ["line 4: tags[1]: x is not allowed"]

    def test_multi_line_message_lists_each_problem(self) -> None:
        """The collector's error message counts the problems and puts each on its own line."""
        error = ConfigError("f.yaml", ["line 1: a: bad", "line 2: b: bad"])
        assert str(error) == "f.yaml: 2 error(s)\n  line 1: a: bad\n  line 2: b: bad"

    def test_older_error_types_are_config_errors_with_one_line_messages(self) -> None:
        """Callers catching the serve, jobs or drift error keep working; their message stays on one line."""
        for error_type in (ServeConfigError, JobsConfigError, DriftConfigError):
            error = error_type("f.yaml", ["a: bad", "b: bad"])
            assert isinstance(error, ConfigError)
            assert str(error) == "f.yaml: a: bad; b: bad"
        assert issubclass(DriftConfigError, ValueError)


class TestDocuments:
    def test_empty_file_gives_the_defaults(self, tmp_path: Path) -> None:
        """An empty drift file is the default configuration."""
        assert load_drift_config(write(tmp_path, "")) == DriftConfig()

    def test_non_mapping_is_refused(self) -> None:
        """A document that is not a mapping is one error at the top."""
        with pytest.raises(ConfigError, match="must be a mapping"):
            validate_document(Document("f.yaml", [1, 2]), Settings)

    def test_unreadable_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A missing file is reported as the loader's error, not a traceback."""
        with pytest.raises(JobsConfigError, match="cannot read file"):
            load_jobs_config(tmp_path / "absent.yaml")

    def test_data_without_text_is_located_by_path_only(self) -> None:
        """Validating already-loaded data reports paths without line numbers."""
        with pytest.raises(ConfigError) as info:
            validate_document(Document("<data>", {"name": "a", "colour": 1}), Settings)
        assert info.value.errors == ["colour: unknown key (not part of this section)"]


class TestSecretsByReference:
    @pytest.mark.parametrize("text", ["name: a\nsecret: env:SETTINGS_KEY\n", "name: a\nsecret: file:/run/key\n"])
    def test_references_are_kept_as_written(self, tmp_path: Path, text: str) -> None:
        """A secret given as env: or file: loads as the reference, not the value behind it."""
        settings = load_yaml_model(write(tmp_path, text), Settings)
        assert settings.secret is not None and settings.secret.startswith(("env:", "file:"))

    def test_literal_secret_is_refused_with_its_line(self, tmp_path: Path) -> None:
        """A literal secret in a jobs file is an error at its line, and the error does not echo it."""
        text = "ledger:\n  checkpoint_dir: /srv/checkpoints\n  signing_key: s3cr3t-key-material\n"
        with pytest.raises(JobsConfigError) as info:
            load_jobs_config(write(tmp_path, text))
        assert info.value.errors[0].startswith("line 3: ledger.signing_key: ")
        assert "by reference only" in info.value.errors[0]
        assert "s3cr3t" not in str(info.value)

    def test_references_resolve_through_the_resolver(self, tmp_path: Path) -> None:
        """The loaded reference resolves to the secret from the environment or a file."""
        key = write(tmp_path, "from-file\n", "key")
        settings = load_yaml_model(write(tmp_path, f"name: a\nsecret: file:{key}\n"), Settings)
        assert settings.secret is not None
        assert resolve_secret(settings.secret) == "from-file"
        assert resolve_secret("env:SETTINGS_KEY", {"SETTINGS_KEY": "from-env"}) == "from-env"
