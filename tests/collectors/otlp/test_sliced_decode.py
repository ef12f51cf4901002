"""Decoding a request in slices: the same table and report as decoding it whole, with bounded memory.

The columnar path finds the records of a request without parsing it (``wire.layout``) and decodes
them in slices of about ``SLICE_BYTES``, so the transient memory of decoding is bounded by the
slice, not by the request. These tests hold the slices to the whole-request result (rows, rejected
records and their places, values removed) and check the memory bound in a fresh process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from collectors.otlp import wire
from collectors.otlp.decode import DecodeError, decode_request
from collectors.otlp.limits import DEFAULT_LIMITS, Clock, RecordLimits
from collectors.otlp.log_columns import log_table_from_wire
from collectors.otlp.span_columns import span_table_from_wire
from collectors.otlp.tables import Decoded, slices
from sovtel.records import Signal
from tests.collectors.otlp import wireformat as w
from tests.collectors.otlp.builders import add_attributes

ROOT = Path(__file__).resolve().parents[3]
LIMITS = RecordLimits(max_attributes_per_record=4, max_events_per_span=2, max_attributes_per_event=1)
SLICE_SIZES = (1, 150, 700, 4096)


def _mixed_traces(now: int) -> ExportTraceServiceRequest:
    """Three resources (one without spans), several scopes (one empty), and spans that are rejected (bad
    ids), truncated (attributes, events over the limits) or have their times replaced, spread so that
    slices of any size cut through resources and scopes."""
    req = ExportTraceServiceRequest()
    k = 0
    for r in range(3):
        rs = req.resource_spans.add()
        add_attributes(rs.resource.attributes, {"service.name": f"svc-{r}", "sovtel.tenant": f"t{r}"})
        if r == 1:
            continue  # a resource without spans
        for s in range(3):
            ss = rs.scope_spans.add()
            ss.scope.name = f"scope-{s}"
            if s == 1:
                continue  # an empty scope
            for _ in range(7):
                sp = ss.spans.add()
                sp.trace_id = k.to_bytes(16, "big") if k % 5 != 3 else b"\x01\x02\x03"
                sp.span_id = (k + 1).to_bytes(8, "big")
                sp.name = f"chat {k}"
                sp.kind = 3
                sp.start_time_unix_nano = 0 if k % 6 == 1 else now - 10**9 - k
                sp.end_time_unix_nano = now - k
                add_attributes(sp.attributes, {f"a{i}": f"v{k}-{i}" for i in range(k % 7)})
                for e in range(k % 4):
                    ev = sp.events.add()
                    ev.name = f"event-{e}"
                    add_attributes(ev.attributes, {"x": e, "y": "z"})
                k += 1
    return req


def _mixed_logs(now: int) -> ExportLogsServiceRequest:
    """Two resources with records that are rejected (bad trace ids), truncated or re-timed."""
    req = ExportLogsServiceRequest()
    k = 0
    for r in range(2):
        rl = req.resource_logs.add()
        add_attributes(rl.resource.attributes, {"service.name": f"svc-{r}"})
        for _s in range(2):
            sl = rl.scope_logs.add()
            for _ in range(9):
                rec = sl.log_records.add()
                rec.time_unix_nano = 0 if k % 4 == 2 else now - k
                rec.severity_number = 9
                rec.body.string_value = f"log {k} " + "x" * (k * 13)
                if k % 7 == 5:
                    rec.trace_id = b"\x09" * 5
                add_attributes(rec.attributes, {f"k{i}": i for i in range(k % 6)})
                k += 1
    return req


def _same(a: Decoded, b: Decoded) -> None:
    assert a.table.equals(b.table)
    assert (a.rejected, a.reasons, dict(a.rejected_by), dict(a.removed)) == (
        b.rejected, b.reasons, dict(b.rejected_by), dict(b.removed))


def test_trace_slices_yield_the_whole_request_table_and_report() -> None:
    """Spans decoded in slices of any size give the table, rejections (with places) and removals of the whole."""
    now = time.time_ns()
    payload = _mixed_traces(now).SerializeToString()
    clock = Clock.at(now, LIMITS)
    whole = span_table_from_wire(payload, LIMITS, clock, slice_bytes=None)
    assert whole.rejected and whole.removed and whole.table.num_rows > 20
    # Places count within each scope block, whichever slice a span fell into.
    assert whole.reasons[-1] == "resourceSpans[2].scopeSpans[2].spans[2].traceId: must be 16 bytes, got 3"
    for size in SLICE_SIZES:
        _same(span_table_from_wire(payload, LIMITS, clock, slice_bytes=size), whole)
    # And the exact path (protobuf objects) agrees with both.
    exact = decode_request(Signal.TRACES, payload, limits=LIMITS, received_ns=now, exact=True)
    _same(decode_request(Signal.TRACES, payload, limits=LIMITS, received_ns=now), exact)


def test_log_slices_yield_the_whole_request_table_and_report() -> None:
    """Log records decoded in slices give the table and report of the whole request, and of the exact path."""
    now = time.time_ns()
    payload = _mixed_logs(now).SerializeToString()
    clock = Clock.at(now, DEFAULT_LIMITS)
    whole = log_table_from_wire(payload, LIMITS, now, clock, slice_bytes=None)
    assert whole.rejected and whole.removed
    for size in SLICE_SIZES:
        _same(log_table_from_wire(payload, LIMITS, now, clock, slice_bytes=size), whole)
    exact = decode_request(Signal.LOGS, payload, limits=LIMITS, received_ns=now, exact=True)
    _same(decode_request(Signal.LOGS, payload, limits=LIMITS, received_ns=now), exact)


def test_slices_hold_at_most_their_size_of_records() -> None:
    """Each slice's records add up to at most the slice size (a larger record alone), in request order."""
    payload = _mixed_traces(time.time_ns()).SerializeToString()
    layout = wire.layout(payload, Resource, InstrumentationScope)
    sizes = (layout.end - layout.start).tolist()
    for limit in SLICE_SIZES:
        seen = 0
        for part in slices(payload, layout, limit):
            lengths = (part.buffer.end - part.buffer.start).tolist()
            assert lengths == sizes[seen : seen + len(lengths)]
            assert sum(lengths) <= limit or len(lengths) == 1
            seen += len(lengths)
        assert seen == len(sizes)


def test_empty_requests_give_empty_tables() -> None:
    """A request without records (or with empty resources and scopes) is an empty table, sliced or not."""
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add()
    for payload in (b"", req.SerializeToString()):
        decoded = span_table_from_wire(payload, slice_bytes=1)
        assert decoded.table.num_rows == 0 and not decoded.rejected


@pytest.mark.parametrize(
    "payload",
    [
        # The resource sent twice in one resource block: protobuf merges the two.
        w.field(1, w.LEN, w.field(1, w.LEN, w.field(1, w.LEN, w.key_value("service.name", w.string_value("a"))))
                + w.field(1, w.LEN, w.field(1, w.LEN, w.key_value("host.name", w.string_value("h"))))
                + w.field(2, w.LEN, w.field(2, w.LEN, w.span(w.field(5, w.LEN, b"chat"))))),
        # A scope block whose records' field arrives with a varint length in a non-shortest form.
        w.field(1, w.LEN, w.field(2, w.LEN, b"\x12" + w.varint(len(w.span()), width=2) + w.span())),
        # An unknown field (number 9) of each wire type around the records.
        w.field(1, w.LEN, w.field(9, w.VARINT, 7) + w.field(2, w.LEN, w.field(9, w.FIXED64, 1)
                + w.field(9, w.FIXED32, 2) + w.field(2, w.LEN, w.span()) + w.field(9, w.LEN, b"zz"))),
    ],
    ids=["resource-twice", "long-length", "unknown-fields"],
)
def test_unusual_envelopes_decode_as_the_exact_path(payload: bytes) -> None:
    """Encodings around the records that the fast path does not take, or takes, decode as protobuf reads them."""
    now = time.time_ns()
    fast = decode_request(Signal.TRACES, payload, received_ns=now)
    exact = decode_request(Signal.TRACES, payload, received_ns=now, exact=True)
    _same(fast, exact)
    assert fast.table.num_rows == 1


def test_broken_envelopes_are_clear_errors() -> None:
    """A truncated request, or one whose resource is not valid UTF-8, is a DecodeError, not a crash."""
    good = w.trace_request(w.span(w.field(5, w.LEN, b"chat")))
    with pytest.raises(DecodeError):
        decode_request(Signal.TRACES, good[:-3])
    bad_resource = w.field(1, w.LEN, w.field(1, w.LEN, w.field(1, w.LEN, w.key_value("k", w.field(1, w.LEN, b"\xff"))))
                           + w.field(2, w.LEN, w.field(2, w.LEN, w.span())))
    with pytest.raises(wire.IrregularError):
        wire.layout(bad_resource, Resource, InstrumentationScope)
    with pytest.raises(DecodeError):
        decode_request(Signal.TRACES, bad_resource)


_PEAK_SCRIPT = textwrap.dedent("""
    import gc, json, sys
    from pathlib import Path
    from bench.spine import requests
    from collectors.otlp.decode import decode_request
    from sovtel.records import Signal

    def status():
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    decode_request(Signal.TRACES, requests(1, 200)[0])  # warm-up: imports and caches
    payload = requests(1, int(sys.argv[1]), seed=2)[0]
    gc.collect()
    idle, _ = status()
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    decoded = decode_request(Signal.TRACES, payload)
    _, peak = status()
    print(json.dumps({"bytes": len(payload), "growth": peak - idle, "rows": decoded.table.num_rows}))
""")


def test_decoding_a_large_request_grows_memory_by_a_few_times_its_size() -> None:
    """Decoding one ~10 MB request in a fresh process raises its peak RSS by at most 6× the request (13× before
    slicing); the table itself is about 0.85× of it."""
    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    proc = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, "20000"], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "clear_refs" in proc.stderr:
        pytest.skip("resetting the peak RSS is not permitted here")
    assert proc.returncode == 0, proc.stderr
    m: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["rows"] == 20000
    assert m["growth"] <= 6 * m["bytes"], f"peak grew by {m['growth'] / m['bytes']:.1f}× the request"
    print(f"decoding {m['bytes']} bytes raised the peak RSS by {m['growth'] / m['bytes']:.1f}× their size")
