-- The write context (issue "Trust" defect 12): what a userlife function tells
-- the users triggers survives a DBA trigger's exception block, nests when a
-- DBA trigger calls a userlife function, never lends itself to a direct
-- statement a DBA trigger runs inside the function's write, and leaves
-- nothing behind when a caller's savepoint or exception block catches a
-- failed call.
BEGIN;
SELECT plan(35);

SELECT lives_ok($$SELECT userlife.create_partner('wctx')$$, 'partner');
SELECT lives_ok($$SELECT userlife.register_user('wctx', u) FROM unnest(ARRAY['e1', 'e2', 'n1', 'n2', 'n3', 'd1', 'r1', 'x1', 's1']) u$$,
                'users');

-- the audit row a change just wrote
CREATE FUNCTION pg_temp.last_audit(ext text) RETURNS TABLE (action text, reason text, db_role text, actor text)
LANGUAGE sql AS $$
	SELECT a.action, a.reason, a.db_role, a.actor FROM userlife.audit a
	WHERE a.partner = 'wctx' AND a.external_id = ext ORDER BY a.audit_id DESC LIMIT 1
$$;

------------------------------------------------------------------------
-- a DBA's BEFORE UPDATE trigger whose exception block catches an error
------------------------------------------------------------------------
CREATE FUNCTION pg_temp.dba_catch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	BEGIN
		PERFORM 1 / 0;
	EXCEPTION WHEN division_by_zero THEN
		NULL;
	END;
	RETURN NEW;
END
$$;
CREATE TRIGGER a_dba_catch BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_catch();

SELECT lives_ok($$SELECT userlife.set_status('wctx', 'e1', 'blocked', 'reason given')$$,
                'caught error in a DBA trigger: set_status with a reason still works');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('e1')$$,
                  $$VALUES ('status'::text, 'reason given'::text)$$, 'audited with its action and reason');
SELECT lives_ok($$SELECT userlife.delete_user('wctx', 'e1', 'gone')$$,
                'caught error in a DBA trigger: delete_user still works');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('e1')$$,
                  $$VALUES ('delete'::text, 'gone'::text)$$, 'audited as delete with its reason');
SELECT lives_ok($$SELECT userlife.restore_user('wctx', 'e1', 'back')$$, 'and restore_user');
SELECT lives_ok($$SELECT userlife.set_fraud_flag('wctx', 'e2', true, 'ring')$$, 'and set_fraud_flag');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('e2')$$,
                  $$VALUES ('fraud_flag'::text, 'ring'::text)$$, 'audited as fraud_flag with its reason');
SELECT throws_ok($$UPDATE userlife.users SET status = 'deleted' WHERE partner = 'wctx' AND external_id = 'e2'$$,
                 'UL001', NULL, 'a direct UPDATE to deleted is still refused');
DROP TRIGGER a_dba_catch ON userlife.users;

------------------------------------------------------------------------
-- a DBA trigger that itself calls userlife functions
------------------------------------------------------------------------
CREATE FUNCTION pg_temp.dba_nest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.partner = 'wctx' AND NEW.external_id = 'n1' AND OLD.status IS DISTINCT FROM NEW.status THEN
		PERFORM userlife.set_fraud_flag('wctx', 'n2', NOT (SELECT is_fraudulent FROM userlife.users
			WHERE partner = 'wctx' AND external_id = 'n2'), 'nested reason');
		PERFORM userlife.set_status('wctx', 'n3', 'suspended', 'nested suspension');
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER a_dba_nest BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_nest();

SELECT lives_ok($$SELECT userlife.set_status('wctx', 'n1', 'blocked', 'outer reason')$$,
                'a trigger calling userlife functions inside set_status');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('n1')$$,
                  $$VALUES ('status'::text, 'outer reason'::text)$$, 'the outer change keeps its reason');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('n2')$$,
                  $$VALUES ('fraud_flag'::text, 'nested reason'::text)$$, 'the nested fraud flag has its own');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('n3')$$,
                  $$VALUES ('status'::text, 'nested suspension'::text)$$, 'the nested status change has its own');
SELECT lives_ok($$SELECT userlife.delete_user('wctx', 'n1', 'outer delete')$$,
                'a trigger calling userlife functions inside delete_user');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('n1')$$,
                  $$VALUES ('delete'::text, 'outer delete'::text)$$, 'the deletion keeps its action and reason');
SELECT is((SELECT status::text FROM userlife.users WHERE partner = 'wctx' AND external_id = 'n1'), 'deleted',
          'and the user is deleted');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = 'wctx' AND external_id = 'n2' AND action = 'fraud_flag'),
          2::bigint, 'each nested call audited once');
DROP TRIGGER a_dba_nest ON userlife.users;

-- after an INSERT: the registration's audit row still names its caller
CREATE ROLE wctx_dev IN ROLE userlife_developer;
SELECT userlife.bind_partner('wctx_dev', 'wctx');
CREATE FUNCTION pg_temp.dba_nest_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.partner = 'wctx' AND NEW.external_id = 'i1' THEN
		PERFORM userlife.set_fraud_flag('wctx', 'n2', NOT (SELECT is_fraudulent FROM userlife.users
			WHERE partner = 'wctx' AND external_id = 'n2'), 'flag on register');
	END IF;
	RETURN NULL;
END
$$;
CREATE TRIGGER a_dba_nest_insert AFTER INSERT ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_nest_insert();
SET LOCAL ROLE wctx_dev;
SELECT lives_ok($$SELECT userlife.register_user('wctx', 'i1')$$, 'a trigger calling a userlife function after register');
RESET ROLE;
SELECT results_eq($$SELECT action, db_role FROM pg_temp.last_audit('i1')$$,
                  $$VALUES ('register'::text, 'wctx_dev'::text)$$, 'the registration names its caller');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('n2')$$,
                  $$VALUES ('fraud_flag'::text, 'flag on register'::text)$$, 'the nested change has its own reason');
DROP TRIGGER a_dba_nest_insert ON userlife.users;

-- inside a signed request: the request's actor is not lent to the nested call
SELECT length(userlife.issue_api_key('wctx')) > 0;
CREATE FUNCTION pg_temp.dba_nest_signed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.partner = 'wctx' AND NEW.external_id = 's1' AND OLD.status IS DISTINCT FROM NEW.status THEN
		PERFORM userlife.set_fraud_flag('wctx', 'n2', NOT (SELECT is_fraudulent FROM userlife.users
			WHERE partner = 'wctx' AND external_id = 'n2'), 'nested in a request');
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER a_dba_nest_signed BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_nest_signed();
SELECT lives_ok($$SELECT userlife.enrollee_request(
	jsonb_build_object('partner_id', 'wctx', 'user_id', 's1', 'environment', 'production',
	                   'email', 'ops@wctx.test', 'active', false)
	|| userlife.generate_signature('wctx', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))$$,
                'a signed request whose write fires a trigger calling a userlife function');
SELECT results_eq($$SELECT action, actor FROM pg_temp.last_audit('s1')$$,
                  $$VALUES ('status'::text, 'ops@wctx.test'::text)$$, 'the request''s change records its actor');
SELECT results_eq($$SELECT reason, actor FROM pg_temp.last_audit('n2')$$,
                  $$VALUES ('nested in a request'::text, NULL::text)$$, 'the nested change does not');
DROP TRIGGER a_dba_nest_signed ON userlife.users;

------------------------------------------------------------------------
-- a direct statement a DBA trigger runs during a function's write is direct
------------------------------------------------------------------------
CREATE FUNCTION pg_temp.dba_direct() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.partner = 'wctx' AND NEW.external_id = 'd1' AND OLD.status IS DISTINCT FROM NEW.status THEN
		UPDATE userlife.users SET status = NEW.status WHERE partner = 'wctx' AND external_id = 'x1';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER a_dba_direct BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_direct();
SELECT throws_ok($$SELECT userlife.delete_user('wctx', 'd1', 'only d1')$$, 'UL001', NULL,
                 'a direct UPDATE inside delete_user does not borrow its right to delete');
SELECT throws_ok($$SELECT userlife.set_status('wctx', 'd1', 'blocked', 'only d1')$$, '22023', NULL,
                 'nor its reason');
SELECT lives_ok($$SELECT userlife.set_status('wctx', 'd1', 'suspended', 'only d1')$$,
                'a direct change the rules allow goes through');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('x1')$$,
                  $$VALUES ('status'::text, NULL::text)$$, 'audited as the direct statement it is');
DROP TRIGGER a_dba_direct ON userlife.users;

------------------------------------------------------------------------
-- the caller's own savepoints and exception blocks
------------------------------------------------------------------------
CREATE FUNCTION pg_temp.dba_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.partner = 'wctx' AND OLD.external_id = 'r1' THEN
		RAISE EXCEPTION 'refused by the DBA' USING ERRCODE = 'P0001';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER a_dba_refuse BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_refuse();

-- throws_ok runs the call in a subtransaction that it rolls back
SELECT throws_ok($$SELECT userlife.delete_user('wctx', 'r1', 'stale reason')$$, 'P0001', NULL,
                 'delete_user fails inside its write');
SELECT throws_ok($$UPDATE userlife.users SET status = 'deleted' WHERE partner = 'wctx' AND external_id = 'x1'$$,
                 'UL001', NULL, 'the next direct UPDATE does not inherit the failed deletion');
SELECT throws_ok($$SELECT userlife.set_status('wctx', 'r1', 'blocked', 'stale reason')$$, 'P0001', NULL,
                 'set_status fails inside its write');
SELECT throws_ok($$UPDATE userlife.users SET status = 'blocked' WHERE partner = 'wctx' AND external_id = 'x1'$$,
                 '22023', NULL, 'the next direct UPDATE does not inherit the failed call''s reason');

DO $$
BEGIN
	BEGIN
		PERFORM userlife.set_fraud_flag('wctx', 'r1', true, 'stale reason');
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
	UPDATE userlife.users SET display_name = 'direct' WHERE partner = 'wctx' AND external_id = 'x1';
END
$$;
SELECT results_eq($$SELECT action, reason, db_role FROM pg_temp.last_audit('x1')$$,
                  $$VALUES ('update'::text, NULL::text, current_user::text COLLATE "default")$$,
                  'after a caught failure in an exception block, a direct UPDATE is audited as direct');

SAVEPOINT before_call;
SELECT userlife.set_status('wctx', 'x1', 'inactive', 'rolled back');
ROLLBACK TO SAVEPOINT before_call;
SELECT lives_ok($$SELECT userlife.set_status('wctx', 'x1', 'blocked', 'after the savepoint')$$,
                'a call after a rolled-back savepoint');
SELECT results_eq($$SELECT action, reason FROM pg_temp.last_audit('x1')$$,
                  $$VALUES ('status'::text, 'after the savepoint'::text)$$, 'is audited with its own reason');
DROP TRIGGER a_dba_refuse ON userlife.users;

SELECT * FROM finish();
ROLLBACK;
