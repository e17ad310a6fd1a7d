/* userlife--0.2.0--0.3.0.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION userlife UPDATE TO '0.3.0'" to load this file. \quit

-- 0.3.0: the trust release.  A fresh install runs userlife--0.1.0.sql and
-- every update script after it, so this file is also what a new database
-- gets; each section below belongs to one concern.

------------------------------------------------------------------------
-- Audit chain: keyed digests, hash versions, tombstone anchors
------------------------------------------------------------------------
-- Rows written until now keep hash version 1 and verify as written; new
-- rows are version 2, whose digests of personal values are keyed per user.
ALTER TABLE userlife.audit ADD COLUMN hash_version smallint NOT NULL DEFAULT 1;
ALTER TABLE userlife.audit ALTER COLUMN hash_version SET DEFAULT 2;
ALTER TABLE userlife.audit ADD CONSTRAINT audit_hash_version_known
	CHECK (hash_version OPERATOR(pg_catalog.=) ANY (ARRAY[1, 2]::pg_catalog.int2[]));
COMMENT ON COLUMN userlife.audit.hash_version IS
	'how row_hash was computed: 1 plain SHA-256 digests (before 0.3.0), 2 personal values digested with the user''s key';

CREATE TABLE userlife.audit_keys (
	user_id    uuid NOT NULL,
	digest_key bytea NOT NULL,
	CONSTRAINT audit_keys_pkey PRIMARY KEY (user_id),
	CONSTRAINT audit_keys_length CHECK (pg_catalog.length(digest_key) OPERATOR(pg_catalog.=) 32)
);
COMMENT ON TABLE userlife.audit_keys IS
	'per-user keys of the audit digests of personal values; deleted at erasure, so erased values cannot be confirmed by guessing';
REVOKE ALL ON userlife.audit_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('userlife.audit_keys', '');


------------------------------------------------------------------------
-- Signatures: body-bound signature_v2
------------------------------------------------------------------------

CREATE FUNCTION userlife.canonical_body(body jsonb)
	RETURNS text
	LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'userlife_canonical_body';
COMMENT ON FUNCTION userlife.canonical_body(jsonb) IS
	'the text a signature_v2 covers: the body without signature and signature_v2, keys sorted, no whitespace, as Python''s json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes it';
REVOKE ALL ON FUNCTION userlife.canonical_body(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION userlife.canonical_body(jsonb)
	TO userlife_developer, userlife_compliance, userlife_admin, userlife_owner;
COMMENT ON FUNCTION userlife.enrollee_request(jsonb) IS
	'a partner''s signed enrollee request (signature, optionally the body-bound signature_v2): verified, then applied in one transaction';


------------------------------------------------------------------------
-- Privileges, partners and bindings
------------------------------------------------------------------------


------------------------------------------------------------------------
-- Batches, purge isolation, notifications
------------------------------------------------------------------------

-- Users whose purge failed (a DBA's foreign key into users, a trigger of
-- theirs): purge_expired takes the others first, so that one user it
-- cannot purge does not stop the rest.  Only the error's SQLSTATE is kept;
-- the message may carry personal data and goes to the server log instead.
-- A failure older than the user's current deletion (restored, deleted
-- again) no longer counts; the row goes with the user.  Operational state,
-- not data: not dumped.
CREATE TABLE userlife.purge_failures (
	user_id   uuid NOT NULL,
	failed_at timestamptz NOT NULL,
	attempts  integer NOT NULL,
	sqlstate  text NOT NULL,
	CONSTRAINT purge_failures_pkey PRIMARY KEY (user_id),
	CONSTRAINT purge_failures_user_fkey FOREIGN KEY (user_id)
		REFERENCES userlife.users (user_id) ON DELETE CASCADE
);
CREATE INDEX purge_failures_failed_at_idx ON userlife.purge_failures (failed_at);
COMMENT ON TABLE userlife.purge_failures IS
	'users whose last purge failed, with when, how often and the SQLSTATE; purged after the others';
REVOKE ALL ON userlife.purge_failures FROM PUBLIC;
GRANT SELECT ON userlife.purge_failures TO userlife_owner;


------------------------------------------------------------------------
-- Maintenance scheduling, TRUNCATE and DROP EXTENSION guards
------------------------------------------------------------------------
-- schedule_maintenance now registers the job as the calling role, under a
-- name per database, with a command that runs only our run_maintenance
COMMENT ON FUNCTION userlife.schedule_maintenance(text) IS
	'registers run_maintenance with pg_cron as the calling role (a job per database); returns the job id';

CREATE FUNCTION userlife.unschedule_maintenance() RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_unschedule_maintenance';
COMMENT ON FUNCTION userlife.unschedule_maintenance() IS
	'removes the pg_cron job schedule_maintenance registered for this database; false if there was none';
REVOKE ALL ON FUNCTION userlife.unschedule_maintenance() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION userlife.unschedule_maintenance() TO userlife_owner;

-- TRUNCATE would remove users without audit, tombstone or legal-hold check;
-- enabled ALWAYS: session_replication_role does not switch it off
CREATE FUNCTION userlife.users_truncate_guard() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_users_truncate_guard';
COMMENT ON FUNCTION userlife.users_truncate_guard() IS
	'BEFORE TRUNCATE trigger on users: refuses it (42501)';
REVOKE ALL ON FUNCTION userlife.users_truncate_guard() FROM PUBLIC;
CREATE TRIGGER users_truncate_guard
	BEFORE TRUNCATE ON userlife.users
	FOR EACH STATEMENT EXECUTE FUNCTION userlife.users_truncate_guard();
ALTER TABLE userlife.users ENABLE ALWAYS TRIGGER users_truncate_guard;

-- a DROP that would take the extension: refused under legal hold (UL004),
-- otherwise it removes the maintenance job first.  ddl_command_start, as
-- a sql_drop trigger would be dropped with the extension before it fires.
CREATE FUNCTION userlife.drop_guard() RETURNS event_trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_drop_guard';
COMMENT ON FUNCTION userlife.drop_guard() IS
	'event trigger: a DROP that would drop the extension is refused under legal hold and removes the maintenance job';
REVOKE ALL ON FUNCTION userlife.drop_guard() FROM PUBLIC;
CREATE EVENT TRIGGER userlife_drop_guard ON ddl_command_start
	WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION userlife.drop_guard();
ALTER EVENT TRIGGER userlife_drop_guard ENABLE ALWAYS;
COMMENT ON EVENT TRIGGER userlife_drop_guard IS
	'refuses DROP EXTENSION userlife under legal hold (UL004) and removes its pg_cron job';



------------------------------------------------------------------------
-- Preload notice (keep this section last)
------------------------------------------------------------------------
-- The settings exist only once the library is loaded: without preloading,
-- SHOW userlife.* fails until a session's first userlife call and a
-- misspelt userlife.* setting is accepted.  CREATE EXTENSION (which runs
-- every script) and ALTER EXTENSION UPDATE end here, so the NOTICE that
-- gives the command to preload it comes once, last.  A later update script
-- calls userlife.check_preload() at its own end instead.
CREATE FUNCTION userlife.check_preload() RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'userlife_check_preload';
COMMENT ON FUNCTION userlife.check_preload() IS
	'true when this session preloaded the userlife library; otherwise a NOTICE with the ALTER SYSTEM and ALTER DATABASE commands that preload it';
REVOKE ALL ON FUNCTION userlife.check_preload() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION userlife.check_preload() TO userlife_owner;
SELECT userlife.check_preload();
