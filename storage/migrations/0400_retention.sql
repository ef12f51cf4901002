-- target: aiact
-- Retention, erasure and audit jobs (retention/): structured audit results, a view of erasure
-- receipts, the source tier of each usage aggregate, and a deduplication window on the ledger.

-- retention.ledger appends with insert_deduplication_token 'ledger-<seq>': a second writer that
-- raced for the same sequence number is skipped by ClickHouse and retries on the new head, so the
-- chain never forks. The window must cover more appends than can happen while one writer waits.
ALTER TABLE {aiact_db}.ledger{on_cluster} MODIFY SETTING non_replicated_deduplication_window = 10000;

-- The tier database an aggregate was computed from, so aggregation of several tiers is idempotent.
ALTER TABLE {aiact_db}.usage_daily{on_cluster} ADD COLUMN IF NOT EXISTS source_database LowCardinality(String) DEFAULT '' CODEC(ZSTD(1));

-- One row per check and audit run, for dashboards; the same result is hash-chained in the ledger.
CREATE TABLE IF NOT EXISTS {aiact_db}.audit_results{on_cluster}
(
    timestamp DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    run_id String CODEC(ZSTD(1)),
    check_name LowCardinality(String) CODEC(ZSTD(1)),
    status LowCardinality(String) CODEC(ZSTD(1)),
    findings UInt64 CODEC(ZSTD(1)),
    summary String CODEC(ZSTD(1)),
    evidence String CODEC(ZSTD(1)),
    ledger_seq UInt64 CODEC(ZSTD(1))
)
ENGINE = {replicated}MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (check_name, timestamp)
TTL toDateTime(timestamp) + INTERVAL {aiact_ttl_years} YEAR DELETE
SETTINGS ttl_only_drop_parts = 1;

-- Erasure receipts as the ledger holds them: a keyed hash of the subject, never the identifier.
CREATE VIEW IF NOT EXISTS {aiact_db}.erasure_receipts{on_cluster} AS
SELECT
    seq,
    timestamp,
    actor,
    JSONExtractString(payload, 'subject_hmac') AS subject_hmac,
    JSONExtractUInt(payload, 'rows_deleted') AS rows_deleted,
    JSONExtractUInt(payload, 'rows_remaining') AS rows_remaining,
    JSONExtractBool(payload, 'complete') AS complete,
    JSONExtractRaw(payload, 'tables') AS tables,
    hash
FROM {aiact_db}.ledger
WHERE action = 'erasure';
