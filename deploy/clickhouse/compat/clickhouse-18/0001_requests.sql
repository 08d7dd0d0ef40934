-- The `requests` and `approvals` tables for ClickHouse servers too old for the production DDL (e.g. Debian's
-- 18.16: no DateTime64, LowCardinality, CODEC, TTL, skip indexes or insert_deduplication_token). Same
-- columns and JSONEachRow payload, so the sink's network path runs unchanged; used by the server tests.
-- Retried batches collapse through the ReplacingMergeTree key: count with FINAL.
CREATE DATABASE IF NOT EXISTS {{database}};

CREATE TABLE IF NOT EXISTS {{database}}.requests
(
    time_us UInt64,
    time DateTime MATERIALIZED toDateTime(intDiv(time_us, 1000000)),
    session_id String, request_id String, decision_id String, subject String, groups Array(String),
    workload_identity String, method String, verb String, api_group String, api_version String,
    resource String, subresource String, namespace String, name String, path String, effect String,
    rule_ids Array(String), policy_version String, approval_id String, reason String,
    request_headers String, request_body String, request_body_truncated UInt8,
    response_status UInt16, response_body String, response_truncated UInt8, response_outcome String,
    request_bytes UInt64, response_bytes UInt64, check_latency_us UInt64, upstream_latency_us UInt64,
    gateway_instance String, chain_id String, chain_seq UInt64, prev_hash String, hash String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (session_id, time_us, chain_id, chain_seq);

CREATE TABLE IF NOT EXISTS {{database}}.approvals
(
    time_us UInt64,
    time DateTime MATERIALIZED toDateTime(intDiv(time_us, 1000000)),
    approval_id String, action String, actor String, reason String, fingerprint String,
    requester_subject String, requester_session_id String, rule_id String,
    gateway_instance String, chain_id String, chain_seq UInt64, prev_hash String, hash String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (approval_id, time_us, chain_id, chain_seq);
