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
-- Operations: monitoring, events, search repair
------------------------------------------------------------------------
CREATE FUNCTION userlife.rebuild_search() RETURNS bigint
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_rebuild_search';
COMMENT ON FUNCTION userlife.rebuild_search() IS
	'rewrites the search document of every user that lacks it or whose document is stale, under a SHARE lock on users (writers wait); returns the number of users';
REVOKE ALL ON FUNCTION userlife.rebuild_search() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION userlife.rebuild_search() TO userlife_owner;

-- An update from 0.1.0 made before 0.3.0 copied the users without a lock:
-- a registration committed during it has no search document.  Repaired
-- here; documents that are right are not written again.
SELECT userlife.rebuild_search();

CREATE FUNCTION userlife.verify_partner_audit(partner text)
	RETURNS TABLE(external_id text, user_id uuid)
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_verify_partner_audit';
COMMENT ON FUNCTION userlife.verify_partner_audit(text) IS
	'the partner''s users whose audit chain does not verify (purged ones by their tombstone, external_id NULL); no rows when all do';
REVOKE ALL ON FUNCTION userlife.verify_partner_audit(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION userlife.verify_partner_audit(text)
	TO userlife_compliance, userlife_admin, userlife_owner;

-- one row per run_maintenance call, written by it; rows older than 30
-- days are dropped by it.  Operational state, not data: not dumped.
CREATE TABLE userlife.maintenance_log (
	run_id      bigint GENERATED ALWAYS AS IDENTITY,
	started_at  timestamptz NOT NULL,
	finished_at timestamptz NOT NULL,
	db_role     text NOT NULL,
	batch_size  integer NOT NULL,
	counts      jsonb NOT NULL,
	CONSTRAINT maintenance_log_pkey PRIMARY KEY (run_id)
);
CREATE INDEX maintenance_log_started_at_idx ON userlife.maintenance_log (started_at);
COMMENT ON TABLE userlife.maintenance_log IS
	'one row per run_maintenance call: when, by whom, and the counts it returned; kept 30 days';
REVOKE ALL ON userlife.maintenance_log FROM PUBLIC;
GRANT SELECT ON userlife.maintenance_log TO userlife_compliance, userlife_owner;

CREATE VIEW userlife.maintenance_runs WITH (security_invoker = true) AS
	SELECT l.run_id, l.started_at, l.finished_at,
		   l.finished_at OPERATOR(pg_catalog.-) l.started_at AS duration,
		   l.db_role, l.batch_size,
		   (l.counts OPERATOR(pg_catalog.->>) 'suspensions_ended')::bigint AS suspensions_ended,
		   (l.counts OPERATOR(pg_catalog.->>) 'users_purged')::bigint AS users_purged,
		   (l.counts OPERATOR(pg_catalog.->>) 'purge_failed')::bigint AS purge_failed,
		   (l.counts OPERATOR(pg_catalog.->>) 'events_dropped')::bigint AS events_dropped,
		   l.counts
	FROM userlife.maintenance_log l;
COMMENT ON VIEW userlife.maintenance_runs IS
	'the run_maintenance calls of the last 30 days with their durations and counts';
GRANT SELECT ON userlife.maintenance_runs TO userlife_compliance, userlife_owner;

-- every partner the caller sees, with zeros when nothing waits, so that an
-- alert can compare each partner's numbers with a threshold
CREATE VIEW userlife.event_backlog WITH (security_invoker = true) AS
	SELECT p.partner,
		   coalesce(b.undelivered, 0) AS undelivered,
		   b.oldest_undelivered_at,
		   pg_catalog.now() OPERATOR(pg_catalog.-) b.oldest_undelivered_at AS oldest_undelivered_age,
		   coalesce(b.claimed_unacknowledged, 0) AS claimed_unacknowledged,
		   coalesce(b.claims_lapsed, 0) AS claims_lapsed
	FROM userlife.partners p
	LEFT JOIN (SELECT e.partner, pg_catalog.count(*) AS undelivered,
					  pg_catalog.min(e.at) AS oldest_undelivered_at,
					  pg_catalog.count(*) FILTER (WHERE e.claimed_at IS NOT NULL) AS claimed_unacknowledged,
					  pg_catalog.count(*) FILTER (WHERE e.claimed_at OPERATOR(pg_catalog.<)
						  (pg_catalog.now() OPERATOR(pg_catalog.-) '5 minutes'::pg_catalog.interval)) AS claims_lapsed
			   FROM userlife.events e
			   WHERE e.delivered_at IS NULL
			   GROUP BY e.partner) b ON b.partner OPERATOR(pg_catalog.=) p.partner;
COMMENT ON VIEW userlife.event_backlog IS
	'per partner: events not yet acknowledged, the oldest one''s time and age, those claimed but not acknowledged, and claims older than 5 minutes (lapsed: claimable again)';
GRANT SELECT ON userlife.event_backlog TO userlife_developer, userlife_admin, userlife_owner;

CREATE VIEW userlife.audit_size WITH (security_invoker = true) AS
	SELECT a.partner, pg_catalog.count(*) AS audit_rows,
		   pg_catalog.sum(pg_catalog.pg_column_size(a.*))::bigint AS bytes,
		   pg_catalog.min(a.at) AS oldest_at, pg_catalog.max(a.at) AS newest_at
	FROM userlife.audit a
	GROUP BY a.partner;
COMMENT ON VIEW userlife.audit_size IS
	'per partner: audit rows, their size in bytes (row data, without indexes; reads the whole audit) and the oldest and newest row''s time';
GRANT SELECT ON userlife.audit_size TO userlife_compliance, userlife_admin, userlife_owner;
