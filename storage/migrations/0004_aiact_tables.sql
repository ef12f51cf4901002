-- target: aiact
-- The AI-Act store: documentation and compliance records kept {aiact_ttl_years} years (Art. 18).
-- Append-only is enforced by the application; plain MergeTree so nothing is ever collapsed or replaced.
-- Monthly partitions: a decade of daily partitions would be thousands of tiny parts.

CREATE DATABASE IF NOT EXISTS {aiact_db}{on_cluster};

CREATE TABLE IF NOT EXISTS {aiact_db}.model_versions{on_cluster}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    model LowCardinality(String) CODEC(ZSTD(1)),
    version String CODEC(ZSTD(1)),
    provider LowCardinality(String) CODEC(ZSTD(1)),
    hyperparameters String CODEC(ZSTD(1)),
    training_data String CODEC(ZSTD(1)),
    deployment_config String CODEC(ZSTD(1)),
    documentation_hash String CODEC(ZSTD(1)),
    recorded_by String CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (model, version, timestamp)
TTL toDateTime(timestamp) + INTERVAL {aiact_ttl_years} YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {aiact_db}.evaluations{on_cluster}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    model LowCardinality(String) CODEC(ZSTD(1)),
    version String CODEC(ZSTD(1)),
    suite LowCardinality(String) CODEC(ZSTD(1)),
    dataset String CODEC(ZSTD(1)),
    metric LowCardinality(String) CODEC(ZSTD(1)),
    value Float64 CODEC(ZSTD(1)),
    threshold Nullable(Float64) CODEC(ZSTD(1)),
    passed Nullable(Bool) CODEC(ZSTD(1)),
    details String CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (model, version, suite, metric, timestamp)
TTL toDateTime(timestamp) + INTERVAL {aiact_ttl_years} YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;

-- Non-personal daily aggregates only (no tenant or user ids): these outlive the personal window.
CREATE TABLE IF NOT EXISTS {aiact_db}.usage_daily{on_cluster}
(
    day Date CODEC(Delta, ZSTD(1)),
    service_name LowCardinality(String) CODEC(ZSTD(1)),
    model LowCardinality(String) CODEC(ZSTD(1)),
    provider LowCardinality(String) CODEC(ZSTD(1)),
    tier LowCardinality(String) CODEC(ZSTD(1)),
    requests UInt64 CODEC(ZSTD(1)),
    errors UInt64 CODEC(ZSTD(1)),
    input_tokens UInt64 CODEC(ZSTD(1)),
    output_tokens UInt64 CODEC(ZSTD(1)),
    mean_latency_ms Float64 CODEC(ZSTD(1)),
    p95_latency_ms Float64 CODEC(ZSTD(1)),
    hallucination_rate Nullable(Float64) CODEC(ZSTD(1)),
    recorded_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (model, service_name, day)
TTL toDateTime(day) + INTERVAL {aiact_ttl_years} YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {aiact_db}.incidents{on_cluster}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    incident_id String CODEC(ZSTD(1)),
    model LowCardinality(String) CODEC(ZSTD(1)),
    version String CODEC(ZSTD(1)),
    severity LowCardinality(String) CODEC(ZSTD(1)),
    status LowCardinality(String) CODEC(ZSTD(1)),
    summary String CODEC(ZSTD(1)),
    details String CODEC(ZSTD(1)),
    reported_by String CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (incident_id, timestamp)
TTL toDateTime(timestamp) + INTERVAL {aiact_ttl_years} YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;

-- Hash-chained record of every compliance action: hash = H(prev_hash || canonical entry).
CREATE TABLE IF NOT EXISTS {aiact_db}.ledger{on_cluster}
(
    seq UInt64 CODEC(Delta, ZSTD(1)),
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    action LowCardinality(String) CODEC(ZSTD(1)),
    actor String CODEC(ZSTD(1)),
    payload String CODEC(ZSTD(1)),
    prev_hash String CODEC(ZSTD(1)),
    hash String CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY seq
TTL toDateTime(timestamp) + INTERVAL {aiact_ttl_years} YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;
