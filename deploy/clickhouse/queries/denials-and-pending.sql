-- All denied, unauthenticated, failed and approval-pending requests in a window, newest first.
-- Parameters: {from:DateTime64(6)}, {to:DateTime64(6)}
SELECT
    toString(time) AS event_time, subject, session_id, request_id, effect, rule_ids, reason, approval_id,
    verb, api_group, resource, subresource, namespace, name, path
FROM {{database}}.requests FINAL
WHERE effect IN ('Deny', 'RequireApproval', 'Unauthenticated', 'Error')
  AND time >= {from:DateTime64(6)} AND time < {to:DateTime64(6)}
ORDER BY time_us DESC;
