-- The status machine: every cell of the default transition table, through
-- set_status and through a direct UPDATE; reasons, "until", no-ops, edits
-- of userlife.transitions taking effect at once.
\set SHOW_CONTEXT never
CREATE FUNCTION pg_temp.try_status(p_from userlife.user_status, p_to userlife.user_status,
                                   p_reason text, p_direct boolean)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	ext text := format('m-%s-%s-%s-%s', p_from, p_to, coalesce(p_reason, 'none'), p_direct);
	got userlife.user_status;
BEGIN
	PERFORM userlife.register_user('acme', ext);
	IF p_from <> 'active' THEN
		PERFORM userlife.set_status('acme', ext, p_from, 'setup');
	END IF;
	IF p_direct THEN
		UPDATE userlife.users SET status = p_to, status_reason = p_reason
		 WHERE partner = 'acme' AND external_id = ext;
	ELSE
		PERFORM userlife.set_status('acme', ext, p_to, p_reason);
	END IF;
	SELECT status INTO got FROM userlife.users WHERE partner = 'acme' AND external_id = ext;
	RETURN CASE WHEN got = p_to THEN 'ok' ELSE 'stayed ' || got END;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;

-- ok: allowed; 22023: a reason is required; UL001: not allowed
SELECT f AS from_status, t AS to_status,
       pg_temp.try_status(f, t, NULL, false) AS fn_no_reason,
       pg_temp.try_status(f, t, 'because', false) AS fn_reason,
       pg_temp.try_status(f, t, NULL, true) AS update_no_reason,
       pg_temp.try_status(f, t, 'because', true) AS update_reason
  FROM unnest(enum_range(NULL::userlife.user_status)) f,
       unnest(enum_range(NULL::userlife.user_status)) t
 WHERE f <> 'deleted'
 ORDER BY f, t;

-- the messages
SELECT external_id FROM userlife.register_user('acme', 's-1');
SELECT userlife.set_status('acme', 's-1', 'blocked');
\echo :LAST_ERROR_SQLSTATE
SELECT status, status_reason, version FROM userlife.set_status('acme', 's-1', 'blocked', 'chargebacks');
SELECT userlife.set_status('acme', 's-1', 'suspended', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('acme', 's-1', 'deleted');
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET status = 'inactive' WHERE external_id = 's-1';
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET status = 'deleted' WHERE external_id = 's-1';
\echo :LAST_ERROR_SQLSTATE
-- userlife.reason stands in for a missing reason
SET userlife.reason = 'appeal granted';
SELECT status, status_reason FROM userlife.enable_user('acme', 's-1');
RESET userlife.reason;
SELECT reason FROM userlife.audit WHERE external_id = 's-1' ORDER BY audit_id DESC LIMIT 1;

-- setting the status a user has is a no-op: same row, no audit row, no event
SELECT version AS v_before FROM userlife.get_user('acme', 's-1') \gset
SELECT count(*) AS audit_before FROM userlife.audit WHERE external_id = 's-1' \gset
SELECT status, version = :v_before AS same_version FROM userlife.set_status('acme', 's-1', 'active', 'again');
SELECT status, version = :v_before AS same_version FROM userlife.enable_user('acme', 's-1');
UPDATE userlife.users SET status = 'active' WHERE external_id = 's-1';
SELECT count(*) - :audit_before AS new_audit_rows FROM userlife.audit WHERE external_id = 's-1';

-- disable_user and the status columns
SELECT status, status_reason, status_changed_at = now() AS changed_now
  FROM userlife.disable_user('acme', 's-1', 'vacation');

-- suspension with an end
SELECT status, suspended_until > now() AS has_end
  FROM userlife.set_status('acme', 's-1', 'suspended', 'cool-off', now() + interval '1 day');
SELECT status, suspended_until IS NULL AS end_cleared FROM userlife.enable_user('acme', 's-1');
SELECT userlife.set_status('acme', 's-1', 'inactive', 'x', now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('acme', 's-1', 'suspended', 'x', now() - interval '1 second');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('acme', 's-1', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('acme', 'nobody', 'inactive');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('acme', 's-1', 'sleeping');
\echo :LAST_ERROR_SQLSTATE

-- columns that identify a user cannot be changed, even directly
UPDATE userlife.users SET partner = 'gamma' WHERE external_id = 's-1';
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET user_id = gen_random_uuid() WHERE external_id = 's-1';
\echo :LAST_ERROR_SQLSTATE

-- editing the rules applies at once
SELECT status FROM userlife.set_status('acme', 's-1', 'blocked', 'abuse');
SELECT userlife.disable_user('acme', 's-1');
\echo :LAST_ERROR_SQLSTATE
INSERT INTO userlife.transitions VALUES ('blocked', 'inactive', true);
SELECT userlife.disable_user('acme', 's-1');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM userlife.disable_user('acme', 's-1', 'appeal');
DELETE FROM userlife.transitions WHERE from_status = 'blocked' AND to_status = 'inactive';
SELECT status FROM userlife.set_status('acme', 's-1', 'blocked', 'again');
SELECT userlife.disable_user('acme', 's-1', 'appeal');
\echo :LAST_ERROR_SQLSTATE
-- inserting a rule that exists updates it (what a restored dump does)
INSERT INTO userlife.transitions VALUES ('active', 'inactive', true);
SELECT requires_reason FROM userlife.transitions WHERE from_status = 'active' AND to_status = 'inactive';
UPDATE userlife.transitions SET requires_reason = false WHERE from_status = 'active' AND to_status = 'inactive';
-- rules about deleted belong to the lifecycle functions
INSERT INTO userlife.transitions VALUES ('deleted', 'active', false);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rules FROM userlife.transitions;

-- the fraud flag is independent of status
SELECT status, is_fraudulent, version FROM userlife.register_user('acme', 'f-1');
SELECT status, is_fraudulent, version FROM userlife.set_fraud_flag('acme', 'f-1', true, 'card testing');
SELECT status, is_fraudulent, version FROM userlife.set_fraud_flag('acme', 'f-1', true);
SELECT status, is_fraudulent, version FROM userlife.set_status('acme', 'f-1', 'flagged');
SELECT status, is_fraudulent, version FROM userlife.set_fraud_flag('acme', 'f-1', false, 'false positive');
SELECT userlife.set_fraud_flag('acme', 'f-1', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT action, reason, changed_fields FROM userlife.audit WHERE external_id = 'f-1' ORDER BY audit_id;
SELECT event_type, payload->'changed_fields' AS changed FROM userlife.events
 WHERE payload->>'external_id' = 'f-1' ORDER BY event_id;
