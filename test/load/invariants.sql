-- test/load/invariants.sql — what must hold after any load, crash or not.
-- Prints one line "name|violations" per invariant.
SELECT 'audit chain of every user verifies', count(*) FILTER (WHERE NOT userlife.verify_audit(partner, external_id))
  FROM userlife.users WHERE partner = 'inv';
SELECT 'version equals the number of audited changes', count(*)
  FROM userlife.users u
  LEFT JOIN (SELECT user_id, count(*) AS changes FROM userlife.audit WHERE partner = 'inv' GROUP BY user_id) a USING (user_id)
 WHERE u.partner = 'inv' AND u.version IS DISTINCT FROM a.changes;
SELECT 'replaying the audit gives the current status', count(*)
  FROM userlife.users u
 WHERE partner = 'inv' AND status::text IS DISTINCT FROM (
	SELECT a.new_values->>'status' FROM userlife.audit a
	 WHERE a.user_id = u.user_id AND a.changed_fields @> '{status}' ORDER BY a.audit_id DESC LIMIT 1);
SELECT 'replaying the audit gives the current fraud flag', count(*)
  FROM userlife.users u
 WHERE partner = 'inv' AND is_fraudulent IS DISTINCT FROM coalesce((
	SELECT (a.new_values->>'is_fraudulent')::boolean FROM userlife.audit a
	 WHERE a.user_id = u.user_id AND a.changed_fields @> '{is_fraudulent}' ORDER BY a.audit_id DESC LIMIT 1), false);
SELECT 'every audit row has exactly one event', count(*)
  FROM (SELECT a.audit_id FROM userlife.audit a LEFT JOIN userlife.events e USING (audit_id)
         WHERE a.partner = 'inv' GROUP BY a.audit_id HAVING count(e.event_id) <> 1) x;
SELECT 'every event belongs to an audit row', count(*)
  FROM userlife.events e LEFT JOIN userlife.audit a USING (audit_id)
 WHERE e.partner = 'inv' AND a.audit_id IS NULL;
SELECT 'the users row keeps the head of its chain', count(*)
  FROM userlife.users u
 WHERE partner = 'inv' AND version > 1 AND audit_head IS DISTINCT FROM (
	SELECT a.row_hash FROM userlife.audit a WHERE a.user_id = u.user_id ORDER BY a.audit_id DESC LIMIT 1);
