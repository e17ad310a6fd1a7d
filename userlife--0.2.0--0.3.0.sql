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


------------------------------------------------------------------------
-- Maintenance scheduling, TRUNCATE and DROP EXTENSION guards
------------------------------------------------------------------------

