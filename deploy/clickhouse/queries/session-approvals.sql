-- Approval events that belong to one session: requested by it, or referenced by one of its requests.
-- Parameters: {session_id:String}. Used by `airlock replay SESSION`.
SELECT
    time_us,
    toString(time) AS time,
    approval_id, action, actor, reason, fingerprint, requester_subject, rule_id
FROM {{database}}.approvals FINAL
WHERE requester_session_id = {session_id:String}
   OR approval_id IN (
        SELECT approval_id FROM {{database}}.requests
        WHERE session_id = {session_id:String} AND approval_id != ''
      )
ORDER BY time_us, chain_id, chain_seq;
