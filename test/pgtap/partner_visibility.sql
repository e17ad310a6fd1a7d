-- Partners per binding (SPEC §3): a role sees the partners rows of the
-- partners it is bound to only (all of them for superusers and
-- userlife_owner members).  A binding names its role by OID and by name:
-- a binding left behind by DROP ROLE is not honoured for a later role that
-- gets the same OID (simulated by pointing the row at another role's OID,
-- which is what OID reuse amounts to), run_maintenance drops it, and
-- bind_partner binds a renamed role again.
BEGIN;
SELECT plan(17);

SELECT count(userlife.create_partner(p)) AS n FROM unnest(ARRAY['pv-a', 'pv-b', 'pv-c']) p \gset
SELECT userlife.register_user('pv-b', 'b-1') IS NOT NULL AS registered \gset
CREATE ROLE pv_dev LOGIN IN ROLE userlife_developer;
CREATE ROLE pv_reader LOGIN IN ROLE userlife_reader;
CREATE ROLE pv_owner LOGIN IN ROLE userlife_owner;
CREATE ROLE pv_gone LOGIN IN ROLE userlife_developer;
CREATE ROLE pv_new LOGIN IN ROLE userlife_developer;
SELECT userlife.bind_partner('pv_dev', 'pv-a') IS NULL AS bound \gset
SELECT userlife.bind_partner('pv_dev', 'pv-c') IS NULL AS bound \gset
SELECT userlife.bind_partner('pv_gone', 'pv-b') IS NULL AS bound \gset

-- as_role(role, query): the text the query returns when run as role
CREATE FUNCTION pg_temp.as_role(r text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', r);
	EXECUTE q INTO result;
	RESET ROLE;
	RETURN result;
END
$$;
-- seen(role): the test's partners the role sees through SELECT
CREATE FUNCTION pg_temp.seen(r text) RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.as_role(r, $q$SELECT coalesce(string_agg(p.partner, ',' ORDER BY p.partner), '')
	                             FROM userlife.partners p WHERE p.partner LIKE 'pv-%'$q$)
$$;
-- outcome(role, sql): the SQLSTATE of running sql as role, or 'ok'; undone either way
CREATE FUNCTION pg_temp.outcome(r text, sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', r);
		EXECUTE sql;
		RAISE EXCEPTION USING ERRCODE = 'UL999', MESSAGE = 'undo';
	EXCEPTION WHEN OTHERS THEN
		state := CASE SQLSTATE WHEN 'UL999' THEN 'ok' ELSE SQLSTATE END;
	END;
	RETURN state;
END
$$;

SELECT is(pg_temp.seen('pv_dev'), 'pv-a,pv-c', 'a bound role sees the partners it is bound to only');
SELECT is(pg_temp.seen('pv_reader'), '', 'an unbound role sees no partner');
SELECT is(pg_temp.seen('pv_owner'), 'pv-a,pv-b,pv-c', 'userlife_owner members see every partner');
SELECT is((SELECT string_agg(partner, ',' ORDER BY partner) FROM userlife.partners WHERE partner LIKE 'pv-%'),
          'pv-a,pv-b,pv-c', 'the superuser sees every partner');
SELECT is(pg_temp.seen('pv_gone'), 'pv-b', 'the role about to be dropped sees its partner');

-- DROP ROLE leaves the binding; a role with the same OID must not inherit it
DROP ROLE pv_gone;
SELECT is((SELECT count(*) FROM userlife.partner_bindings WHERE partner = 'pv-b'), 1::bigint,
          'DROP ROLE leaves the binding row behind');
UPDATE userlife.partner_bindings SET role = 'pv_new'::regrole WHERE partner = 'pv-b';
SELECT is(pg_temp.seen('pv_new'), '', 'a later role with the dropped role''s OID does not see its partner');
SELECT is(pg_temp.outcome('pv_new', $$SELECT userlife.get_user('pv-b', 'b-1')$$), '42501',
          '... nor act on it: 42501');
SELECT is(pg_temp.as_role('pv_new', $$SELECT count(*) FROM userlife.users WHERE partner = 'pv-b'$$),
          '0', '... nor see its users');
SELECT is((userlife.run_maintenance() ->> 'bindings_dropped')::int, 1, 'run_maintenance drops the stale binding');
SELECT is((SELECT count(*) FROM userlife.partner_bindings WHERE partner = 'pv-b'), 0::bigint, 'it is gone');
SELECT lives_ok($$SELECT userlife.bind_partner('pv_new', 'pv-b')$$, 'the new role is bound on purpose');
SELECT is(pg_temp.outcome('pv_new', $$SELECT userlife.get_user('pv-b', 'b-1')$$), 'ok', 'and then acts on it');

-- a renamed role is bound again by bind_partner
ALTER ROLE pv_dev RENAME TO pv_dev_renamed;
SELECT is(pg_temp.seen('pv_dev_renamed'), '', 'a renamed role''s bindings lapse');
SELECT lives_ok($$SELECT userlife.bind_partner('pv_dev_renamed', 'pv-a')$$, 'bind_partner again');
SELECT is(pg_temp.seen('pv_dev_renamed'), 'pv-a', 'the renamed role sees the partner bound again');

-- a role OID that names no role cannot be bound
SELECT throws_ok($$SELECT userlife.bind_partner(4000000000::oid::regrole, 'pv-a')$$, '22023', NULL,
                 'binding an OID of no role: 22023');

SELECT * FROM finish();
ROLLBACK;
