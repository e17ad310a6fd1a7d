-- Bulk DDL cannot bypass the lifecycle: TRUNCATE of users (directly, with
-- CASCADE, through partners, in replica mode) is refused with 42501 and a
-- hint naming purge_expired and erase_user; DROP EXTENSION userlife, and
-- any DROP that would cascade to it, is refused with UL004 while a user is
-- under legal hold, in replica mode too; other DROPs are not disturbed.
-- (The job removal and a drop without hold: test/scripts/cron.sh; DROP
-- SCHEMA public CASCADE and pg_restore --clean: test/scripts/reinstall.sh.)
BEGIN;
SELECT plan(23);
SET LOCAL client_min_messages = warning;

SELECT has_function('userlife', 'unschedule_maintenance', ARRAY[]::text[], 'unschedule_maintenance() exists');
SELECT function_returns('userlife', 'unschedule_maintenance', ARRAY[]::text[], 'boolean', 'it returns boolean');

SELECT lives_ok($$SELECT userlife.create_partner('ddl')$$, 'partner');
SELECT lives_ok($$SELECT userlife.register_user('ddl', 'D-' || i) FROM generate_series(1, 3) i$$, 'three users');
SELECT lives_ok($$SELECT userlife.record_job('ddl', 'D-1', 'kyc')$$, 'a job');

SELECT throws_ok($$TRUNCATE userlife.users CASCADE$$, '42501',
                 'TRUNCATE of table "userlife.users" is not allowed', 'TRUNCATE users CASCADE: 42501');
SELECT throws_ok($$TRUNCATE userlife.users, userlife.jobs$$, '42501', NULL, 'TRUNCATE users, jobs: 42501');
SELECT throws_ok($$TRUNCATE userlife.users$$, '42501', NULL,
                 'plain TRUNCATE users: 42501, before the foreign keys into it are checked');
SELECT throws_ok($$TRUNCATE userlife.partners CASCADE$$, '42501', NULL,
                 'TRUNCATE partners CASCADE (reaching users): 42501');
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$TRUNCATE userlife.users CASCADE$$, '42501', NULL, 'in replica mode too');
RESET session_replication_role;
CREATE FUNCTION pg_temp.truncate_hint() RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text;
BEGIN
	TRUNCATE userlife.users CASCADE;
	RETURN NULL;
EXCEPTION WHEN insufficient_privilege THEN
	GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
	RETURN h;
END $$;
SELECT matches(pg_temp.truncate_hint(), 'userlife\.purge_expired\(\).*userlife\.erase_user\(\)',
               'the hint names purge_expired and erase_user');
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = 'ddl'), 3::bigint, 'the users are all there');
SELECT is((SELECT count(*) FROM userlife.jobs j JOIN userlife.users u USING (user_id) WHERE u.partner = 'ddl'),
          1::bigint, 'and their job');

-- legal hold
SELECT lives_ok($$SELECT userlife.set_legal_hold('ddl', 'D-2', true, 'case 42')$$, 'a user under legal hold');
SELECT throws_ok($$DROP EXTENSION userlife$$, 'UL004',
                 'extension "userlife" cannot be dropped while users are under legal hold',
                 'DROP EXTENSION userlife under legal hold: UL004');
SELECT throws_ok($$DROP EXTENSION userlife CASCADE$$, 'UL004', NULL, 'with CASCADE too');
SELECT throws_ok($$DROP EXTENSION pgcrypto CASCADE$$, 'UL004', NULL,
                 'DROP EXTENSION pgcrypto CASCADE, which would take userlife: UL004');
SELECT throws_ok($$DROP EXTENSION IF EXISTS no_such_ext, pg_trgm CASCADE$$, 'UL004', NULL,
                 'DROP EXTENSION of a list naming pg_trgm with CASCADE: UL004');
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$DROP EXTENSION userlife$$, 'UL004', NULL, 'in replica mode too');
RESET session_replication_role;
SELECT is((SELECT count(*) FROM pg_extension WHERE extname IN ('userlife', 'pgcrypto', 'pg_trgm')), 3::bigint,
          'the extensions are all there');
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = 'ddl'), 3::bigint, 'the users too');

-- other DROPs are not disturbed
SELECT lives_ok($$CREATE SCHEMA ddl_scratch; CREATE TABLE ddl_scratch.t (i int); DROP SCHEMA ddl_scratch CASCADE$$,
                'DROP SCHEMA of an unrelated schema, CASCADE');
CREATE ROLE ddl_nobody;
SELECT lives_ok($$DROP OWNED BY ddl_nobody CASCADE$$, 'DROP OWNED BY a role owning nothing of userlife');

SELECT * FROM finish();
ROLLBACK;
