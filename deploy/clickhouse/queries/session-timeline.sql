-- Session timeline: every request of one agent session, in order.
-- Parameters: {session_id:String}. Used by `airlock replay SESSION`.
-- FINAL collapses a batch that was retried against a server without insert deduplication.
-- The second condition picks up exchange-only rows (effect 'Unknown', no session) whose decision was
-- recorded by another replica for this session; the transcript prints the two halves as one request.
SELECT
    time_us,
    toString(time) AS time,
    request_id, decision_id, subject, groups, workload_identity,
    method, verb, api_group, api_version, resource, subresource, namespace, name, path,
    effect, rule_ids, policy_version, approval_id, reason,
    response_status, response_outcome, response_truncated, request_bytes, response_bytes,
    check_latency_us, upstream_latency_us, gateway_instance
FROM {{database}}.requests FINAL
WHERE session_id = {session_id:String}
   OR (session_id = '' AND decision_id IN (
        SELECT decision_id FROM {{database}}.requests WHERE session_id = {session_id:String}))
ORDER BY time_us, chain_id, chain_seq;
