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

-- A partner's retention is at most 100 years (SPEC §5.1).  0.2.0 took any
-- positive interval, and a longer one made every deletion of the partner's
-- users fail with a timestamp overflow; such a row is brought down to the
-- limit (deletion caps it there too), so that the constraint can hold.
UPDATE userlife.partners SET retention = '100 years'::pg_catalog.interval
 WHERE retention OPERATOR(pg_catalog.>) '100 years'::pg_catalog.interval;
ALTER TABLE userlife.partners ADD CONSTRAINT partners_retention_at_most_100_years
	CHECK (retention OPERATOR(pg_catalog.<=) '100 years'::pg_catalog.interval);

-- A role sees the partners rows of its bound partners only, as with users.
ALTER TABLE userlife.partners ENABLE ROW LEVEL SECURITY;
CREATE POLICY partners_by_partner ON userlife.partners FOR SELECT
	USING ((SELECT userlife.sees_every_partner())
		   OR partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]));

-- A binding keeps the name its role had: DROP ROLE leaves the row behind,
-- and a role created later may get the same OID; the binding is honoured
-- only while OID and name still match (access.c), and run_maintenance
-- drops the ones that no longer do.  Bindings of roles already dropped go
-- now: their name is lost.
DELETE FROM userlife.partner_bindings b
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
				   WHERE r.oid OPERATOR(pg_catalog.=) b.role::pg_catalog.oid);
ALTER TABLE userlife.partner_bindings ADD COLUMN role_name text;
UPDATE userlife.partner_bindings b
   SET role_name = pg_catalog.pg_get_userbyid(b.role::pg_catalog.oid)::pg_catalog.text;
ALTER TABLE userlife.partner_bindings ALTER COLUMN role_name SET NOT NULL;
COMMENT ON COLUMN userlife.partner_bindings.role_name IS
	'name of the role when it was bound; the binding lapses when the role with this OID has another name';

-- Privileges are SPEC §3's whatever ALTER DEFAULT PRIVILEGES the installing
-- role had: those applied to every object the scripts created, so every
-- object of the extension is stripped to its owner's privileges, then given
-- exactly the grants below.  Keep this block the last of the script: an
-- object created after it would keep what default privileges give it.
CREATE FUNCTION userlife.strip_privileges()
	RETURNS bigint
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_strip_privileges';
COMMENT ON FUNCTION userlife.strip_privileges() IS
	'for the extension''s scripts only: revokes every privilege on the extension''s objects but their owner''s';
SELECT userlife.strip_privileges();

GRANT USAGE ON SCHEMA userlife TO userlife_reader, userlife_developer,
	userlife_compliance, userlife_admin, userlife_owner;
GRANT USAGE ON TYPE userlife.user_status TO PUBLIC;
-- row-level security calls these as the querying role
GRANT EXECUTE ON FUNCTION userlife.sees_every_partner(), userlife.bound_partners() TO PUBLIC;

GRANT SELECT ON userlife.users, userlife.status_counts, userlife.jobs, userlife.partners,
	userlife.transitions
	TO userlife_reader, userlife_developer, userlife_compliance, userlife_admin, userlife_owner;
GRANT SELECT ON userlife.audit, userlife.due_for_purge TO userlife_compliance, userlife_admin, userlife_owner;
GRANT SELECT ON userlife.events TO userlife_developer, userlife_admin, userlife_owner;
GRANT SELECT ON userlife.partner_bindings TO userlife_owner;
GRANT INSERT, UPDATE, DELETE ON userlife.transitions TO userlife_owner;

GRANT EXECUTE ON FUNCTION
	userlife.get_user(text, text),
	userlife.list_users(text, userlife.user_status, text, timestamptz, timestamptz, text, integer, uuid, integer),
	userlife.count_users(text, userlife.user_status, text, timestamptz, timestamptz, text),
	userlife.users_page(text, integer, integer, userlife.user_status, text)
	TO userlife_reader, userlife_developer, userlife_compliance, userlife_admin, userlife_owner;
GRANT EXECUTE ON FUNCTION
	userlife.register_user(text, text, text, text, jsonb, text[], userlife.user_status),
	userlife.update_user(text, text, text, text, jsonb, text[], bigint),
	userlife.mark_verified(text, text, jsonb),
	userlife.record_job(text, text, text, text, jsonb)
	TO userlife_developer, userlife_admin, userlife_owner;
GRANT EXECUTE ON FUNCTION
	userlife.set_status(text, text, userlife.user_status, text, timestamptz),
	userlife.enable_user(text, text, text),
	userlife.disable_user(text, text, text),
	userlife.set_fraud_flag(text, text, boolean, text),
	userlife.allow_reenroll(text, text, boolean, text),
	userlife.delete_user(text, text, text),
	userlife.delete_users(text, text[], text),
	userlife.restore_user(text, text, text),
	userlife.user_history(text, text),
	userlife.verify_audit(text, text),
	userlife.erase_user(text, text, text),
	userlife.set_legal_hold(text, text, boolean, text)
	TO userlife_compliance, userlife_admin, userlife_owner;
GRANT EXECUTE ON FUNCTION
	userlife.verify_signature(text, text, text, text),
	userlife.enrollee_request(jsonb)
	TO userlife_developer, userlife_compliance, userlife_admin, userlife_owner;
GRANT EXECUTE ON FUNCTION
	userlife.claim_events(integer, text),
	userlife.ack_events(bigint[])
	TO userlife_developer, userlife_admin, userlife_owner;
GRANT EXECUTE ON FUNCTION
	userlife.create_partner(text, text, interval),
	userlife.set_retention(text, interval),
	userlife.bind_partner(regrole, text),
	userlife.unbind_partner(regrole, text),
	userlife.issue_api_key(text, text, interval),
	userlife.generate_signature(text, text, text),
	userlife.purge_expired(integer),
	userlife.run_maintenance(integer),
	userlife.schedule_maintenance(text)
	TO userlife_owner;


------------------------------------------------------------------------
-- Batches, purge isolation, notifications
------------------------------------------------------------------------


------------------------------------------------------------------------
-- Maintenance scheduling, TRUNCATE and DROP EXTENSION guards
------------------------------------------------------------------------

