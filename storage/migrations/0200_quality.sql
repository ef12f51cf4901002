-- target: tier
-- ML quality monitoring (quality/ jobs, processors/quality.py): edge scores exploded per span for
-- dashboards, plus the jobs' results (hallucination-rate roll-ups, version comparisons, drift tests).
-- The span maps exist since 0001; the ADD COLUMN statements keep older stores working.

ALTER TABLE {db}.spans{on_cluster} ADD COLUMN IF NOT EXISTS quality_scores Map(LowCardinality(String), Float64) CODEC(ZSTD(1));

ALTER TABLE {db}.spans{on_cluster} ADD COLUMN IF NOT EXISTS quality_labels Map(LowCardinality(String), String) CODEC(ZSTD(1));

-- One row per (span, score name): personal retention, because it carries trace and tenant ids.
CREATE TABLE IF NOT EXISTS {db}.quality_scores{on_cluster}
(
    timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    service_name LowCardinality(String) CODEC(ZSTD(1)),
    request_model LowCardinality(String) CODEC(ZSTD(1)),
    response_model LowCardinality(String) CODEC(ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    name LowCardinality(String) CODEC(ZSTD(1)),
    score Nullable(Float64) CODEC(ZSTD(1)),
    label LowCardinality(String) CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toDate(timestamp)
-- Panels select one score name for a model over time.
ORDER BY (name, response_model, timestamp)
TTL toDateTime(timestamp) + INTERVAL {personal_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

-- Every key of either map becomes a row; a label-only entry (e.g. an evaluator's "pass") has a NULL score.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.quality_scores_mv{on_cluster} TO {db}.quality_scores AS
SELECT
    s.timestamp AS timestamp,
    s.service_name AS service_name,
    s.request_model AS request_model,
    s.response_model AS response_model,
    s.tenant_id AS tenant_id,
    s.trace_id AS trace_id,
    s.span_id AS span_id,
    score_name AS name,
    if(mapContains(s.quality_scores, score_name), s.quality_scores[score_name], NULL) AS score,
    s.quality_labels[score_name] AS label
FROM {db}.spans AS s
ARRAY JOIN arrayDistinct(arrayConcat(mapKeys(s.quality_scores), mapKeys(s.quality_labels))) AS score_name
WHERE length(s.quality_scores) > 0 OR length(s.quality_labels) > 0;

-- Non-personal aggregates per model version and bucket: operational retention.
-- A re-run of the job for the same bucket replaces the row (latest computed_at wins).
CREATE TABLE IF NOT EXISTS {db}.quality_rates{on_cluster}
(
    computed_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    period LowCardinality(String) CODEC(ZSTD(1)),
    bucket DateTime('UTC') CODEC(Delta, ZSTD(1)),
    response_model LowCardinality(String) CODEC(ZSTD(1)),
    metric LowCardinality(String) CODEC(ZSTD(1)),
    n UInt64 CODEC(T64, ZSTD(1)),
    events UInt64 CODEC(T64, ZSTD(1)),
    rate Float64 CODEC(ZSTD(1)),
    ci_low Float64 CODEC(ZSTD(1)),
    ci_high Float64 CODEC(ZSTD(1)),
    confidence Float64 CODEC(ZSTD(1))
)
ENGINE = {replicated}ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(bucket)
ORDER BY (metric, period, response_model, bucket)
TTL bucket + INTERVAL {operational_ttl_days} DAY DELETE;

CREATE TABLE IF NOT EXISTS {db}.quality_comparisons{on_cluster}
(
    computed_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    window_start DateTime64(3, 'UTC') CODEC(ZSTD(1)),
    window_end DateTime64(3, 'UTC') CODEC(ZSTD(1)),
    metric LowCardinality(String) CODEC(ZSTD(1)),
    request_model LowCardinality(String) CODEC(ZSTD(1)),
    baseline_model LowCardinality(String) CODEC(ZSTD(1)),
    candidate_model LowCardinality(String) CODEC(ZSTD(1)),
    baseline_n UInt64 CODEC(ZSTD(1)),
    baseline_events UInt64 CODEC(ZSTD(1)),
    candidate_n UInt64 CODEC(ZSTD(1)),
    candidate_events UInt64 CODEC(ZSTD(1)),
    baseline_rate Float64 CODEC(ZSTD(1)),
    candidate_rate Float64 CODEC(ZSTD(1)),
    difference Float64 CODEC(ZSTD(1)),
    statistic Float64 CODEC(ZSTD(1)),
    p_value Float64 CODEC(ZSTD(1)),
    method LowCardinality(String) CODEC(ZSTD(1)),
    alpha Float64 CODEC(ZSTD(1)),
    worse Bool CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(computed_at)
ORDER BY (metric, request_model, candidate_model, computed_at)
TTL toDateTime(computed_at) + INTERVAL {operational_ttl_days} DAY DELETE;

CREATE TABLE IF NOT EXISTS {db}.quality_drift{on_cluster}
(
    computed_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    response_model LowCardinality(String) CODEC(ZSTD(1)),
    feature LowCardinality(String) CODEC(ZSTD(1)),
    kind LowCardinality(String) CODEC(ZSTD(1)),
    test LowCardinality(String) CODEC(ZSTD(1)),
    reference_start DateTime64(3, 'UTC') CODEC(ZSTD(1)),
    reference_end DateTime64(3, 'UTC') CODEC(ZSTD(1)),
    current_start DateTime64(3, 'UTC') CODEC(ZSTD(1)),
    current_end DateTime64(3, 'UTC') CODEC(ZSTD(1)),
    n_reference UInt64 CODEC(ZSTD(1)),
    n_current UInt64 CODEC(ZSTD(1)),
    statistic Float64 CODEC(ZSTD(1)),
    p_value Float64 CODEC(ZSTD(1)),
    p_adjusted Float64 CODEC(ZSTD(1)),
    psi Float64 CODEC(ZSTD(1)),
    reference_summary Float64 CODEC(ZSTD(1)),
    current_summary Float64 CODEC(ZSTD(1)),
    alpha Float64 CODEC(ZSTD(1)),
    psi_threshold Float64 CODEC(ZSTD(1)),
    drift Bool CODEC(ZSTD(1)),
    note String CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(computed_at)
ORDER BY (response_model, feature, computed_at)
TTL toDateTime(computed_at) + INTERVAL {operational_ttl_days} DAY DELETE;
