-- target: tier
-- The collectors' heartbeats: metric rows named sovtel_* (written by the heartbeat receiver) are
-- copied into pipeline_health, one row per sample, so gaps per node can be audited in SQL.

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.pipeline_health_mv{on_cluster} TO {db}.pipeline_health AS
SELECT
    timestamp,
    node,
    attributes['component'] AS component,
    attributes['signal'] AS signal,
    metric_name AS metric,
    value
FROM {db}.metrics
WHERE startsWith(metric_name, 'sovtel_');
