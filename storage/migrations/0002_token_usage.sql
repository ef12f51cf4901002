-- target: tier
-- Per-minute token and request roll-up, fed from spans by a materialized view so dashboards and
-- billing never scan raw spans. It carries tenant ids, so it keeps the personal retention.

CREATE TABLE IF NOT EXISTS {db}.token_usage{on_cluster}
(
    minute DateTime('UTC') CODEC(Delta, ZSTD(1)),
    service_name LowCardinality(String) CODEC(ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    provider LowCardinality(String) CODEC(ZSTD(1)),
    request_model LowCardinality(String) CODEC(ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    tier LowCardinality(String) CODEC(ZSTD(1)),
    requests UInt64 CODEC(T64, ZSTD(1)),
    errors UInt64 CODEC(T64, ZSTD(1)),
    input_tokens UInt64 CODEC(T64, ZSTD(1)),
    output_tokens UInt64 CODEC(T64, ZSTD(1)),
    cache_read_tokens UInt64 CODEC(T64, ZSTD(1)),
    reasoning_tokens UInt64 CODEC(T64, ZSTD(1)),
    -- Sums and counts rather than means, so rows stay additive under SummingMergeTree.
    duration_ns_sum UInt64 CODEC(T64, ZSTD(1)),
    ttft_s_sum Float64 CODEC(ZSTD(1)),
    ttft_count UInt64 CODEC(T64, ZSTD(1))
)
ENGINE = {replicated}SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (service_name, request_model, provider, node, tenant_id, tier, minute)
TTL minute + INTERVAL {personal_ttl_days} DAY DELETE
-- The view's blocks inherit the span insert's dedup token; without a window here a replayed span
-- batch skipped in spans would still be counted again in this roll-up.
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

-- Only GenAI spans count as requests: plain HTTP or database spans in the same trace would inflate them.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.token_usage_mv{on_cluster} TO {db}.token_usage AS
SELECT
    toStartOfMinute(timestamp) AS minute,
    service_name,
    node,
    provider,
    request_model,
    tenant_id,
    tier,
    count() AS requests,
    countIf(upper(toString(status_code)) IN ('ERROR', 'STATUS_CODE_ERROR') OR error_type != '') AS errors,
    sum(toUInt64(input_tokens)) AS input_tokens,
    sum(toUInt64(output_tokens)) AS output_tokens,
    sum(toUInt64(cache_read_tokens)) AS cache_read_tokens,
    sum(toUInt64(reasoning_tokens)) AS reasoning_tokens,
    sum(duration_ns) AS duration_ns_sum,
    sum(ifNull(ttft_s, 0)) AS ttft_s_sum,
    count(ttft_s) AS ttft_count
FROM {db}.spans AS s
-- Qualified names: the SELECT aliases above shadow the columns they sum.
WHERE s.operation != '' OR s.input_tokens > 0 OR s.output_tokens > 0
GROUP BY minute, service_name, node, provider, request_model, tenant_id, tier;
