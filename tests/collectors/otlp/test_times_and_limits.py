"""Record times a store would silently drop, and per-span caps: what the decoder keeps, changes and counts.

A time that is missing (0) or later than the receive time plus the allowed clock skew (2^64-1, the
year 2300, two hours ahead) is replaced by the receive time, the original kept in
``sovtel.original_time_unix_nano``; times within the skew or in the past are kept as sent (the
runtime judges them against each sink's retention). Attributes, events and event attributes beyond
the limits are dropped and counted, so one huge span costs what a capped one does.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from collectors.otlp import wire
from collectors.otlp.decode import decode_request, decode_traces
from collectors.otlp.limits import ORIGINAL_OBSERVED_TIME, ORIGINAL_TIME, RecordLimits
from collectors.otlp.otlp_json import decode_json_request
from collectors.otlp.span_columns import spans_from_wire
from sovtel.records import Signal
from tests.collectors.otlp.builders import add_attributes, genai_request, logs_request, metrics_request, otlp_json

NOW = time.time_ns()
HOUR = 3600 * 10**9
YEAR_2300 = int(datetime(2300, 1, 1, tzinfo=UTC).timestamp()) * 10**9

# (case, time as sent, replaced by the receive time?, counted reason)
TIMES: list[tuple[str, int, bool, str | None]] = [
    ("zero", 0, True, "timestamp_clamped:zero"),
    ("2^64-1", 2**64 - 1, True, "timestamp_clamped:future"),
    ("year 2300", YEAR_2300, True, "timestamp_clamped:future"),
    ("two hours ahead (beyond the skew)", NOW + 2 * HOUR, True, "timestamp_clamped:future"),
    ("ten minutes ahead (within the skew)", NOW + HOUR // 6, False, None),
    ("a day ago", NOW - 24 * HOUR, False, None),
    ("one nanosecond after the epoch (for the retention check)", 1, False, None),
]
IDS = [t[0] for t in TIMES]


def ns(ts: Any) -> int:
    return int(ts.value)


def attrs(row: dict[str, Any], column: str) -> dict[str, str]:
    return dict(row[column])


def span_request(sent: int) -> Any:
    """Two spans: the first with ``sent`` as its start (and a valid end), the second normal."""
    req = genai_request(2)
    sp = req.resource_spans[0].scope_spans[0].spans[0]
    sp.start_time_unix_nano = sent
    sp.end_time_unix_nano = NOW - HOUR
    return req


class TestSpanTimes:
    @pytest.mark.parametrize(("case", "sent", "replaced", "reason"), TIMES, ids=IDS)
    @pytest.mark.parametrize("encoding", ["protobuf", "protobuf exact", "json"])
    def test_span_start(self, case, sent, replaced, reason, encoding):
        """A start time that the store would drop becomes the receive time, the original kept; others stay."""
        req = span_request(sent)
        if encoding == "json":
            decoded = decode_json_request(Signal.TRACES, json.dumps(otlp_json(req)).encode(), received_ns=NOW)
        else:
            decoded = decode_request(Signal.TRACES, req.SerializeToString(), received_ns=NOW,
                                     exact=encoding == "protobuf exact")
        first, second = decoded.table.to_pylist()
        assert decoded.rejected == 0 and decoded.table.num_rows == 2
        if replaced:
            assert ns(first["timestamp"]) == NOW
            assert attrs(first, "span_attributes")[ORIGINAL_TIME] == str(sent)
            assert first["duration_ns"] == 0
            assert decoded.removed == {reason: 1}
        else:
            assert ns(first["timestamp"]) == sent
            assert ORIGINAL_TIME not in attrs(first, "span_attributes")
            assert decoded.removed == {}
        assert ORIGINAL_TIME not in attrs(second, "span_attributes")

    def test_an_end_far_ahead_gives_no_duration(self):
        """A valid start with an end beyond the skew keeps its start, with duration 0, counted."""
        req = genai_request(1)
        sp = req.resource_spans[0].scope_spans[0].spans[0]
        sp.start_time_unix_nano, sp.end_time_unix_nano = NOW - HOUR, 2**64 - 1
        decoded = decode_request(Signal.TRACES, req.SerializeToString(), received_ns=NOW)
        row = decoded.table.to_pylist()[0]
        assert (ns(row["timestamp"]), row["duration_ns"]) == (NOW - HOUR, 0)
        assert decoded.removed == {"end_time_ignored:future": 1}

    def test_the_allowed_skew_is_configurable(self):
        """With no skew allowed, a start one second ahead is replaced too."""
        req = span_request(NOW + 10**9)
        decoded = decode_request(Signal.TRACES, req.SerializeToString(), received_ns=NOW,
                                 limits=RecordLimits(max_clock_skew_s=0))
        assert ns(decoded.table.to_pylist()[0]["timestamp"]) == NOW

    def test_the_older_helpers_keep_times_as_sent(self):
        """decode_traces (the in-process SDK path) keeps times as sent, as before."""
        table = decode_traces(span_request(0).SerializeToString())
        assert ns(table.to_pylist()[0]["timestamp"]) == 0


class TestLogTimes:
    @pytest.mark.parametrize(("case", "sent", "replaced", "reason"), TIMES, ids=IDS)
    @pytest.mark.parametrize("encoding", ["protobuf", "json"])
    def test_log_time_with_an_observed_time(self, case, sent, replaced, reason, encoding):
        """A log time the store would drop falls back to the observed time (OTLP's rule), the original kept."""
        req = logs_request(1)
        rec = req.resource_logs[0].scope_logs[0].log_records[0]
        rec.time_unix_nano, rec.observed_time_unix_nano = sent, NOW - 5
        if encoding == "json":
            decoded = decode_json_request(Signal.LOGS, json.dumps(otlp_json(req)).encode(), received_ns=NOW)
        else:
            decoded = decode_request(Signal.LOGS, req.SerializeToString(), received_ns=NOW)
        row = decoded.table.to_pylist()[0]
        assert ns(row["observed_timestamp"]) == NOW - 5
        if replaced:
            assert ns(row["timestamp"]) == NOW - 5
            if sent:
                assert attrs(row, "log_attributes")[ORIGINAL_TIME] == str(sent)
                assert decoded.removed == {reason: 1}
            else:
                assert decoded.removed == {}  # a missing time with an observed time is OTLP's normal case
        else:
            assert ns(row["timestamp"]) == sent and decoded.removed == {}

    def test_both_times_missing_or_ahead(self):
        """No usable time and no usable observed time: both become the receive time, each counted."""
        req = logs_request(2)
        recs = req.resource_logs[0].scope_logs[0].log_records
        recs[0].time_unix_nano, recs[0].observed_time_unix_nano = 0, 0
        recs[1].time_unix_nano, recs[1].observed_time_unix_nano = 2**64 - 1, YEAR_2300
        decoded = decode_request(Signal.LOGS, req.SerializeToString(), received_ns=NOW)
        rows = decoded.table.to_pylist()
        assert [(ns(r["timestamp"]), ns(r["observed_timestamp"])) for r in rows] == [(NOW, NOW)] * 2
        assert attrs(rows[1], "log_attributes")[ORIGINAL_OBSERVED_TIME] == str(YEAR_2300)
        assert decoded.removed == {"timestamp_clamped:zero": 1, "timestamp_clamped:future": 2}


class TestMetricTimes:
    @pytest.mark.parametrize(("case", "sent", "replaced", "reason"), TIMES, ids=IDS)
    @pytest.mark.parametrize("encoding", ["protobuf", "json"])
    def test_data_point_time(self, case, sent, replaced, reason, encoding):
        """A data point time the store would drop becomes the receive time, the original kept."""
        req = metrics_request(2)
        point = req.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0]
        point.time_unix_nano, point.start_time_unix_nano = sent, NOW - HOUR
        if encoding == "json":
            decoded = decode_json_request(Signal.METRICS, json.dumps(otlp_json(req)).encode(), received_ns=NOW)
        else:
            decoded = decode_request(Signal.METRICS, req.SerializeToString(), received_ns=NOW)
        row = decoded.table.to_pylist()[0]
        if replaced:
            assert ns(row["timestamp"]) == NOW
            assert attrs(row, "attributes")[ORIGINAL_TIME] == str(sent)
            assert decoded.removed == {reason: 1}
        else:
            assert ns(row["timestamp"]) == sent and decoded.removed == {}
        assert ns(row["start_timestamp"]) <= ns(row["timestamp"])


# ----------------------------------------------------------------------------- per-span caps


def huge_span(events: int = 0, attributes: int = 0, event_attributes: int = 0) -> Any:
    req = genai_request(2)
    sp = req.resource_spans[0].scope_spans[0].spans[1]
    add_attributes(sp.attributes, {f"k{i}": i for i in range(attributes)})
    for i in range(events):
        ev = sp.events.add(name=f"e{i}")
        add_attributes(ev.attributes, {f"a{j}": j for j in range(event_attributes)})
    return req


@pytest.mark.parametrize("encoding", ["protobuf", "protobuf exact", "json"])
class TestCaps:
    def decode(self, req: Any, encoding: str, limits: RecordLimits | None = None) -> Any:
        kw: dict[str, Any] = {"received_ns": NOW, "limits": limits or RecordLimits()}
        if encoding == "json":
            return decode_json_request(Signal.TRACES, json.dumps(otlp_json(req)).encode(), **kw)
        return decode_request(Signal.TRACES, req.SerializeToString(), exact=encoding == "protobuf exact", **kw)

    def test_events_beyond_the_cap_are_dropped_and_counted(self, encoding):
        """300 events on a span: the first 128 are kept in order, 172 counted as removed."""
        decoded = self.decode(huge_span(events=300), encoding)
        assert decoded.table["event_names"].to_pylist()[1] == [f"e{i}" for i in range(128)]
        assert decoded.removed == {"events_over_limit": 172}

    def test_attributes_beyond_the_cap_are_dropped_and_counted(self, encoding):
        """200 extra attributes on a span: 128 attributes are kept in all, the rest counted."""
        decoded = self.decode(huge_span(attributes=200), encoding)
        row = decoded.table.to_pylist()[1]
        # The span's own 7 GenAI attributes come first; 121 of the 200 extra fill the 128.
        assert len(row["span_attributes"]) == 1 + 121 and row["input_tokens"] == 11
        assert decoded.removed == {"attributes_over_limit": 7 + 200 - 128}

    def test_event_attributes_beyond_the_cap(self, encoding):
        """Each event keeps at most the configured number of attributes."""
        limits = RecordLimits(max_attributes_per_event=3, max_events_per_span=2)
        decoded = self.decode(huge_span(events=4, event_attributes=5), encoding, limits)
        assert [len(m) for m in decoded.table["event_attributes"].to_pylist()[1]] == [3, 3]
        assert decoded.removed == {"events_over_limit": 2, "event_attributes_over_limit": 4}

    def test_a_span_within_the_caps_is_untouched(self, encoding):
        """A span at the limits exactly loses nothing and counts nothing."""
        decoded = self.decode(huge_span(events=128, event_attributes=2), encoding)
        assert len(decoded.table["event_names"].to_pylist()[1]) == 128 and decoded.removed == {}


def test_log_record_attributes_are_capped():
    """A log record keeps at most max_attributes_per_record attributes."""
    req = logs_request(1)
    add_attributes(req.resource_logs[0].scope_logs[0].log_records[0].attributes, {f"k{i}": i for i in range(300)})
    decoded = decode_request(Signal.LOGS, req.SerializeToString(), received_ns=NOW)
    # user.id (the first) became the user_id column; n and 126 of the 300 fill the map.
    assert len(decoded.table["log_attributes"][0]) == 127 and decoded.table["user_id"][0].as_py() == "u0"
    assert decoded.removed == {"attributes_over_limit": 302 - 128}


def test_a_span_with_thousands_of_fields_leaves_the_lock_step_scan():
    """One span with thousands of fields is handed to the exact path (protobuf in C), with the same table."""
    payload = huge_span(events=3000).SerializeToString()
    with pytest.raises(wire.IrregularError, match="more than"):
        spans_from_wire(payload)
    fast = decode_request(Signal.TRACES, payload, received_ns=NOW)
    exact = decode_request(Signal.TRACES, payload, received_ns=NOW, exact=True)
    assert fast.table.equals(exact.table) and fast.removed == exact.removed == {"events_over_limit": 3000 - 128}


@pytest.mark.parametrize(
    "settings",
    [{"max_events_per_span": -1}, {"max_clock_skew_s": -5}, {"max_attributes_per_record": 0}, {"max_links": 3}],
)
def test_limits_are_validated(settings):
    """Negative or zero limits and unknown keys are configuration errors."""
    with pytest.raises(ValidationError):
        RecordLimits.model_validate(settings)
