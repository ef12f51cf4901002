-- target: tier
-- Differential-privacy releases (sovtel privacy release): noisy, non-identifiable aggregates per
-- tenant (pseudonymised), window and group. This is what may leave a tier, e.g. to the public store.

CREATE TABLE IF NOT EXISTS {db}.dp_releases{on_cluster}
(
    released_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    release LowCardinality(String) CODEC(ZSTD(1)),
    source LowCardinality(String) CODEC(ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    window_start DateTime('UTC') CODEC(Delta, ZSTD(1)),
    window_s UInt32 CODEC(ZSTD(1)),
    group LowCardinality(String) CODEC(ZSTD(1)),
    statistic LowCardinality(String) CODEC(ZSTD(1)),
    value Float64 CODEC(ZSTD(1)),
    epsilon Float64 CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (release, tenant_id, window_start, group, statistic)
TTL window_start + INTERVAL {operational_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000;
