-- Approvals and rejections decided by one approver, with what they unlocked.
-- Parameters: {approver:String}, {from:DateTime64(6)}, {to:DateTime64(6)}
SELECT
    toString(a.time) AS event_time, a.action, a.approval_id, a.reason, a.rule_id,
    a.requester_subject, a.requester_session_id, a.fingerprint
FROM {{database}}.approvals AS a FINAL
WHERE a.actor = {approver:String}
  AND a.action IN ('approved', 'rejected')
  AND a.time >= {from:DateTime64(6)} AND a.time < {to:DateTime64(6)}
ORDER BY a.time_us;
