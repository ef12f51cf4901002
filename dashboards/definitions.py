"""sovtel's three dashboards as code: SRE (GPU fleet, latency, traffic, pipeline), Compliance and ML quality.

ClickHouse SQL uses unqualified table names (the data source's default database is the tier
database) and the plugin's macros; ``${aiact_db}`` names the AI-Act database.
"""

from __future__ import annotations

from collections.abc import Sequence

from dashboards.model import Dashboard, Kind, Panel, Section, Source, Variable

# Series labels for a GPU: "node / gpu N".
_GPU = "concat(node, ' / gpu ', toString(gpu_index))"


def gpu_series(title: str, metric: str, unit: str, where: str = "", *, description: str = "",
               agg: str = "avg") -> Panel:
    """A time series of one GPU metric per GPU, from the gpu_metrics table."""
    extra = f" AND {where}" if where else ""
    return Panel(
        title, Kind.TIMESERIES,
        f"SELECT $__timeInterval(timestamp) AS time, {_GPU} AS gpu, {agg}(value) AS value\n"
        f"FROM gpu_metrics\n"
        f"WHERE $__timeFilter(timestamp) AND metric = '{metric}'{extra}\n"
        f"GROUP BY time, gpu\nORDER BY time",
        unit=unit, description=description, width=8,
    )


def bucket_quantile(title: str, q: float, metric: str, unit: str, description: str = "") -> Panel:
    """A quantile per model version from the genai_histograms roll-up, interpolated inside the bucket
    as Prometheus' histogram_quantile does (linear; the +Inf bucket answers the highest bound)."""
    name = f"p{round(q * 100)}"
    sql = f"""SELECT time, response_model AS model,
       round(lo + (hi - lo) * if(inb > 0, (rank - below) / inb, 0), 4) AS {name}
FROM
(
    SELECT time, response_model,
           arrayCumSum(c) AS cum, cum[-1] * {q} AS rank,
           arrayFirstIndex(x -> x >= rank, cum) AS i,
           if(i = 1, 0., b[i - 1]) AS lo,
           if(i <= length(b), b[i], b[-1]) AS hi,
           if(i = 1, 0, cum[i - 1]) AS below,
           c[i] AS inb
    FROM
    (
        SELECT toStartOfInterval(minute, INTERVAL greatest($__interval_s, 60) second) AS time, response_model,
               any(bounds) AS b, sumForEach(bucket_counts) AS c
        FROM genai_histograms
        WHERE $__timeFilter(minute) AND metric = '{metric}'
        GROUP BY time, response_model
    )
    WHERE cum[-1] > 0
)
ORDER BY time"""
    return Panel(title, Kind.TIMESERIES, sql, unit=unit, description=description, width=8)


SRE = Dashboard(
    uid="sovtel-sre",
    title="sovtel — SRE: GPU fleet and GenAI service",
    description="GPU fleet health, GenAI latency and throughput, cost per request and the pipeline's own health.",
    variables=(
        Variable("gpu_hour_price", "2.50", "GPU-hour price",
                 "Price of one fully busy GPU-hour in your currency, for the cost panels."),
    ),
    sections=(
        Section("GPU fleet", (
            gpu_series("GPU utilisation", "hw.gpu.utilization", "percentunit",
                       "attributes['hw.gpu.task'] = 'general'",
                       description="hw.gpu.utilization (general task) per GPU."),
            gpu_series("GPU memory used", "hw.gpu.memory.usage", "bytes", description="hw.gpu.memory.usage per GPU."),
            gpu_series("GPU temperature", "hw.gpu.temperature", "celsius", description="Die temperature per GPU."),
            gpu_series("GPU power", "hw.power", "watt", description="hw.power per GPU."),
            Panel(
                "Energy per 1,000 tokens by model", Kind.TIMESERIES,
                "SELECT toStartOfInterval(minute, INTERVAL greatest($__interval_s, 60) second) AS time,\n"
                "       request_model AS model, sum(energy_j) * 1000 / sum(tokens) AS joules_per_1k_tokens\n"
                "FROM gpu_request_attribution_live\n"
                "WHERE $__timeFilter(minute) AND tokens > 0\n"
                "GROUP BY time, model\nORDER BY time",
                unit="joule", width=8,
                description="GPU energy attributed to each model by its share of the node-minute's tokens.",
            ),
            Panel(
                "GPU errors: XID and ECC", Kind.TABLE,
                "SELECT node, gpu_index, any(gpu_name) AS gpu, attributes['error.type'] AS error_type,\n"
                "       attributes['hw.gpu.xid'] AS xid, max(value) AS count, max(timestamp) AS last_seen\n"
                "FROM gpu_metrics\n"
                "WHERE $__timeFilter(timestamp) AND metric = 'hw.errors'\n"
                "GROUP BY node, gpu_index, error_type, xid\n"
                "ORDER BY count DESC, node, gpu_index",
                width=8, description="hw.errors by type: volatile ECC corrected / uncorrected, and XID events.",
            ),
            Panel(
                "GPUs up (live)", Kind.STAT, "sum(gpu_up)", source=Source.PROMETHEUS, width=6,
                description="Collectors whose NVML answered in their last poll.",
            ),
            Panel(
                "GPU utilisation (live)", Kind.TIMESERIES,
                'avg by (node, gpu) (hw_gpu_utilization_ratio{hw_gpu_task="general"})',
                source=Source.PROMETHEUS, unit="percentunit", legend="{{node}} / gpu {{gpu}}", width=18,
            ),
        )),
        Section("Latency", (
            Panel(
                "Request latency p50 / p95 / p99", Kind.TIMESERIES,
                "SELECT $__timeInterval(timestamp) AS time,\n"
                "       quantile(0.5)(duration_ns) / 1e9 AS p50,\n"
                "       quantile(0.95)(duration_ns) / 1e9 AS p95,\n"
                "       quantile(0.99)(duration_ns) / 1e9 AS p99\n"
                "FROM spans\n"
                "WHERE $__timeFilter(timestamp) AND operation IN ('chat', 'text_completion', 'generate_content')\n"
                "GROUP BY time\nORDER BY time",
                unit="s", width=8, description="GenAI inference spans, exact quantiles over raw spans.",
            ),
            bucket_quantile("Time to first token p95 by model", 0.95, "gen_ai.server.time_to_first_token", "s",
                            "gen_ai.server.time_to_first_token from the per-minute histogram roll-up."),
            bucket_quantile("Time per output token p95 by model", 0.95, "gen_ai.server.time_per_output_token", "s",
                            "gen_ai.server.time_per_output_token from the per-minute histogram roll-up."),
            Panel(
                "Operation duration p95 by model (live)", Kind.TIMESERIES,
                "histogram_quantile(0.95, sum by (le, gen_ai_response_model) "
                "(rate(gen_ai_client_operation_duration_seconds_bucket[5m])))",
                source=Source.PROMETHEUS, unit="s", legend="{{gen_ai_response_model}}", width=24,
            ),
        )),
        Section("Traffic and cost", (
            Panel(
                "Requests per second by model", Kind.TIMESERIES,
                "SELECT toStartOfInterval(minute, INTERVAL greatest($__interval_s, 60) second) AS time,\n"
                "       request_model AS model, sum(requests) / greatest($__interval_s, 60) AS rps\n"
                "FROM token_usage\n"
                "WHERE $__timeFilter(minute)\n"
                "GROUP BY time, model\nORDER BY time",
                unit="reqps", width=8,
            ),
            Panel(
                "Tokens per second by model", Kind.TIMESERIES,
                "SELECT toStartOfInterval(minute, INTERVAL greatest($__interval_s, 60) second) AS time,\n"
                "       request_model AS model,\n"
                "       sum(input_tokens + output_tokens) / greatest($__interval_s, 60) AS tokens_per_s\n"
                "FROM token_usage\n"
                "WHERE $__timeFilter(minute)\n"
                "GROUP BY time, model\nORDER BY time",
                width=8,
            ),
            Panel(
                "Error rate by model", Kind.TIMESERIES,
                "SELECT toStartOfInterval(minute, INTERVAL greatest($__interval_s, 60) second) AS time,\n"
                "       request_model AS model, sum(errors) / sum(requests) AS error_rate\n"
                "FROM token_usage\n"
                "WHERE $__timeFilter(minute) AND requests > 0\n"
                "GROUP BY time, model\nORDER BY time",
                unit="percentunit", width=8,
            ),
            Panel(
                "Cost per request by model", Kind.TABLE,
                "SELECT a.request_model AS model, a.provider AS provider, sum(a.requests) AS total_requests,\n"
                "       round(sum(a.gpu_seconds) / total_requests, 4) AS gpu_seconds_per_request,\n"
                "       round(sum(a.energy_j) / total_requests, 2) AS joules_per_request,\n"
                "       round(sum(a.energy_j) * 1000 / sum(a.tokens), 2) AS joules_per_1k_tokens,\n"
                "       round(sum(a.gpu_seconds) / 3600 * ${gpu_hour_price} / total_requests * 1000, 4)\n"
                "           AS price_per_1k_requests\n"
                "FROM gpu_request_attribution_live AS a\n"
                "WHERE $__timeFilter(a.minute) AND a.requests > 0 AND a.tokens > 0\n"
                "GROUP BY model, provider\nORDER BY total_requests DESC",
                width=24,
                description="Busy GPU-seconds and joules attributed by token share (docs/gpu.md); price from the "
                            "gpu_hour_price variable.",
            ),
        )),
        Section("Pipeline health", (
            Panel(
                "Exporter queue depth", Kind.TIMESERIES, "sum by (component) (sovtel_queue_records)",
                source=Source.PROMETHEUS, legend="{{component}}", width=8,
            ),
            Panel(
                "Dropped records by reason", Kind.TIMESERIES,
                "sum by (component, reason) (rate(sovtel_dropped_records_total[5m]))",
                source=Source.PROMETHEUS, unit="short", legend="{{component}}: {{reason}}", width=8,
            ),
            Panel(
                "NVML readings failed or unsupported", Kind.TIMESERIES,
                "sum by (reading, error) (rate(sovtel_nvml_errors_total[5m]))",
                source=Source.PROMETHEUS, legend="{{reading}}: {{error}}", width=8,
            ),
        )),
    ),
)

COMPLIANCE = Dashboard(
    uid="sovtel-compliance",
    title="sovtel — Compliance: privacy, retention and routing",
    description="PII detections, what the privacy processors withheld, retention status, the AI-Act ledger and "
                "tier routing.",
    variables=(Variable("aiact_db", "aiact", "AI-Act database", "Database holding the AI-Act ledger."),),
    sections=(
        Section("Personal data", (
            Panel(
                "PII detections by type", Kind.TIMESERIES,
                "SELECT $__timeInterval(timestamp) AS time, entity, sum(n) AS detections\n"
                "FROM spans\n"
                "ARRAY JOIN mapKeys(pii_entities) AS entity, mapValues(pii_entities) AS n\n"
                "WHERE $__timeFilter(timestamp)\n"
                "GROUP BY time, entity\nORDER BY time",
                width=12, description="spans.pii_entities: entities masked, by type.",
            ),
            Panel(
                "PII detections by type (total)", Kind.BARCHART,
                "SELECT entity, sum(n) AS detections\n"
                "FROM spans\n"
                "ARRAY JOIN mapKeys(pii_entities) AS entity, mapValues(pii_entities) AS n\n"
                "WHERE $__timeFilter(timestamp)\n"
                "GROUP BY entity\nORDER BY detections DESC",
                width=6,
            ),
            Panel(
                "Spans carrying PII", Kind.STAT,
                "SELECT round(countIf(pii_count > 0) / count(), 4) AS share\n"
                "FROM spans\nWHERE $__timeFilter(timestamp)",
                unit="percentunit", width=6,
            ),
            Panel(
                "Withheld by the pipeline (drops and removals by reason)", Kind.TIMESERIES,
                "sum by (component, reason) (increase(sovtel_dropped_records_total[1h]))"
                " or sum by (component, reason) (increase(sovtel_removed_values_total[1h]))",
                source=Source.PROMETHEUS, legend="{{component}}: {{reason}}", width=24,
                description="Records dropped (quarantined or refused) and attribute values or content removed.",
            ),
        )),
        Section("Retention and ledger", (
            Panel(
                "Retention status", Kind.TABLE,
                "SELECT p.table AS table, t.ttl_days AS ttl_days, sum(p.rows) AS rows,\n"
                "       min(toDateOrNull(p.partition)) AS oldest_partition,\n"
                "       max(toDateOrNull(p.partition)) AS newest_partition,\n"
                "       dateDiff('day', oldest_partition, today()) AS oldest_age_days,\n"
                "       if(t.ttl_days = 0, 'no TTL', if(oldest_age_days <= t.ttl_days + 1, 'within policy',\n"
                "          'overdue')) AS status\n"
                "FROM system.parts AS p\n"
                "INNER JOIN\n"
                "(\n"
                "    SELECT name, toUInt32OrZero(extract(engine_full, 'toIntervalDay\\\\((\\\\d+)\\\\)')) AS ttl_days\n"
                "    FROM system.tables WHERE database = currentDatabase()\n"
                ") AS t ON t.name = p.table\n"
                "WHERE p.active AND p.database = currentDatabase() AND NOT startsWith(p.table, '_')\n"
                "GROUP BY p.table, t.ttl_days\nORDER BY p.table",
                width=14,
                description="Oldest partition per table against its TTL; 'overdue' means expired parts still wait "
                            "for a TTL merge.",
            ),
            Panel(
                "AI-Act ledger: compliance actions", Kind.BARCHART,
                "SELECT action, count() AS entries\n"
                "FROM ${aiact_db}.ledger\n"
                "WHERE $__timeFilter(timestamp)\n"
                "GROUP BY action\nORDER BY entries DESC",
                width=10,
                description="Entries of the hash-chained ledger by action (audits, erasures, retention runs …).",
            ),
        )),
        Section("Tier routing", (
            Panel(
                "Spans stored by tier", Kind.TIMESERIES,
                "SELECT $__timeInterval(timestamp) AS time, if(tier = '', '(unclassified)', tier) AS tier,\n"
                "       count() AS spans\n"
                "FROM spans\nWHERE $__timeFilter(timestamp)\n"
                "GROUP BY time, tier\nORDER BY time",
                width=12,
            ),
            Panel(
                "Records sent per exporter (live)", Kind.TIMESERIES,
                "sum by (component, signal) (rate(sovtel_sent_records_total[5m]))",
                source=Source.PROMETHEUS, legend="{{component}} {{signal}}", width=12,
            ),
        )),
    ),
)

_VERSION = "if(response_model = '', request_model, response_model)"

QUALITY = Dashboard(
    uid="sovtel-quality",
    title="sovtel — ML quality: hallucination and drift",
    description="Edge quality scores per model version (spans.quality_scores) and simple drift indicators; "
                "the statistical drift test is `sovtel quality drift`.",
    sections=(
        Section("Hallucination", (
            Panel(
                "Hallucination rate by model version", Kind.TIMESERIES,
                f"SELECT $__timeInterval(timestamp) AS time, {_VERSION} AS version,\n"
                "       avg(quality_scores['hallucination']) AS hallucination_rate\n"
                "FROM spans\n"
                "WHERE $__timeFilter(timestamp) AND mapContains(quality_scores, 'hallucination')\n"
                "GROUP BY time, version\nORDER BY time",
                unit="percentunit", width=12,
                description="Share of scored answers the groundedness scorer marked as hallucinated.",
            ),
            Panel(
                "Quality scores by model version", Kind.TABLE,
                f"SELECT {_VERSION} AS version, scorer, count() AS scored, round(avg(score), 4) AS mean,\n"
                "       round(quantile(0.1)(score), 4) AS p10\n"
                "FROM spans\n"
                "ARRAY JOIN mapKeys(quality_scores) AS scorer, mapValues(quality_scores) AS score\n"
                "WHERE $__timeFilter(timestamp)\n"
                "GROUP BY version, scorer\nORDER BY version, scorer",
                width=12,
            ),
            Panel(
                "Hallucination reasons", Kind.BARCHART,
                "SELECT quality_labels['hallucination.reason'] AS reason, count() AS answers\n"
                "FROM spans\n"
                "WHERE $__timeFilter(timestamp) AND quality_labels['hallucination.reason'] != ''\n"
                "GROUP BY reason\nORDER BY answers DESC",
                width=12,
            ),
        )),
        Section("Drift", (
            Panel(
                "Input tokens p50 by model version", Kind.TIMESERIES,
                f"SELECT $__timeInterval(timestamp) AS time, {_VERSION} AS version,\n"
                "       quantile(0.5)(input_tokens) AS input_tokens_p50\n"
                "FROM spans\n"
                "WHERE $__timeFilter(timestamp) AND input_tokens > 0\n"
                "GROUP BY time, version\nORDER BY time",
                width=12,
            ),
            Panel(
                "Drift: second half of the range against the first", Kind.TABLE,
                f"SELECT {_VERSION} AS version,\n"
                "       round(avgIf(input_tokens, late) / nullIf(avgIf(input_tokens, NOT late), 0) - 1, 4)\n"
                "           AS input_tokens_change,\n"
                "       round(avgIf(output_tokens, late) / nullIf(avgIf(output_tokens, NOT late), 0) - 1, 4)\n"
                "           AS output_tokens_change,\n"
                "       round(avgIf(duration_ns, late) / nullIf(avgIf(duration_ns, NOT late), 0) - 1, 4)\n"
                "           AS latency_change,\n"
                "       round(avgIf(quality_scores['hallucination'], late AND has_score)\n"
                "           - avgIf(quality_scores['hallucination'], NOT late AND has_score), 4)\n"
                "           AS hallucination_rate_change,\n"
                "       countIf(late) AS late_requests, countIf(NOT late) AS early_requests\n"
                "FROM\n"
                "(\n"
                "    SELECT *,\n"
                "           timestamp >= $__fromTime + intDiv(dateDiff('second', $__fromTime, $__toTime), 2) AS late,\n"
                "           mapContains(quality_scores, 'hallucination') AS has_score\n"
                "    FROM spans\n"
                "    WHERE $__timeFilter(timestamp) AND operation != ''\n"
                ")\n"
                "GROUP BY version\nORDER BY version",
                width=12,
                description="Relative change of means per model version; a quick indicator, not a test.",
            ),
        )),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (SRE, COMPLIANCE, QUALITY)


def by_uid(uid: str) -> Dashboard:
    """The dashboard with ``uid``; KeyError if there is none."""
    for d in DASHBOARDS:
        if d.uid == uid:
            return d
    raise KeyError(uid)


class UnknownDashboardError(ValueError):
    """A dashboard uid that names none of the dashboards."""


def select_dashboards(uids: Sequence[str] = ()) -> list[Dashboard]:
    """The dashboards with these uids, in that order; every dashboard when none is given."""
    if not uids:
        return list(DASHBOARDS)
    try:
        return [by_uid(u) for u in uids]
    except KeyError as exc:
        known = ", ".join(d.uid for d in DASHBOARDS)
        raise UnknownDashboardError(f"no dashboard {exc.args[0]!r} (known: {known})") from None
