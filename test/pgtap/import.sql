-- import_users and user_summary (SPEC §5.2, §5.3): per-item isolation (a
-- write that fails is rolled back alone, across chunks), the three
-- on_conflict modes, duplicates inside the batch, parity with
-- register_user (the same users columns, audit row, chain, event, search
-- document and digest key), created_at and listing order, the role
-- matrix and tenant isolation of both functions.
BEGIN;
SELECT plan(29);

SELECT userlife.create_partner('ix') IS NOT NULL AS ix \gset
SELECT userlife.create_partner('iy') IS NOT NULL AS iy \gset
SET LOCAL userlife.actor = 'tap-importer';

-- per-item isolation: a DBA's CHECK refuses two items; the writes of the
-- chunks they are in are bisected, the other 2,498 users are created
ALTER TABLE userlife.users ADD CONSTRAINT tap_no_evil CHECK (display_name IS DISTINCT FROM 'evil');
CREATE TEMP TABLE r1 AS SELECT * FROM userlife.import_users('ix',
	(SELECT jsonb_agg(jsonb_build_object('external_id', 'iso-' || i,
		'display_name', CASE WHEN i IN (7, 1500) THEN 'evil' ELSE 'User ' || i END) ORDER BY i)
	   FROM generate_series(1, 2500) i));
SELECT is((SELECT count(*) FROM r1 WHERE result = 'created'), 2498::bigint, 'isolation: 2,498 of 2,500 users created');
SELECT results_eq($$SELECT item, sqlstate FROM r1 WHERE result = 'error' ORDER BY item$$,
	$$VALUES (7, '23514'), (1500, '23514')$$, 'isolation: the two refused items carry the CHECK''s 23514');
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = 'ix' AND external_id LIKE 'iso-%'), 2498::bigint,
	'isolation: exactly the created users are in the table');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = 'ix' AND external_id LIKE 'iso-%' AND action = 'register'),
	2498::bigint, 'isolation: one register audit row per created user, none for the refused');
SELECT ok((SELECT bool_and(item = n) FROM (SELECT item, row_number() OVER () AS n FROM r1) s),
	'results come back one per item, in input order');
ALTER TABLE userlife.users DROP CONSTRAINT tap_no_evil;

-- duplicates inside the batch: the first occurrence wins
SELECT results_eq($$SELECT item, result, sqlstate FROM userlife.import_users('ix', '[
	{"external_id": "dup-1", "email": "Dup@Example.com"},
	{"external_id": "dup-1", "email": "other@example.com"},
	{"external_id": "dup-2", "email": "dup@example.COM"},
	{"external_id": "dup-3", "email": "bad"},
	{"external_id": "dup-3"}]') ORDER BY item$$,
	$$VALUES (1, 'created', NULL::text), (2, 'error', '23505'), (3, 'error', '23505'), (4, 'error', '22023'), (5, 'created', NULL)$$,
	'in-batch duplicate ids and e-mails (case-insensitively) are 23505; a later copy of an invalid item is created');

-- the three conflict modes over an existing user
SELECT userlife.register_user('ix', 'conf', 'Conf', 'conf@example.com', '{"a": 1}', '{t1}') IS NOT NULL AS c \gset
SELECT results_eq($$SELECT result, sqlstate, message FROM userlife.import_users('ix', '[{"external_id": "conf", "display_name": "X"}]')$$,
	$$VALUES ('error', '23505', 'user "conf" of partner "ix" already exists')$$, 'error mode: an existing id is register_user''s 23505');
SELECT results_eq($$SELECT result FROM userlife.import_users('ix', '[{"external_id": "conf", "display_name": "X"}]', 'skip')$$,
	$$VALUES ('skipped')$$, 'skip mode: skipped');
SELECT is((SELECT display_name || '/' || version FROM userlife.users WHERE partner = 'ix' AND external_id = 'conf'), 'Conf/1',
	'error and skip leave the user unchanged');
SELECT results_eq($$SELECT result FROM userlife.import_users('ix', '[{"external_id": "conf", "email": "new@example.com", "metadata": {"b": 2}}]', 'update', 'moved')$$,
	$$VALUES ('updated')$$, 'update mode: updated');
SELECT results_eq($$SELECT display_name, email, metadata, tags, version FROM userlife.users WHERE partner = 'ix' AND external_id = 'conf'$$,
	$$VALUES ('Conf'::text, 'new@example.com'::text, '{"b": 2}'::jsonb, '{t1}'::text[], 2::bigint)$$,
	'update mode: the given fields replace the stored ones (metadata whole), the others stay');
SELECT results_eq($$SELECT action, reason, actor, changed_fields FROM userlife.user_history('ix', 'conf') ORDER BY audit_id DESC LIMIT 1$$,
	$$VALUES ('update', 'moved', 'tap-importer', '{email,metadata}'::text[])$$, 'update mode: audited as update, with reason and actor');
SELECT results_eq($$SELECT result FROM userlife.import_users('ix', '[{"external_id": "conf", "email": "NEW@example.com", "metadata": {"b": 2}}, {"external_id": "conf2"}]', 'update')$$,
	$$VALUES ('updated'), ('created')$$, 'update mode: a new id is created');
SELECT results_eq($$SELECT result FROM userlife.import_users('ix', '[{"external_id": "conf", "email": "NEW@example.com"}]', 'update')$$,
	$$VALUES ('skipped')$$, 'update mode: an update that changes nothing is skipped');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = 'ix' AND external_id = 'conf'), 3::bigint,
	'a skipped update writes no audit row');

-- parity with register_user: the same fields through both paths
SELECT userlife.register_user('ix', 'par-r', 'Par', 'par-r@example.com', '{"k": [1, 2]}', '{x, y}', 'flagged') IS NOT NULL AS r \gset
SELECT result = 'created' AS created FROM userlife.import_users('ix', '[{"external_id": "par-i", "display_name": "Par",
	"email": "par-i@example.com", "metadata": {"k": [1, 2]}, "tags": ["x", "y"], "status": "flagged"}]') \gset
SELECT is((SELECT to_jsonb(u) - '{user_id,external_id,email,created_at,updated_at,status_changed_at,audit_head}'::text[]
	FROM userlife.users u WHERE partner = 'ix' AND external_id = 'par-i'),
	(SELECT to_jsonb(u) - '{user_id,external_id,email,created_at,updated_at,status_changed_at,audit_head}'::text[]
	FROM userlife.users u WHERE partner = 'ix' AND external_id = 'par-r'), 'parity: the same users columns');
SELECT is((SELECT jsonb_build_object('a', a.action, 'c', a.changed_fields, 'r', a.db_role, 'ac', a.actor, 'h', a.hash_version,
		'p', a.prev_hash IS NULL, 'o', a.old_values, 'n', a.new_values - '{external_id,email}'::text[], 'red', a.redacted_fields)
	FROM userlife.audit a WHERE a.partner = 'ix' AND a.external_id = 'par-i'),
	(SELECT jsonb_build_object('a', a.action, 'c', a.changed_fields, 'r', a.db_role, 'ac', a.actor, 'h', a.hash_version,
		'p', a.prev_hash IS NULL, 'o', a.old_values, 'n', a.new_values - '{external_id,email}'::text[], 'red', a.redacted_fields)
	FROM userlife.audit a WHERE a.partner = 'ix' AND a.external_id = 'par-r'), 'parity: the same register audit row');
SELECT is((SELECT jsonb_build_object('t', e.event_type, 'p', e.payload - '{external_id,user_id,at,audit_id}'::text[])
	FROM userlife.events e JOIN userlife.users u USING (user_id) WHERE u.partner = 'ix' AND u.external_id = 'par-i'),
	(SELECT jsonb_build_object('t', e.event_type, 'p', e.payload - '{external_id,user_id,at,audit_id}'::text[])
	FROM userlife.events e JOIN userlife.users u USING (user_id) WHERE u.partner = 'ix' AND u.external_id = 'par-r'),
	'parity: the same event');
SELECT results_eq($$SELECT u.external_id, s.document IS NOT NULL, k.digest_key IS NOT NULL, u.audit_head IS NOT NULL
	FROM userlife.users u LEFT JOIN userlife.user_search s USING (user_id) LEFT JOIN userlife.audit_keys k USING (user_id)
	WHERE u.partner = 'ix' AND u.external_id IN ('par-i', 'par-r') ORDER BY 1$$,
	$$VALUES ('par-i'::text, true, true, true), ('par-r', true, true, true)$$, 'parity: search document and digest key, chain head as registered');
SELECT ok(userlife.verify_audit('ix', 'par-i') AND userlife.verify_audit('ix', 'par-r') AND userlife.verify_audit('ix', 'conf'),
	'the chains of imported and updated users verify');
SELECT is((SELECT count(*) FROM userlife.user_search s JOIN userlife.users u USING (user_id) WHERE u.partner = 'ix'),
	(SELECT count(*) FROM userlife.users WHERE partner = 'ix'), 'every imported user has its search document');

-- created_at keeps the original registration time; listing and keyset pagination order by it
SELECT count(*) AS n FROM userlife.import_users('iy', '[
	{"external_id": "old-2", "created_at": "2019-06-01T00:00:00Z"},
	{"external_id": "old-1", "created_at": "2019-05-31T23:00:00-03:00"},
	{"external_id": "new-1"}]') \gset
SELECT results_eq($$SELECT external_id FROM userlife.list_users('iy')$$, $$VALUES ('old-2'::text), ('old-1'), ('new-1')$$,
	'list_users orders imported users by their original created_at');
SELECT results_eq($$SELECT external_id FROM userlife.list_users('iy', after_user =>
	(SELECT user_id FROM userlife.users WHERE partner = 'iy' AND external_id = 'old-2'))$$,
	$$VALUES ('old-1'::text), ('new-1')$$, 'keyset pagination continues after an imported user');
SELECT is(userlife.count_users('iy', created_before => '2020-01-01'), 2::bigint, 'created_before filters on the original time');

-- roles and tenancy
CREATE ROLE t_reader IN ROLE userlife_reader;
CREATE ROLE t_developer IN ROLE userlife_developer;
CREATE ROLE t_compliance IN ROLE userlife_compliance;
CREATE ROLE t_admin IN ROLE userlife_admin;
CREATE ROLE t_owner IN ROLE userlife_owner;
CREATE ROLE t_none;
SELECT count(userlife.bind_partner(r::regrole, 'ix')) AS n
  FROM unnest(ARRAY['t_reader', 't_developer', 't_compliance', 't_admin', 't_none']) r \gset
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
SELECT results_eq($$SELECT r, pg_temp.outcome('t_' || r, $q$SELECT count(*) FROM userlife.import_users('ix', '[{"external_id": "role-x"}]')$q$)
	FROM unnest(ARRAY['reader', 'developer', 'compliance', 'admin', 'owner', 'none']) r$$,
	$$VALUES ('reader', '42501'), ('developer', 'ok'), ('compliance', '42501'), ('admin', 'ok'), ('owner', 'ok'), ('none', '42501')$$,
	'import_users: developer, admin and owner');
SELECT results_eq($$SELECT r, pg_temp.outcome('t_' || r, $q$SELECT userlife.user_summary('ix', 'conf')$q$)
	FROM unnest(ARRAY['reader', 'developer', 'compliance', 'admin', 'owner', 'none']) r$$,
	$$VALUES ('reader', 'ok'), ('developer', 'ok'), ('compliance', 'ok'), ('admin', 'ok'), ('owner', 'ok'), ('none', '42501')$$,
	'user_summary: as get_user');
SELECT results_eq($$SELECT pg_temp.outcome('t_developer', $q$SELECT count(*) FROM userlife.import_users('iy', '[{"external_id": "x"}]')$q$),
	pg_temp.outcome('t_developer', $q$SELECT count(*) FROM userlife.import_users('unknown', '[{"external_id": "x"}]')$q$),
	pg_temp.outcome('t_reader', $q$SELECT userlife.user_summary('iy', 'old-1')$q$),
	pg_temp.outcome('t_reader', $q$SELECT userlife.user_summary('unknown', 'x')$q$)$$,
	$$VALUES ('42501', '42501', '42501', '42501')$$, 'unbound or unknown partners: 42501 for both, existing or not');
SELECT is((SELECT db_role FROM userlife.audit a WHERE a.partner = 'ix' AND a.external_id = 'par-i'), current_user::text,
	'the audit names the calling role');
SELECT is((SELECT count(*) FROM userlife.users WHERE external_id IN ('role-x', 'x')), 0::bigint,
	'refused and undone calls left no user');

SELECT * FROM finish();
ROLLBACK;
