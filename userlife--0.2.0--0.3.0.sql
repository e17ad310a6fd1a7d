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

