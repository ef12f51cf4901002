"""Tests for processors.pii: content and attribute values are masked, JSON stays valid, tokens are
keyed and consistent, counts are filled, and a record that cannot be masked never passes raw."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pytest

from processors import pii
from processors.recognizers import person_ner
from processors.recognizers.scan import Finding, Scanner
from sovtel.component import ComponentContext
from sovtel.records import Batch, Signal, table_from_columns
from sovtel.telemetry import Telemetry
from tests.processors.conftest import fixed_key

EMAIL = "anna.schmidt@example.de"
IBAN = "DE89 3704 0044 0532 0130 00"


def ctx(name: str = "pii") -> ComponentContext:
    return ComponentContext(name=name, telemetry=Telemetry().component(name), resolve_secret=fixed_key)


def processor(masker: pii.Masker, **cfg: object) -> pii.PiiMasking:
    return pii.PiiMasking(ctx(), pii.Config(**cfg), masker=masker)  # type: ignore[arg-type]


def messages(text: str) -> str:
    return json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])


def span_batch() -> Batch:
    tool = {"iban": IBAN, "amount": 12.5, "card": 4111111111111111, "api_key": "opaque-value-1"}
    table = table_from_columns(
        Signal.TRACES,
        {
            "trace_id": ["a", "b", "c"],
            "input_messages": [messages(f"I am Anna Schmidt, mail {EMAIL}"), "", "{truncated json " + EMAIL],
            "tool_call_arguments": [json.dumps(tool), "", ""],
            "status_message": ["", "upstream 85.12.33.201 refused", ""],
            "span_attributes": [[("server.address", "85.12.33.201"), ("gen_ai.tool.name", "pay")], [], []],
            "event_attributes": [[[("exception.message", f"no mailbox {EMAIL}")]], [], [[("k", "v")]]],
            "resource_attributes": [[("service.name", "chat")]] * 3,
        },
    )
    return Batch(Signal.TRACES, table)


def all_text(batch: Batch) -> str:
    return json.dumps(batch.table.to_pylist(), default=str, ensure_ascii=False)


class TestMasking:
    def test_content_status_and_attributes_are_masked(self, masker: pii.Masker) -> None:
        """Every configured column and every attribute value loses its personal data."""
        out = processor(masker)(span_batch())
        text = all_text(out)
        for raw in (EMAIL, "Anna Schmidt", "85.12.33.201", "4111111111111111", "opaque-value-1", "3704 0044"):
            assert raw not in text
        assert out.table.column("span_attributes")[0].as_py()[1] == ("gen_ai.tool.name", "pay")
        assert out.table.column("resource_attributes").to_pylist() == [[("service.name", "chat")]] * 3

    def test_json_stays_valid_and_keeps_its_shape(self, masker: pii.Masker) -> None:
        """Masked JSON parses, keeps keys, numbers and untouched text exactly."""
        out = processor(masker)(span_batch())
        args = json.loads(out.table.column("tool_call_arguments")[0].as_py())
        assert set(args) == {"iban", "amount", "card", "api_key"}
        assert args["amount"] == 12.5
        assert args["iban"].startswith("<IBAN_CODE:") and args["card"].startswith("<CREDIT_CARD:")
        assert args["api_key"].startswith("<SECRET:")
        msgs = json.loads(out.table.column("input_messages")[0].as_py())
        assert msgs[0]["role"] == "user" and msgs[0]["parts"][0]["type"] == "text"

    def test_untouched_json_is_byte_identical(self, masker: pii.Masker) -> None:
        """A JSON value with nothing to mask comes back exactly as it was (formatting kept)."""
        value = '{ "a" : [1, 2.50e-3, "model llama-3.1-8b-instruct"] ,"b":null }'
        assert masker.mask_values([value])[0].text == value

    def test_only_changed_strings_are_rewritten(self, masker: pii.Masker) -> None:
        """Formatting around a masked string is kept (surgical rewrite, not re-serialisation)."""
        value = '{ "note" : "mail ' + EMAIL + '" , "n": 1.50e-3 }'
        out = masker.mask_values([value])[0].text
        assert out.startswith('{ "note" : "mail <EMAIL_ADDRESS:') and out.endswith('" , "n": 1.50e-3 }')

    def test_json_inside_a_string_is_masked_and_stays_json(self, masker: pii.Masker) -> None:
        """Tool arguments encoded as a JSON string inside messages are masked inside."""
        inner = json.dumps({"email": EMAIL})
        value = json.dumps([{"role": "assistant", "parts": [{"type": "tool_call", "arguments": inner}]}])
        out = json.loads(masker.mask_values([value])[0].text)
        args = json.loads(out[0]["parts"][0]["arguments"])
        assert args["email"].startswith("<EMAIL_ADDRESS:")

    def test_truncated_json_is_masked_as_text(self, masker: pii.Masker) -> None:
        """Content that looks like JSON but is cut off is still masked as plain text."""
        out = masker.mask_values(['{"content": "write to ' + EMAIL])[0]
        assert EMAIL not in out.text and out.error is None


class TestTokens:
    def test_same_value_same_token_different_values_differ(self, masker: pii.Masker) -> None:
        """Referential integrity: equal values share a token, different values do not."""
        a, b, c = (m.text for m in masker.mask_values([f"to {EMAIL}", f"cc {EMAIL.upper()}", "to bob@example.de"]))
        tok = a.split()[-1]
        assert tok.startswith("<EMAIL_ADDRESS:") and len(tok) == len("<EMAIL_ADDRESS:>") + 6
        assert b.split()[-1] == tok
        assert c.split()[-1] != tok

    def test_token_depends_on_the_key(self, masker: pii.Masker) -> None:
        """Another key gives other tokens: tokens cannot be recomputed without the key."""
        other = pii.Masker(masker.scanner, b"another-key-0123456789abcdef", 6)
        assert other.token("EMAIL_ADDRESS", EMAIL) != masker.token("EMAIL_ADDRESS", EMAIL)

    def test_masking_is_idempotent(self, masker: pii.Masker) -> None:
        """Masking masked output changes nothing (tokens are not re-detected)."""
        once = masker.mask_values([f"I am Anna Schmidt, {EMAIL}, {IBAN}"])[0].text
        assert masker.mask_values([once])[0].text == once


class TestCounts:
    def test_pii_count_and_entities_are_filled(self, masker: pii.Masker) -> None:
        """pii_count and pii_entities hold what was masked per record, over all columns."""
        out = processor(masker)(span_batch())
        counts = out.table.column("pii_count").to_pylist()
        entities = [dict(m) for m in out.table.column("pii_entities").to_pylist()]
        assert counts[1] == 1 and entities[1] == {"IP_ADDRESS": 1}
        assert entities[0]["EMAIL_ADDRESS"] == 2 and entities[0]["IBAN_CODE"] == 1 and entities[0]["PERSON"] == 1
        assert counts[0] == sum(entities[0].values())
        assert counts[2] == 1

    def test_logs_body_and_attributes(self, masker: pii.Masker) -> None:
        """Log bodies and log attribute values are masked and counted."""
        table = table_from_columns(
            Signal.LOGS, {"body": [f"login by {EMAIL}", "ok"], "log_attributes": [[("client", "85.12.33.201")], []]}
        )
        out = processor(masker)(Batch(Signal.LOGS, table))
        assert EMAIL not in all_text(out) and "85.12.33.201" not in all_text(out)
        assert out.table.column("pii_count").to_pylist() == [2, 0]


class TestFailClosed:
    def test_unmaskable_value_quarantines_its_record(self, masker: pii.Masker) -> None:
        """A value that cannot be masked empties its record's content and sets the strictest tier."""
        batch = span_batch()
        p = pii.PiiMasking(
            ctx(), pii.Config(max_text_chars=40), masker=pii.Masker(masker.scanner, b"k" * 32, 6, max_text_chars=40)
        )
        out = p(batch)
        assert out.rows == 3
        row0 = out.table.slice(0, 1).to_pylist()[0]
        assert row0["tier"] == "local" and row0["input_messages"] == "" and row0["tool_call_arguments"] == ""
        assert all(v == "" for _, v in row0["span_attributes"])
        assert out.table.column("tier")[1].as_py() == ""
        tel = p.ctx.telemetry.telemetry
        assert tel.total("sovtel_removed_values_total", reason="quarantined:pii_error") == 1

    def test_regex_timeout_makes_only_that_value_unmaskable(
        self, masker: pii.Masker, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A pattern timing out on one value withholds that value; the other values are masked as usual."""
        scanner = masker.scanner
        real = scanner._pattern_findings

        def patterns(text: str, context: str) -> list[Finding]:
            if "stall" in text:
                raise TimeoutError  # what regex raises when a pattern exceeds its timeout
            return real(text, context)

        monkeypatch.setattr(scanner, "_pattern_findings", patterns)
        stalled, fine = masker.mask_values(["stall here", f"mail {EMAIL}"])
        assert stalled.error is not None and stalled.text == ""
        assert fine.error is None and EMAIL not in fine.text

    def test_drop_mode_drops_and_counts(self, masker: pii.Masker) -> None:
        """With on_error=drop the record is removed and counted as dropped."""
        p = pii.PiiMasking(
            ctx(), pii.Config(on_error="drop"), masker=pii.Masker(masker.scanner, b"k" * 32, 6, max_text_chars=40)
        )
        out = p(span_batch())
        assert out.rows == 2
        assert p.ctx.telemetry.telemetry.total("sovtel_dropped_records_total", reason="pii_error") == 1

    def test_unexpected_error_quarantines_the_batch(self, masker: pii.Masker, monkeypatch: pytest.MonkeyPatch) -> None:
        """If the scanner itself fails, every record is quarantined, none passes raw."""
        p = processor(masker)

        def boom(*_a: object, **_k: object) -> None:
            raise RuntimeError("scanner broke")

        monkeypatch.setattr(p.masker, "mask_values", boom)
        out = p(span_batch())
        assert EMAIL not in all_text(out) and "85.12.33.201" not in all_text(out)
        assert out.table.column("tier").to_pylist() == ["local"] * 3

    def test_unresolved_key_fails_at_start(self) -> None:
        """A key reference that resolves to itself (no secret behind it) is refused at start-up."""
        with pytest.raises(ValueError, match="not resolved"):
            pii.build_masker(pii.Config(ner="off"), lambda ref: ref)

    def test_short_key_is_refused(self) -> None:
        """Keys shorter than 16 bytes are refused."""
        with pytest.raises(ValueError, match="16 bytes"):
            pii.build_masker(pii.Config(ner="off"), lambda ref: "short")


class TestConfig:
    @pytest.mark.parametrize(
        ("cfg", "problem"),
        [
            ({"entities": ["EMAIL_ADDRESS", "SHOE_SIZE"]}, "SHOE_SIZE"),
            ({"span_columns": ["trace_id"]}, "trace_id"),
            ({"log_columns": ["severity_text"]}, "severity_text"),
            ({"secret_keys": "(["}, "regular expression"),
        ],
    )
    def test_validate_reports_problems(self, cfg: dict[str, object], problem: str) -> None:
        """Unknown entity types, non-text columns and bad regexes are reported."""
        assert any(problem in p for p in pii.validate_config(pii.Config(**cfg)))  # type: ignore[arg-type]

    def test_defaults_are_valid(self) -> None:
        """The default configuration has no problems."""
        assert pii.validate_config(pii.Config()) == []

    def test_literal_key_is_rejected(self) -> None:
        """The key is a reference; a literal secret fails validation."""
        with pytest.raises(ValueError, match="reference"):
            pii.Config(key="hunter2hunter2hunter2")

    def test_entities_restrict_what_is_masked(self) -> None:
        """With entities=[EMAIL_ADDRESS], IPs are left alone."""
        m = pii.build_masker(pii.Config(entities=["EMAIL_ADDRESS"], ner="off"), fixed_key)
        out = m.mask_values([f"{EMAIL} from 85.12.33.201"])[0].text
        assert EMAIL not in out and "85.12.33.201" in out


class TestNerModel:
    def test_missing_model_logs_once_and_patterns_still_work(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Without the model package one clear warning is logged and pattern masking goes on."""
        monkeypatch.setattr(pii, "model_installed", lambda _m: False)
        with caplog.at_level(logging.WARNING, logger="sovtel.processors.pii"):
            m = pii.build_masker(pii.Config(), fixed_key)
        warnings = [r for r in caplog.records if "not installed" in r.getMessage()]
        assert len(warnings) == 1 and "sovtel[ner]" in warnings[0].getMessage()
        assert m.scanner.ner is None
        assert EMAIL not in m.mask_values([EMAIL])[0].text

    def test_required_model_missing_fails(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """ner=required refuses to start without the model."""
        monkeypatch.setattr(pii, "model_installed", lambda _m: False)
        with pytest.raises(RuntimeError, match="not installed"):
            pii.build_masker(pii.Config(ner="required"), fixed_key)

    def test_ner_runs_only_on_windows_with_candidates(self, masker: pii.Masker) -> None:
        """Texts without capitalised non-stopwords produce no NER windows; names produce short ones."""
        ner = masker.scanner.ner
        assert ner is not None
        assert ner.windows("model llama-3.1-8b-instruct on vllm-7d9f8b6c4-x2kqp took 0.73s") == []
        text = "please check the ticket from Barnaby Featherstone about pod vllm-7d9f8b6c4-x2kqp today"
        windows = ner.windows(text)
        assert len(windows) == 1 and "Barnaby Featherstone" in text[slice(*windows[0])]
        assert windows[0][1] - windows[0][0] < len(text) // 2

    def test_ner_finds_names_outside_the_gazetteer(self, masker: pii.Masker) -> None:
        """spaCy NER catches a name no pattern knows."""
        assert person_ner.model_installed()
        out = masker.mask_values(["Yesterday Barnaby Featherstone asked about the invoice."])[0].text
        assert "Featherstone" not in out


def test_row_counts_add_to_existing() -> None:
    """pii_count adds to a count already present (a second masking stage) and saturates at 65535."""
    m = pii.Masker(Scanner([]), b"k" * 32)
    p = pii.PiiMasking(ctx(), pii.Config(), masker=m)
    table = table_from_columns(Signal.TRACES, {"pii_count": [3, 65535]})
    counts = np.array([[0], [5]])
    p.entity_index = {"EMAIL_ADDRESS": 0}
    out = p._fill_counts(table, counts)
    assert out.column("pii_count").to_pylist() == [3, 65535]
    assert out.column("pii_entities").type == pa.map_(pa.string(), pa.uint16())
