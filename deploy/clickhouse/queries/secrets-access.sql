-- Every request that touched Secrets (any verb, allowed or not) in a window, oldest first.
-- Response bodies are masked before they are stored; this shows who asked and what they got back.
-- Parameters: {from:DateTime64(6)}, {to:DateTime64(6)}
SELECT
    toString(time) AS event_time, subject, session_id, request_id, verb, namespace, name, effect, rule_ids,
    approval_id, response_status, response_outcome, response_bytes
FROM {{database}}.requests FINAL
WHERE api_group = '' AND resource = 'secrets'
  AND time >= {from:DateTime64(6)} AND time < {to:DateTime64(6)}
ORDER BY time_us;
