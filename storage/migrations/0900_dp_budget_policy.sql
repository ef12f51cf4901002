-- target: tier
-- The differential-privacy budget policy (retention/dp_policy.py): the epsilon cap per tenant and
-- budget window that every release reads. The newest row of a tenant is in force; tenant '' is the
-- cap of every tenant without a row of its own. Only `sovtel privacy set-budget` writes it: lowering
-- is always allowed, raising (a larger epsilon or a shorter window) is recorded first in the AI-Act
-- ledger with its actor and reason, and that entry's seq is kept here. Append-only, so it is also the
-- history of the policy. Kept as long as the AI-Act documentation ({aiact_ttl_years} years).

CREATE TABLE IF NOT EXISTS {db}.privacy_budget_policy{on_cluster}
(
    at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    tenant_id String CODEC(ZSTD(1)),
    per_window Float64 CODEC(ZSTD(1)),
    window_s UInt32 CODEC(ZSTD(1)),
    previous_per_window Float64 CODEC(ZSTD(1)),
    previous_window_s UInt32 CODEC(ZSTD(1)),
    -- 'lower', 'raise' or 'same'
    change LowCardinality(String) CODEC(ZSTD(1)),
    actor String CODEC(ZSTD(1)),
    reason String CODEC(ZSTD(1)),
    -- The AI-Act ledger entry of the change (0 when the store holds no ledger and the change lowered).
    ledger_seq UInt64 CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYear(at)
ORDER BY (tenant_id, at)
TTL toDateTime(at) + INTERVAL {aiact_ttl_years} YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;
