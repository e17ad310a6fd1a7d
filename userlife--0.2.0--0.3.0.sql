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

