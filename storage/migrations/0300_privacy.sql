-- target: tier
-- Privacy-budget ledger of differential-privacy releases (processors/dp.py): one row per charge or
-- refusal, per tenant (pseudonymised) and budget window. Append-only, so it is also the audit
-- trail; the spent budget of a window is sum(epsilon) over its 'charged' rows and survives restarts.
-- Kept for the operational retention ({operational_ttl_days} days) after the window started.

CREATE TABLE IF NOT EXISTS {db}.privacy_budget{on_cluster}
(
    at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    window_start DateTime('UTC') CODEC(Delta, ZSTD(1)),
    window_s UInt32 CODEC(ZSTD(1)),
    release LowCardinality(String) CODEC(ZSTD(1)),
    epsilon Float64 CODEC(ZSTD(1)),
    -- 'charged' or 'refused'
    outcome LowCardinality(String) CODEC(ZSTD(1)),
    reason String CODEC(ZSTD(1)),
    node LowCardinality(String) CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, window_start, at)
TTL window_start + INTERVAL {operational_ttl_days} DAY DELETE
SETTINGS ttl_only_drop_parts = 1;
