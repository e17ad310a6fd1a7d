-- test/load/invariants.sql — what must hold after any load, crash or not.
-- Prints one line "name|violations" per invariant.
SELECT 'audit chain of every user verifies', count(*) FILTER (WHERE NOT userlife.verify_audit(partner, external_id))
  FROM userlife.users WHERE partner = 'inv';
SELECT 'version equals the number of audited changes', count(*)
  FROM userlife.users u
 WHERE partner = 'inv' AND version <> (SELECT count(*) FROM userlife.audit a WHERE a.user_id = u.user_id);
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
  FROM userlife.audit a WHERE a.partner = 'inv'
   AND (SELECT count(*) FROM userlife.events e WHERE e.audit_id = a.audit_id) <> 1;
SELECT 'every event belongs to an audit row', count(*)
  FROM userlife.events e WHERE e.partner = 'inv'
   AND NOT EXISTS (SELECT 1 FROM userlife.audit a WHERE a.audit_id = e.audit_id);
SELECT 'the users row keeps the head of its chain', count(*)
  FROM userlife.users u
 WHERE partner = 'inv' AND version > 1 AND audit_head IS DISTINCT FROM (
	SELECT a.row_hash FROM userlife.audit a WHERE a.user_id = u.user_id ORDER BY a.audit_id DESC LIMIT 1);
