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

