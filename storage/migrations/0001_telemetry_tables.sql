-- target: tier
-- Personal telemetry of one tier: spans, logs and metrics, mirroring sovtel.records schemas column for column.
-- Personal tables expire after {personal_ttl_days} days; metrics are operational and keep {operational_ttl_days}.
-- Daily partitions with ttl_only_drop_parts make expiry a cheap part drop instead of a rewrite.
-- non_replicated_deduplication_window lets insert_deduplication_token make a replayed batch harmless.

CREATE DATABASE IF NOT EXISTS {db}{on_cluster};

CREATE TABLE IF NOT EXISTS {db}.spans{on_cluster}
(
    timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ns UInt64 CODEC(T64, ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    parent_span_id String CODEC(ZSTD(1)),
    service_name LowCardinality(String) CODEC(ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    span_name LowCardinality(String) CODEC(ZSTD(1)),
    span_kind LowCardinality(String) CODEC(ZSTD(1)),
    status_code LowCardinality(String) CODEC(ZSTD(1)),
    status_message String CODEC(ZSTD(1)),
    operation LowCardinality(String) CODEC(ZSTD(1)),
    provider LowCardinality(String) CODEC(ZSTD(1)),
    request_model LowCardinality(String) CODEC(ZSTD(1)),
    response_model LowCardinality(String) CODEC(ZSTD(1)),
    input_tokens UInt32 CODEC(T64, ZSTD(1)),
    output_tokens UInt32 CODEC(T64, ZSTD(1)),
    cache_read_tokens UInt32 CODEC(T64, ZSTD(1)),
    reasoning_tokens UInt32 CODEC(T64, ZSTD(1)),
    ttft_s Nullable(Float64) CODEC(ZSTD(1)),
    finish_reasons Array(LowCardinality(String)) CODEC(ZSTD(1)),
    error_type LowCardinality(String) CODEC(ZSTD(1)),
    conversation_id String CODEC(ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    key_id LowCardinality(String) CODEC(ZSTD(1)),
    tier LowCardinality(String) CODEC(ZSTD(1)),
    input_messages String CODEC(ZSTD(1)),
    output_messages String CODEC(ZSTD(1)),
    system_instructions String CODEC(ZSTD(1)),
    tool_call_arguments String CODEC(ZSTD(1)),
    tool_call_result String CODEC(ZSTD(1)),
    retrieval_documents String CODEC(ZSTD(1)),
    pii_count UInt16 CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    span_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    event_names Array(LowCardinality(String)) CODEC(ZSTD(1)),
    event_attributes Array(Map(LowCardinality(String), String)) CODEC(ZSTD(1)),
    quality_scores Map(LowCardinality(String), Float64) CODEC(ZSTD(1)),
    quality_labels Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    pii_entities Map(LowCardinality(String), UInt16) CODEC(ZSTD(1)),
    -- Trace lookups and erasure by data subject skip granules through these instead of the sort key.
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_tenant_id tenant_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_span_attr_keys mapKeys(span_attributes) TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {replicated}MergeTree
PARTITION BY toDate(timestamp)
-- Dashboards filter by service and model over a time range; that prefix prunes most granules.
ORDER BY (service_name, request_model, timestamp)
TTL toDateTime(timestamp) + INTERVAL {personal_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, index_granularity = 8192;

CREATE TABLE IF NOT EXISTS {db}.logs{on_cluster}
(
    timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    observed_timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    severity_number UInt8 CODEC(ZSTD(1)),
    severity_text LowCardinality(String) CODEC(ZSTD(1)),
    service_name LowCardinality(String) CODEC(ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    event_name LowCardinality(String) CODEC(ZSTD(1)),
    body String CODEC(ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    key_id LowCardinality(String) CODEC(ZSTD(1)),
    tier LowCardinality(String) CODEC(ZSTD(1)),
    pii_count UInt16 CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    log_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_tenant_id tenant_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_log_attr_keys mapKeys(log_attributes) TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {replicated}MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (service_name, severity_number, timestamp)
TTL toDateTime(timestamp) + INTERVAL {personal_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, index_granularity = 8192;

CREATE TABLE IF NOT EXISTS {db}.metrics{on_cluster}
(
    timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    start_timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    service_name LowCardinality(String) CODEC(ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    metric_name LowCardinality(String) CODEC(ZSTD(1)),
    metric_kind LowCardinality(String) CODEC(ZSTD(1)),
    unit LowCardinality(String) CODEC(ZSTD(1)),
    is_monotonic Bool CODEC(ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1)),
    count UInt64 CODEC(T64, ZSTD(1)),
    sum Float64 CODEC(Gorilla, ZSTD(1)),
    bounds Array(Float64) CODEC(ZSTD(1)),
    bucket_counts Array(UInt64) CODEC(ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    tier LowCardinality(String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    INDEX idx_attr_keys mapKeys(attributes) TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {replicated}MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (service_name, metric_name, timestamp)
TTL toDateTime(timestamp) + INTERVAL {operational_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000, index_granularity = 8192;
