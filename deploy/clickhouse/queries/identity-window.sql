-- Everything one identity did in a time window (UTC), oldest first.
-- Parameters: {subject:String}, {from:DateTime64(6)}, {to:DateTime64(6)}
--   e.g. subject = 'system:serviceaccount:agents:claude', from = '2026-11-01 00:00:00', to = '2026-12-01 00:00:00'
SELECT
    toString(time) AS event_time, session_id, request_id, verb, api_group, resource, subresource, namespace, name,
    effect, rule_ids, approval_id, response_status, response_outcome
FROM {{database}}.requests FINAL
WHERE subject = {subject:String}
  AND time >= {from:DateTime64(6)} AND time < {to:DateTime64(6)}
ORDER BY time_us;
