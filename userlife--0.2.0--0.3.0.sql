/* userlife--0.2.0--0.3.0.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION userlife UPDATE TO '0.3.0'" to load this file. \quit

-- 0.3.0: the trust release.  A fresh install runs userlife--0.1.0.sql and
-- every update script after it, so this file is also what a new database
-- gets; each section below belongs to one concern.

------------------------------------------------------------------------
-- Audit chain: keyed digests, hash versions, tombstone anchors
------------------------------------------------------------------------


------------------------------------------------------------------------
-- Signatures: body-bound signature_v2
------------------------------------------------------------------------


------------------------------------------------------------------------
-- Privileges, partners and bindings
------------------------------------------------------------------------


------------------------------------------------------------------------
-- Batches, purge isolation, notifications
------------------------------------------------------------------------


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

