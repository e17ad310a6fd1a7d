-- The lifecycle functions check a status change before they write (issue 16,
-- "one-way write path"): a change the rules refuse never reaches the table,
-- so no trigger of a DBA's on userlife.users fires for it; a direct
-- statement is still checked by the users trigger, with the same errors.
-- A DBA's BEFORE UPDATE trigger counts its calls in a sequence, which a
-- rollback does not undo.
BEGIN;
SELECT plan(16);

SELECT lives_ok($$SELECT userlife.create_partner('tfirst')$$, 'partner');
SELECT lives_ok($$SELECT userlife.register_user('tfirst', u) FROM unnest(ARRAY['a1', 'a2', 'd1']) u$$,
                'users');
SELECT lives_ok($$SELECT userlife.delete_user('tfirst', 'd1', 'gone')$$, 'd1 deleted');

CREATE SEQUENCE pg_temp.dba_calls;
CREATE FUNCTION pg_temp.dba_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM nextval('pg_temp.dba_calls');
	RETURN NEW;
END
$$;
CREATE TRIGGER a_dba_count BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_count();
CREATE FUNCTION pg_temp.calls() RETURNS bigint LANGUAGE sql AS $$
	SELECT last_value - CASE WHEN is_called THEN 0 ELSE 1 END FROM pg_temp.dba_calls
$$;

SET LOCAL userlife.reason = '';

-- no rule: blocked -> suspended does not exist by default
SELECT lives_ok($$SELECT userlife.set_status('tfirst', 'a1', 'blocked', 'fraud')$$, 'a1 blocked');
SELECT is(pg_temp.calls(), 1::bigint, 'the allowed change went through the DBA trigger once');
SELECT throws_ok($$SELECT userlife.set_status('tfirst', 'a1', 'suspended')$$, 'UL001',
                 'status transition of user "a1" of partner "tfirst" from "blocked" to "suspended" is not allowed',
                 'a change without a rule is refused');
SELECT is(pg_temp.calls(), 1::bigint, 'refused before the write: the DBA trigger did not fire');

-- a rule that needs a reason, called without one
SELECT throws_ok($$SELECT userlife.set_status('tfirst', 'a2', 'blocked')$$, '22023',
                 'a reason is required for the status transition of user "a2" of partner "tfirst" from "active" to "blocked"',
                 'a change that needs a reason is refused without one');
SELECT is(pg_temp.calls(), 1::bigint, 'refused before the write: the DBA trigger did not fire');

-- out of deleted: only restore_user and re-enrollment
SELECT throws_ok($$SELECT userlife.set_status('tfirst', 'd1', 'active')$$, 'UL001',
                 'status transition of user "d1" of partner "tfirst" from "deleted" to "active" is not allowed',
                 'leaving deleted through set_status is refused');
SELECT is(pg_temp.calls(), 1::bigint, 'refused before the write: the DBA trigger did not fire');

-- the same status: the row as it is, nothing written
SELECT is((SELECT (userlife.set_status('tfirst', 'a1', 'blocked', 'again')).status::text), 'blocked',
          'setting the status a user has returns the row');
SELECT is(pg_temp.calls(), 1::bigint, 'and writes nothing');

-- a direct statement is checked by the users trigger, with the same error
SELECT throws_ok($$UPDATE userlife.users SET status = 'suspended' WHERE partner = 'tfirst' AND external_id = 'a1'$$,
                 'UL001', 'status transition of user "a1" of partner "tfirst" from "blocked" to "suspended" is not allowed',
                 'a direct UPDATE without a rule is refused by the trigger');
SELECT throws_ok($$UPDATE userlife.users SET status = 'blocked' WHERE partner = 'tfirst' AND external_id = 'a2'$$,
                 '22023', 'a reason is required for the status transition of user "a2" of partner "tfirst" from "active" to "blocked"',
                 'a direct UPDATE that needs a reason is refused by the trigger');
SELECT throws_ok($$INSERT INTO userlife.users (user_id, partner, external_id, status)
                   VALUES (gen_random_uuid(), 'tfirst', 'n1', 'blocked')$$,
                 '22023', 'a new user cannot have status "blocked"',
                 'a direct INSERT of a blocked user is refused by the trigger');

SELECT * FROM finish();
ROLLBACK;
