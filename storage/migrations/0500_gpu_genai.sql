-- target: tier
-- GPU and GenAI roll-ups (docs/gpu.md, docs/dashboards.md). All three are operational, non-personal
-- aggregates (no tenant, user or content columns) and keep {operational_ttl_days} days.
--
-- 1. gpu_metrics is filled from ordinary metric rows: the NVML receiver's rows (hw.* with
--    hw.type=gpu) take the normal metrics insert path and this view copies them into the GPU table.

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.gpu_metrics_mv{on_cluster} TO {db}.gpu_metrics AS
SELECT
    m.timestamp AS timestamp,
    m.node AS node,
    toUInt16OrZero(m.attributes['gpu.index']) AS gpu_index,
    m.attributes['hw.id'] AS gpu_uuid,
    m.attributes['hw.name'] AS gpu_name,
    m.metric_name AS metric,
    m.value AS value,
    mapFilter((k, v) -> k NOT IN ('hw.id', 'hw.name', 'hw.type', 'hw.vendor', 'gpu.index', 'sovtel.simulated'), m.attributes) AS attributes,
    m.attributes['sovtel.simulated'] = 'true' AS simulated
FROM {db}.metrics AS m
WHERE startsWith(m.metric_name, 'hw.') AND m.attributes['hw.type'] = 'gpu';

-- 2. GenAI histograms from spans, per minute, with the semantic conventions' bucket boundaries
--    (the same literals as processors/genai_metrics.py). bucket_counts has one more entry than
--    bounds: the last is the +Inf bucket. Rows are additive: sum them with sumForEach(bucket_counts).
CREATE TABLE IF NOT EXISTS {db}.genai_histograms{on_cluster}
(
    minute DateTime('UTC') CODEC(Delta, ZSTD(1)),
    metric LowCardinality(String) CODEC(ZSTD(1)),
    service_name LowCardinality(String) CODEC(ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    operation LowCardinality(String) CODEC(ZSTD(1)),
    provider LowCardinality(String) CODEC(ZSTD(1)),
    request_model LowCardinality(String) CODEC(ZSTD(1)),
    response_model LowCardinality(String) CODEC(ZSTD(1)),
    tier LowCardinality(String) CODEC(ZSTD(1)),
    token_type LowCardinality(String) CODEC(ZSTD(1)),
    error_type LowCardinality(String) CODEC(ZSTD(1)),
    bounds Array(Float64) CODEC(ZSTD(1)),
    bucket_counts Array(UInt64) CODEC(ZSTD(1)),
    count UInt64 CODEC(T64, ZSTD(1)),
    sum Float64 CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toDate(minute)
ORDER BY (metric, service_name, response_model, minute)
TTL minute + INTERVAL {operational_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

-- Each GenAI span yields up to five (metric, token type, value, bounds) observations; a value of -1
-- marks "not observed" (no tokens, no time to first token, a failed response) and is filtered out.
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.genai_histograms_mv{on_cluster} TO {db}.genai_histograms AS
SELECT
    minute,
    o.1 AS metric,
    service_name,
    node,
    operation,
    provider,
    request_model,
    response_model,
    tier,
    o.2 AS token_type,
    if(o.1 = 'gen_ai.client.operation.duration', error_label, '') AS error_type,
    o.4 AS bounds,
    sumForEach(arrayMap(i -> toUInt64(i = if(arrayFirstIndex(b -> o.3 <= b, o.4) = 0, length(o.4) + 1, arrayFirstIndex(b -> o.3 <= b, o.4))), range(1, length(o.4) + 2))) AS bucket_counts,
    count() AS count,
    sum(o.3) AS sum
FROM
(
    SELECT
        toStartOfMinute(s.timestamp) AS minute,
        s.service_name AS service_name,
        s.node AS node,
        s.operation AS operation,
        s.provider AS provider,
        s.request_model AS request_model,
        s.response_model AS response_model,
        s.tier AS tier,
        upper(toString(s.status_code)) IN ('ERROR', 'STATUS_CODE_ERROR') OR s.error_type != '' AS failed,
        if(s.error_type != '', toString(s.error_type), if(failed, '_OTHER', '')) AS error_label,
        s.duration_ns / 1e9 AS duration_s,
        ifNull(s.ttft_s, -1.0) AS ttft,
        arrayJoin(arrayFilter(x -> x.3 >= 0 AND isFinite(x.3), [
            ('gen_ai.client.token.usage', 'input', if(s.input_tokens > 0, toFloat64(s.input_tokens), -1.0),
             [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0]),
            ('gen_ai.client.token.usage', 'output', if(s.output_tokens > 0, toFloat64(s.output_tokens), -1.0),
             [1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0]),
            ('gen_ai.client.operation.duration', '', duration_s,
             [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]),
            ('gen_ai.server.time_to_first_token', '', if(NOT failed AND ttft >= 0, ttft, -1.0),
             [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]),
            ('gen_ai.server.time_per_output_token', '',
             if(NOT failed AND ttft >= 0 AND s.output_tokens > 1 AND duration_s >= ttft, (duration_s - ttft) / (s.output_tokens - 1), -1.0),
             [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5])
        ])) AS o
    FROM {db}.spans AS s
    WHERE s.operation != ''
)
GROUP BY minute, metric, service_name, node, operation, provider, request_model, response_model, tier, token_type, error_type, bounds;

-- 3. GPU <-> request attribution per node, minute and model.
--    GPU side, per GPU and consecutive pair of samples (gap at most 120 s): busy GPU-seconds =
--    utilisation x elapsed seconds, energy = increase of the hw.energy counter (a reset counts 0),
--    both booked to the minute of the later sample and summed over the node's GPUs.
--    Request side: token_usage (requests and input+output tokens per node, minute and model).
--    Attribution: each model gets the node-minute's GPU-seconds and joules in proportion to its
--    share of that node-minute's tokens. Limits are in docs/gpu.md.
CREATE VIEW IF NOT EXISTS {db}.gpu_request_attribution_live{on_cluster} AS
WITH
gpu_steps AS
(
    SELECT
        node,
        gpu_uuid,
        metric,
        timestamp,
        value,
        lagInFrame(value) OVER w AS prev_value,
        lagInFrame(timestamp) OVER w AS prev_ts
    FROM {db}.gpu_metrics
    WHERE (metric = 'hw.gpu.utilization' AND attributes['hw.gpu.task'] = 'general') OR metric = 'hw.energy'
    WINDOW w AS (PARTITION BY node, gpu_uuid, metric ORDER BY timestamp ASC ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
),
gpu AS
(
    SELECT
        node,
        toStartOfMinute(timestamp) AS minute,
        sumIf(value * dateDiff('millisecond', prev_ts, timestamp) / 1000.0, metric = 'hw.gpu.utilization') AS gpu_seconds,
        sumIf(greatest(value - prev_value, 0), metric = 'hw.energy') AS energy_j
    FROM gpu_steps
    WHERE toUnixTimestamp64Milli(prev_ts) > 0 AND dateDiff('millisecond', prev_ts, timestamp) BETWEEN 1 AND 120000
    GROUP BY node, minute
),
requests AS
(
    SELECT
        node,
        minute,
        request_model,
        provider,
        sum(requests) AS requests,
        sum(input_tokens + output_tokens) AS tokens
    FROM {db}.token_usage
    GROUP BY node, minute, request_model, provider
)
SELECT
    r.minute AS minute,
    r.node AS node,
    r.request_model AS request_model,
    r.provider AS provider,
    r.requests AS requests,
    r.tokens AS tokens,
    if(sum(r.tokens) OVER (PARTITION BY r.node, r.minute) > 0, r.tokens / sum(r.tokens) OVER (PARTITION BY r.node, r.minute), 0) AS token_share,
    g.gpu_seconds * token_share AS gpu_seconds,
    g.energy_j * token_share AS energy_j,
    if(r.tokens > 0, energy_j * 1000 / r.tokens, 0) AS energy_j_per_1k_tokens,
    if(r.tokens > 0, gpu_seconds * 1000 / r.tokens, 0) AS gpu_seconds_per_1k_tokens,
    if(r.requests > 0, energy_j / r.requests, 0) AS energy_j_per_request,
    if(r.requests > 0, gpu_seconds / r.requests, 0) AS gpu_seconds_per_request
FROM requests AS r
INNER JOIN gpu AS g ON r.node = g.node AND r.minute = g.minute;

-- The stored aggregate: rows of the live view, kept for the operational retention (beyond the
-- personal window of token_usage). Filled by dashboards.attribution.refresh_gpu_attribution; a
-- minute recomputed later replaces the earlier row (latest computed_at wins).
CREATE TABLE IF NOT EXISTS {db}.gpu_request_attribution{on_cluster}
(
    minute DateTime('UTC') CODEC(Delta, ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    request_model LowCardinality(String) CODEC(ZSTD(1)),
    provider LowCardinality(String) CODEC(ZSTD(1)),
    requests UInt64 CODEC(T64, ZSTD(1)),
    tokens UInt64 CODEC(T64, ZSTD(1)),
    token_share Float64 CODEC(ZSTD(1)),
    gpu_seconds Float64 CODEC(ZSTD(1)),
    energy_j Float64 CODEC(ZSTD(1)),
    computed_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1))
)
ENGINE = {replicated}ReplacingMergeTree(computed_at)
PARTITION BY toDate(minute)
ORDER BY (node, request_model, provider, minute)
TTL minute + INTERVAL {operational_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1;
