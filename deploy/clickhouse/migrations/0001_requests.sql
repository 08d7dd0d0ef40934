-- Airlock audit: one row per Kubernetes API request seen by the gateway (decision merged with its exchange).
-- Applied by the sink at start (versioned, idempotent); {{database}} and {{retention_days}} are filled in
-- from the audit config. Rows are only ever appended; the ReplacingMergeTree key collapses a retried batch
-- that an old server could not deduplicate with insert_deduplication_token.
CREATE DATABASE IF NOT EXISTS {{database}};

CREATE TABLE IF NOT EXISTS {{database}}.requests
(
    -- Event time in microseconds since the epoch (UTC); `time` is derived for partitioning and queries.
    time_us                UInt64,
    time                   DateTime64(6, 'UTC') MATERIALIZED fromUnixTimestamp64Micro(toInt64(time_us), 'UTC'),
    session_id             String,
    request_id             String,
    decision_id            String,
    subject                LowCardinality(String),
    groups                 Array(LowCardinality(String)),
    workload_identity      LowCardinality(String),
    method                 LowCardinality(String),
    verb                   LowCardinality(String),
    api_group              LowCardinality(String),
    api_version            LowCardinality(String),
    resource               LowCardinality(String),
    subresource            LowCardinality(String),
    namespace              LowCardinality(String),
    name                   String,
    path                   String CODEC(ZSTD(3)),
    -- Allow | Deny | RequireApproval | Unauthenticated | Error | Unknown (exchange without a decision here)
    effect                 LowCardinality(String),
    rule_ids               Array(LowCardinality(String)),
    policy_version         LowCardinality(String),
    approval_id            String,
    reason                 String CODEC(ZSTD(3)),
    -- Masked before the sink; credentials are replaced by [REDACTED].
    request_headers        String CODEC(ZSTD(3)),
    request_body           String CODEC(ZSTD(3)),
    request_body_truncated UInt8,
    response_status        UInt16,
    response_body          String CODEC(ZSTD(3)),
    response_truncated     UInt8,
    -- complete | blocked | aborted | missing (allowed, no response recorded) | not_forwarded
    response_outcome       LowCardinality(String),
    request_bytes          UInt64,
    response_bytes         UInt64,
    check_latency_us       UInt64,
    upstream_latency_us    UInt64,
    -- Tamper evidence: hash = sha256(prev_hash || '\n' || canonical row), chained per (gateway_instance, chain_id).
    gateway_instance       LowCardinality(String),
    chain_id               LowCardinality(String),
    chain_seq              UInt64,
    prev_hash              String,
    hash                   String,
    INDEX idx_subject subject TYPE bloom_filter GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_resource resource TYPE set(256) GRANULARITY 4,
    INDEX idx_effect effect TYPE set(16) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
-- Session replay reads one session in time order.
ORDER BY (session_id, time_us, chain_id, chain_seq)
TTL toDateTime(time) + toIntervalDay({{retention_days}})
SETTINGS non_replicated_deduplication_window = 10000;
