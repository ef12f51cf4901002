-- target: tier
-- Operational, non-personal series: GPU telemetry from the NVML poller and the pipeline's own health.
-- They keep the operational retention ({operational_ttl_days} days).

CREATE TABLE IF NOT EXISTS {db}.gpu_metrics{on_cluster}
(
    timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    gpu_index UInt16 CODEC(ZSTD(1)),
    gpu_uuid LowCardinality(String) CODEC(ZSTD(1)),
    gpu_name LowCardinality(String) CODEC(ZSTD(1)),
    metric LowCardinality(String) CODEC(ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1)),
    attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    -- True for the simulated device used by the demo, so it can never pass for real hardware.
    simulated Bool CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toDate(timestamp)
-- GPU panels and the GPU-to-request join select by node and metric over time.
ORDER BY (node, metric, gpu_index, timestamp)
TTL toDateTime(timestamp) + INTERVAL {operational_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.pipeline_health{on_cluster}
(
    timestamp DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1)),
    component LowCardinality(String) CODEC(ZSTD(1)),
    signal LowCardinality(String) CODEC(ZSTD(1)),
    metric LowCardinality(String) CODEC(ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toDate(timestamp)
ORDER BY (node, component, metric, timestamp)
TTL toDateTime(timestamp) + INTERVAL {operational_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;
