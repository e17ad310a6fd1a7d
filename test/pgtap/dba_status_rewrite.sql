-- A DBA's BEFORE trigger on userlife.users that rewrites the status during a
-- userlife function's write (update_user, register_user, set_status) is
-- checked against userlife.transitions on the final row: only
-- delete_user, restore_user and re-enrollment move a user into or out of
-- 'deleted', and a rule's reason stays required.  The trigger forces the
-- status named in metadata->>'force' (update_user), or in the setting
-- dba.force (set_status).
BEGIN;
SELECT plan(9);

SELECT lives_ok($$SELECT userlife.create_partner('dbarw')$$, 'partner');
SELECT lives_ok($$SELECT userlife.register_user('dbarw', u) FROM unnest(ARRAY['a1', 'a2', 'a3']) u$$,
                'users');

CREATE FUNCTION pg_temp.dba_force() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.metadata ? 'force' THEN
		NEW.status := (NEW.metadata->>'force')::userlife.user_status;
	ELSIF coalesce(current_setting('dba.force', true), '') <> '' THEN
		NEW.status := current_setting('dba.force')::userlife.user_status;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER a_dba_force BEFORE INSERT OR UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.dba_force();

SET LOCAL userlife.reason = '';

SELECT throws_ok($$SELECT userlife.update_user('dbarw', 'a1', metadata => '{"force": "deleted"}')$$,
                 'UL001',
                 'status transition of user "a1" of partner "dbarw" from "active" to "deleted" is not allowed',
                 'update_user: a trigger cannot move a user into deleted');
SELECT throws_ok($$SELECT userlife.update_user('dbarw', 'a1', metadata => '{"force": "blocked"}')$$,
                 '22023',
                 'a reason is required for the status transition of user "a1" of partner "dbarw" from "active" to "blocked"',
                 'update_user: the rule''s reason is still required');
SELECT throws_ok($$SELECT userlife.register_user('dbarw', 'n1', metadata => '{"force": "deleted"}')$$,
                 '22023', 'a new user cannot have status "deleted"',
                 'register_user: a trigger cannot insert a deleted user');

SELECT lives_ok($$SELECT userlife.set_status('dbarw', 'a2', 'suspended')$$, 'a2 suspended');
SET LOCAL dba.force = 'deleted';
SELECT throws_ok($$SELECT userlife.set_status('dbarw', 'a2', 'active')$$,
                 'UL001',
                 'status transition of user "a2" of partner "dbarw" from "suspended" to "deleted" is not allowed',
                 'set_status: the status written is checked, not only the one asked for');
SET LOCAL dba.force = '';

SELECT is((SELECT array_agg(status::text ORDER BY external_id) FROM userlife.users WHERE partner = 'dbarw'),
          ARRAY['active', 'suspended', 'active'], 'no status changed outside the rules');
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = 'dbarw' AND status = 'deleted'),
          0::bigint, 'no deleted user without delete_user');

SELECT * FROM finish();
ROLLBACK;
