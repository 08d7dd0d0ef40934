-- Airlock audit: one row per approval event (created, approved, rejected, expired, consumed).
-- Shares the hash chain of `requests` (same gateway_instance/chain_id sequence).
CREATE TABLE IF NOT EXISTS {{database}}.approvals
(
    time_us              UInt64,
    time                 DateTime64(6, 'UTC') MATERIALIZED fromUnixTimestamp64Micro(toInt64(time_us), 'UTC'),
    approval_id          String,
    action               LowCardinality(String),
    actor                LowCardinality(String),
    reason               String CODEC(ZSTD(3)),
    fingerprint          String,
    requester_subject    LowCardinality(String),
    requester_session_id String,
    rule_id              LowCardinality(String),
    gateway_instance     LowCardinality(String),
    chain_id             LowCardinality(String),
    chain_seq            UInt64,
    prev_hash            String,
    hash                 String,
    INDEX idx_actor actor TYPE bloom_filter GRANULARITY 4,
    INDEX idx_session requester_session_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (approval_id, time_us, chain_id, chain_seq)
TTL toDateTime(time) + toIntervalDay({{retention_days}})
SETTINGS non_replicated_deduplication_window = 10000;
