/* userlife--0.2.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION userlife" to load this file. \quit

-- The schema belongs to the extension, so that DROP EXTENSION removes it.
CREATE SCHEMA userlife;
COMMENT ON SCHEMA userlife IS 'userlife: end-user lifecycle, audit and events';

------------------------------------------------------------------------
-- Group roles (cluster-wide: created when missing, left by DROP EXTENSION)
------------------------------------------------------------------------
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['userlife_reader', 'userlife_developer',
							 'userlife_compliance', 'userlife_admin',
							 'userlife_owner']
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$roles$;

------------------------------------------------------------------------
-- Types
------------------------------------------------------------------------
CREATE TYPE userlife.user_status AS ENUM
	('active', 'inactive', 'suspended', 'flagged', 'blocked', 'deleted');
COMMENT ON TYPE userlife.user_status IS 'lifecycle status of an end user';

------------------------------------------------------------------------
-- Tables
------------------------------------------------------------------------
CREATE TABLE userlife.partners (
	partner      text NOT NULL,
	display_name text,
	retention    interval NOT NULL
		DEFAULT (coalesce(nullif(pg_catalog.current_setting('userlife.default_retention', true), ''), '30 days'))::interval,
	created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT partners_pkey PRIMARY KEY (partner),
	CONSTRAINT partners_partner_format CHECK (partner OPERATOR(pg_catalog.~) '^[A-Za-z0-9_.-]{1,64}$'),
	CONSTRAINT partners_retention_positive CHECK (retention OPERATOR(pg_catalog.>) '0'::interval)
);
COMMENT ON TABLE userlife.partners IS 'partners (tenants) whose end users userlife manages';

CREATE TABLE userlife.partner_bindings (
	role       regrole NOT NULL,
	partner    text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT partner_bindings_pkey PRIMARY KEY (role, partner),
	CONSTRAINT partner_bindings_partner_fkey FOREIGN KEY (partner)
		REFERENCES userlife.partners (partner) ON DELETE CASCADE
);
COMMENT ON TABLE userlife.partner_bindings IS 'which roles may act on which partners';

CREATE TABLE userlife.partner_keys (
	key_id      bigint GENERATED ALWAYS AS IDENTITY,
	partner     text NOT NULL,
	environment text NOT NULL,
	secret      text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	expires_at  timestamptz,
	CONSTRAINT partner_keys_pkey PRIMARY KEY (key_id),
	CONSTRAINT partner_keys_partner_fkey FOREIGN KEY (partner)
		REFERENCES userlife.partners (partner) ON DELETE CASCADE,
	CONSTRAINT partner_keys_environment_known
		CHECK (environment OPERATOR(pg_catalog.=) ANY (ARRAY['test', 'production']))
);
COMMENT ON TABLE userlife.partner_keys IS
	'API keys for request signatures; readable by the extension owner only';
CREATE INDEX partner_keys_partner_idx ON userlife.partner_keys (partner, environment);

CREATE TABLE userlife.accepted_signatures (
	partner          text NOT NULL,
	signature_digest bytea NOT NULL,
	expires_at       timestamptz NOT NULL,
	CONSTRAINT accepted_signatures_pkey PRIMARY KEY (partner, signature_digest)
);
COMMENT ON TABLE userlife.accepted_signatures IS
	'SHA-256 of signatures already accepted, kept until their timestamp leaves the allowed window';
CREATE INDEX accepted_signatures_expires_idx ON userlife.accepted_signatures (expires_at);

CREATE TABLE userlife.transitions (
	from_status     userlife.user_status NOT NULL,
	to_status       userlife.user_status NOT NULL,
	requires_reason boolean NOT NULL DEFAULT false,
	CONSTRAINT transitions_pkey PRIMARY KEY (from_status, to_status),
	CONSTRAINT transitions_not_deleted
		CHECK (from_status OPERATOR(pg_catalog.<>) 'deleted' AND to_status OPERATOR(pg_catalog.<>) 'deleted'),
	CONSTRAINT transitions_not_same CHECK (from_status OPERATOR(pg_catalog.<>) to_status)
);
COMMENT ON TABLE userlife.transitions IS 'the status state machine: allowed transitions and whether a reason is required';

INSERT INTO userlife.transitions (from_status, to_status, requires_reason) VALUES
	('active',    'inactive',  false),
	('active',    'suspended', false),
	('active',    'flagged',   false),
	('active',    'blocked',   true),
	('inactive',  'active',    false),
	('inactive',  'suspended', false),
	('inactive',  'flagged',   false),
	('inactive',  'blocked',   true),
	('suspended', 'active',    false),
	('suspended', 'inactive',  false),
	('suspended', 'flagged',   false),
	('suspended', 'blocked',   true),
	('flagged',   'active',    true),
	('flagged',   'inactive',  false),
	('flagged',   'suspended', false),
	('flagged',   'blocked',   true),
	('blocked',   'active',    true);

CREATE TABLE userlife.users (
	user_id             uuid NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
	partner             text NOT NULL,
	external_id         text NOT NULL,
	display_name        text,
	email               text,
	status              userlife.user_status NOT NULL DEFAULT 'active',
	status_reason       text,
	status_changed_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
	suspended_until     timestamptz,
	is_fraudulent       boolean NOT NULL DEFAULT false,
	allow_new_enroll    boolean NOT NULL DEFAULT false,
	enrollment_count    integer NOT NULL DEFAULT 1,
	legal_hold          boolean NOT NULL DEFAULT false,
	metadata            jsonb NOT NULL DEFAULT '{}',
	tags                text[] NOT NULL DEFAULT '{}',
	verified_at         timestamptz,
	verified_attributes jsonb,
	version             bigint NOT NULL DEFAULT 1,
	created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
	deleted_at          timestamptz,
	purge_after         timestamptz,
	audit_head          bytea,
	CONSTRAINT users_pkey PRIMARY KEY (user_id),
	CONSTRAINT users_partner_fkey FOREIGN KEY (partner) REFERENCES userlife.partners (partner),
	CONSTRAINT users_partner_external_id_key UNIQUE (partner, external_id),
	CONSTRAINT users_external_id_length
		CHECK (pg_catalog.length(external_id) OPERATOR(pg_catalog.>=) 1 AND pg_catalog.length(external_id) OPERATOR(pg_catalog.<=) 255),
	CONSTRAINT users_email_format
		CHECK (email OPERATOR(pg_catalog.~) '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
	CONSTRAINT users_metadata_object CHECK (pg_catalog.jsonb_typeof(metadata) OPERATOR(pg_catalog.=) 'object'),
	CONSTRAINT users_enrollment_count_positive CHECK (enrollment_count OPERATOR(pg_catalog.>=) 1)
);
COMMENT ON TABLE userlife.users IS 'one row per end user of a partner; every change is audited by trigger';
COMMENT ON COLUMN userlife.users.audit_head IS 'hash of the newest audit row of this user (the head of its hash chain)';

CREATE UNIQUE INDEX users_partner_email_key ON userlife.users
	(partner, pg_catalog.lower(email))
	WHERE email IS NOT NULL AND status OPERATOR(pg_catalog.<>) 'deleted';
CREATE INDEX users_partner_created_idx ON userlife.users (partner, created_at, user_id);
CREATE INDEX users_partner_status_created_idx ON userlife.users (partner, status, created_at, user_id);
CREATE INDEX users_tags_idx ON userlife.users USING gin (tags);
CREATE INDEX users_purge_after_idx ON userlife.users (purge_after)
	WHERE status OPERATOR(pg_catalog.=) 'deleted';
CREATE INDEX users_suspended_until_idx ON userlife.users (suspended_until)
	WHERE suspended_until IS NOT NULL;

-- What search matches, beside the users heap so that a status change (never
-- a HOT update) does not write the trigram index: kept by the users
-- triggers, rebuilt by users_search_replica on restore, so not dumped.
CREATE TABLE userlife.user_search (
	user_id  uuid NOT NULL,
	partner  text NOT NULL,
	document text NOT NULL,
	CONSTRAINT user_search_pkey PRIMARY KEY (user_id)
);
COMMENT ON TABLE userlife.user_search IS
	'search document of each user: lower(display_name || E''\x1f'' || email || E''\x1f'' || external_id); kept by trigger, not dumped';
CREATE INDEX user_search_document_idx ON userlife.user_search USING gin (document gin_trgm_ops);

CREATE TABLE userlife.audit (
	audit_id       bigint GENERATED ALWAYS AS IDENTITY,
	at             timestamptz NOT NULL,
	partner        text NOT NULL,
	user_id        uuid NOT NULL,
	external_id    text,
	action         text NOT NULL,
	db_role        text NOT NULL,
	actor          text,
	reason         text,
	changed_fields text[] NOT NULL,
	old_values     jsonb NOT NULL,
	new_values     jsonb NOT NULL,
	txid           xid8 NOT NULL,
	prev_hash      bytea,
	row_hash       bytea NOT NULL,
	redacted_fields text[] NOT NULL DEFAULT '{}',
	CONSTRAINT audit_pkey PRIMARY KEY (audit_id),
	CONSTRAINT audit_action_known CHECK (action OPERATOR(pg_catalog.=) ANY (ARRAY[
		'register', 'update', 'status', 'fraud_flag', 'reenroll', 'delete',
		'restore', 'legal_hold', 'verify', 'purge', 'erase']))
);
COMMENT ON TABLE userlife.audit IS 'append-only, per-user hash-chained history of every change to users';
CREATE INDEX audit_user_idx ON userlife.audit (user_id, audit_id);
CREATE INDEX audit_partner_external_id_idx ON userlife.audit (partner, external_id);

CREATE TABLE userlife.events (
	event_id     bigint GENERATED ALWAYS AS IDENTITY,
	at           timestamptz NOT NULL,
	partner      text NOT NULL,
	user_id      uuid NOT NULL,
	audit_id     bigint NOT NULL,
	event_type   text NOT NULL,
	payload      jsonb NOT NULL,
	claimed_at   timestamptz,
	delivered_at timestamptz,
	CONSTRAINT events_pkey PRIMARY KEY (event_id),
	CONSTRAINT events_type_known CHECK (event_type OPERATOR(pg_catalog.=) ANY (ARRAY[
		'user.data.updated', 'user.status.updated']))
);
COMMENT ON TABLE userlife.events IS 'outbox of change events, one per audited change';
CREATE INDEX events_undelivered_idx ON userlife.events (event_id) WHERE delivered_at IS NULL;
CREATE INDEX events_user_idx ON userlife.events (user_id);

CREATE TABLE userlife.jobs (
	job_id         bigint GENERATED ALWAYS AS IDENTITY,
	partner        text NOT NULL,
	user_id        uuid NOT NULL,
	job_type       text NOT NULL,
	outcome        text NOT NULL,
	failure_reason text,
	payload        jsonb NOT NULL DEFAULT '{}',
	at             timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT jobs_pkey PRIMARY KEY (job_id),
	CONSTRAINT jobs_user_fkey FOREIGN KEY (user_id) REFERENCES userlife.users (user_id) ON DELETE CASCADE,
	CONSTRAINT jobs_outcome_known CHECK (outcome OPERATOR(pg_catalog.=) ANY (ARRAY['passed', 'failed']))
);
COMMENT ON TABLE userlife.jobs IS 'verification jobs recorded against users';
CREATE INDEX jobs_user_idx ON userlife.jobs (user_id, job_id);

CREATE TABLE userlife.tombstones (
	partner            text NOT NULL,
	external_id_digest bytea NOT NULL,
	user_id            uuid NOT NULL,
	enrollment_count   integer NOT NULL,
	allow_new_enroll   boolean NOT NULL DEFAULT false,
	purged_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
	audit_head         bytea,
	CONSTRAINT tombstones_pkey PRIMARY KEY (partner, external_id_digest)
);
CREATE INDEX tombstones_user_idx ON userlife.tombstones (user_id);
COMMENT ON TABLE userlife.tombstones IS 'what remains of purged users: a SHA-256 digest of the external_id, no personal data';

SELECT pg_catalog.pg_extension_config_dump('userlife.partners', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.partner_bindings', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.partner_keys', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.partner_keys_key_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.users', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.audit', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.events', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.jobs', '');
-- the identity sequences too, or a restored database would hand out used ids
SELECT pg_catalog.pg_extension_config_dump('userlife.audit_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.events_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.jobs_job_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.tombstones', '');
-- the default rules are part of the script; only rows the owner adds or changes are dumped
SELECT pg_catalog.pg_extension_config_dump('userlife.transitions', '');

------------------------------------------------------------------------
-- Triggers (C)
------------------------------------------------------------------------
CREATE FUNCTION userlife.users_guard() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_users_guard';
COMMENT ON FUNCTION userlife.users_guard() IS
	'BEFORE trigger on users: enforces the status machine, keeps bookkeeping columns, writes the audit row and event';

CREATE FUNCTION userlife.users_audit_insert() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_users_audit_insert';
COMMENT ON FUNCTION userlife.users_audit_insert() IS
	'AFTER INSERT trigger on users: writes the registration audit row and event';

CREATE FUNCTION userlife.users_search_sync() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_users_search_sync';
COMMENT ON FUNCTION userlife.users_search_sync() IS
	'trigger on users: keeps userlife.user_search, the search documents, in replica mode and on TRUNCATE';

CREATE FUNCTION userlife.audit_guard() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_audit_guard';
COMMENT ON FUNCTION userlife.audit_guard() IS
	'trigger on audit: refuses UPDATE, DELETE and TRUNCATE but the redaction done by purge and erasure';

CREATE FUNCTION userlife.transitions_changed() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_transitions_changed';
COMMENT ON FUNCTION userlife.transitions_changed() IS
	'trigger on transitions: merges a restored rule into an existing one and invalidates every backend''s rule cache';

-- "zz" so that it runs after any BEFORE trigger a DBA adds: it must see the final row
CREATE TRIGGER zz_users_guard
	BEFORE INSERT OR UPDATE OR DELETE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION userlife.users_guard();
CREATE TRIGGER users_audit_insert
	AFTER INSERT ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION userlife.users_audit_insert();
-- the search documents: the users triggers above keep them (audit.c); in
-- replica mode (a restore), where those are off, users_search_replica does;
-- TRUNCATE empties them in every mode
CREATE TRIGGER users_search_replica
	AFTER INSERT OR UPDATE OR DELETE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION userlife.users_search_sync();
CREATE TRIGGER users_search_truncate
	AFTER TRUNCATE ON userlife.users
	FOR EACH STATEMENT EXECUTE FUNCTION userlife.users_search_sync();
ALTER TABLE userlife.users ENABLE REPLICA TRIGGER users_search_replica;
ALTER TABLE userlife.users ENABLE ALWAYS TRIGGER users_search_truncate;
-- enabled ALWAYS: session_replication_role does not switch them off
CREATE TRIGGER audit_append_only
	BEFORE UPDATE OR DELETE OR TRUNCATE ON userlife.audit
	FOR EACH STATEMENT EXECUTE FUNCTION userlife.audit_guard();
CREATE TRIGGER audit_append_only_row
	BEFORE UPDATE OR DELETE ON userlife.audit
	FOR EACH ROW EXECUTE FUNCTION userlife.audit_guard();
ALTER TABLE userlife.audit ENABLE ALWAYS TRIGGER audit_append_only;
ALTER TABLE userlife.audit ENABLE ALWAYS TRIGGER audit_append_only_row;
CREATE TRIGGER transitions_merge
	BEFORE INSERT ON userlife.transitions
	FOR EACH ROW EXECUTE FUNCTION userlife.transitions_changed();
CREATE TRIGGER transitions_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON userlife.transitions
	FOR EACH STATEMENT EXECUTE FUNCTION userlife.transitions_changed();
-- a restore runs in replica mode (see README), where the merge must still happen
ALTER TABLE userlife.transitions ENABLE ALWAYS TRIGGER transitions_merge;
ALTER TABLE userlife.transitions ENABLE ALWAYS TRIGGER transitions_changed;

------------------------------------------------------------------------
-- Functions (C). NULL checks are done in C to raise 22004, so none is STRICT.
------------------------------------------------------------------------
CREATE FUNCTION userlife.create_partner(partner text, display_name text DEFAULT NULL,
										retention interval DEFAULT NULL)
	RETURNS userlife.partners
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_create_partner';
COMMENT ON FUNCTION userlife.create_partner(text, text, interval) IS 'registers a partner (tenant)';

CREATE FUNCTION userlife.set_retention(partner text, retention interval)
	RETURNS userlife.partners
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_set_retention';
COMMENT ON FUNCTION userlife.set_retention(text, interval) IS 'sets how long a partner''s deleted users are kept before purge';

CREATE FUNCTION userlife.bind_partner(role regrole, partner text)
	RETURNS void
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_bind_partner';
COMMENT ON FUNCTION userlife.bind_partner(regrole, text) IS 'lets a role act on a partner''s users';

CREATE FUNCTION userlife.unbind_partner(role regrole, partner text)
	RETURNS void
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_unbind_partner';
COMMENT ON FUNCTION userlife.unbind_partner(regrole, text) IS 'withdraws a role''s access to a partner''s users';

CREATE FUNCTION userlife.register_user(partner text, external_id text DEFAULT NULL,
	display_name text DEFAULT NULL, email text DEFAULT NULL,
	metadata jsonb DEFAULT '{}', tags text[] DEFAULT '{}',
	status userlife.user_status DEFAULT 'active')
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_register_user';
COMMENT ON FUNCTION userlife.register_user(text, text, text, text, jsonb, text[], userlife.user_status) IS
	'registers a new end user, or re-enrolls one whose re-enrollment was allowed';

CREATE FUNCTION userlife.allow_reenroll(partner text, external_id text,
	allow boolean DEFAULT true, reason text DEFAULT NULL)
	RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_allow_reenroll';
COMMENT ON FUNCTION userlife.allow_reenroll(text, text, boolean, text) IS
	'grants (or withdraws) a one-shot permission to register an external_id again';

CREATE FUNCTION userlife.get_user(partner text, external_id text)
	RETURNS userlife.users
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_get_user';
COMMENT ON FUNCTION userlife.get_user(text, text) IS 'one user by external_id';

CREATE FUNCTION userlife.list_users(partner text, status userlife.user_status DEFAULT NULL,
	search text DEFAULT NULL, created_after timestamptz DEFAULT NULL,
	created_before timestamptz DEFAULT NULL, tag text DEFAULT NULL,
	page_size integer DEFAULT 20, after_user uuid DEFAULT NULL,
	page_offset integer DEFAULT NULL)
	RETURNS SETOF userlife.users
	LANGUAGE c STABLE PARALLEL UNSAFE ROWS 20 AS 'MODULE_PATHNAME', 'userlife_list_users';
COMMENT ON FUNCTION userlife.list_users(text, userlife.user_status, text, timestamptz, timestamptz, text, integer, uuid, integer) IS
	'one page of a partner''s users ordered by (created_at, user_id), with filters';

CREATE FUNCTION userlife.count_users(partner text, status userlife.user_status DEFAULT NULL,
	search text DEFAULT NULL, created_after timestamptz DEFAULT NULL,
	created_before timestamptz DEFAULT NULL, tag text DEFAULT NULL)
	RETURNS bigint
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_count_users';
COMMENT ON FUNCTION userlife.count_users(text, userlife.user_status, text, timestamptz, timestamptz, text) IS
	'how many of a partner''s users match the filters';

CREATE FUNCTION userlife.users_page(partner text, page_limit integer DEFAULT 20,
	page_offset integer DEFAULT 0, status userlife.user_status DEFAULT NULL,
	search text DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_users_page';
COMMENT ON FUNCTION userlife.users_page(text, integer, integer, userlife.user_status, text) IS
	'one page of users as a JSON document with pagination';

CREATE FUNCTION userlife.update_user(partner text, external_id text,
	display_name text DEFAULT NULL, email text DEFAULT NULL, metadata jsonb DEFAULT NULL,
	tags text[] DEFAULT NULL, expected_version bigint DEFAULT NULL)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_update_user';
COMMENT ON FUNCTION userlife.update_user(text, text, text, text, jsonb, text[], bigint) IS
	'changes profile fields; metadata is an RFC 7396 merge patch';

CREATE FUNCTION userlife.mark_verified(partner text, external_id text, attributes jsonb)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_mark_verified';
COMMENT ON FUNCTION userlife.mark_verified(text, text, jsonb) IS
	'records verified attributes, once per enrollment';

CREATE FUNCTION userlife.set_status(partner text, external_id text, status userlife.user_status,
	reason text DEFAULT NULL, until timestamptz DEFAULT NULL)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_set_status';
COMMENT ON FUNCTION userlife.set_status(text, text, userlife.user_status, text, timestamptz) IS
	'moves a user to another status, as userlife.transitions allows';

CREATE FUNCTION userlife.enable_user(partner text, external_id text, reason text DEFAULT NULL)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_enable_user';
COMMENT ON FUNCTION userlife.enable_user(text, text, text) IS 'set_status to active';

CREATE FUNCTION userlife.disable_user(partner text, external_id text, reason text DEFAULT NULL)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_disable_user';
COMMENT ON FUNCTION userlife.disable_user(text, text, text) IS 'set_status to inactive';

CREATE FUNCTION userlife.set_fraud_flag(partner text, external_id text, is_fraudulent boolean,
	reason text DEFAULT NULL)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_set_fraud_flag';
COMMENT ON FUNCTION userlife.set_fraud_flag(text, text, boolean, text) IS
	'sets or clears the fraud flag; a flagged user''s jobs are all stored as failed';

CREATE FUNCTION userlife.delete_user(partner text, external_id text, reason text DEFAULT NULL)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_delete_user';
COMMENT ON FUNCTION userlife.delete_user(text, text, text) IS
	'soft-deletes a user; it is purged after the partner''s retention';

CREATE FUNCTION userlife.delete_users(partner text, external_ids text[], reason text DEFAULT NULL)
	RETURNS TABLE (external_id text, result text)
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_delete_users';
COMMENT ON FUNCTION userlife.delete_users(text, text[], text) IS
	'soft-deletes many users: one result row per input, in input order';

CREATE FUNCTION userlife.restore_user(partner text, external_id text, reason text DEFAULT NULL)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_restore_user';
COMMENT ON FUNCTION userlife.restore_user(text, text, text) IS
	'brings a soft-deleted user back as inactive, within the retention window';

CREATE FUNCTION userlife.record_job(partner text, external_id text, job_type text,
	outcome text DEFAULT 'passed', payload jsonb DEFAULT '{}')
	RETURNS userlife.jobs
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_record_job';
COMMENT ON FUNCTION userlife.record_job(text, text, text, text, jsonb) IS
	'stores a verification job; jobs of fraudulent or inactive users are stored as failed';

CREATE FUNCTION userlife.user_history(partner text, external_id text)
	RETURNS SETOF userlife.audit
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_user_history';
COMMENT ON FUNCTION userlife.user_history(text, text) IS 'a user''s audit rows, oldest first';

CREATE FUNCTION userlife.verify_audit(partner text, external_id text)
	RETURNS boolean
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_verify_audit';
COMMENT ON FUNCTION userlife.verify_audit(text, text) IS 'checks a user''s audit hash chain';

CREATE FUNCTION userlife.set_legal_hold(partner text, external_id text, hold boolean, reason text)
	RETURNS userlife.users
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_set_legal_hold';
COMMENT ON FUNCTION userlife.set_legal_hold(text, text, boolean, text) IS
	'places or releases a legal hold; a held user is never purged or erased';

CREATE FUNCTION userlife.purge_expired(batch_size integer DEFAULT 1000)
	RETURNS bigint
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_purge_expired';
COMMENT ON FUNCTION userlife.purge_expired(integer) IS
	'hard-deletes up to batch_size users past their retention, leaving tombstones and a redacted audit';

CREATE FUNCTION userlife.erase_user(partner text, external_id text, reason text)
	RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_erase_user';
COMMENT ON FUNCTION userlife.erase_user(text, text, text) IS
	'purges one user at once, whatever its status (right to erasure)';

CREATE FUNCTION userlife.run_maintenance(batch_size integer DEFAULT 1000)
	RETURNS jsonb
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_run_maintenance';
COMMENT ON FUNCTION userlife.run_maintenance(integer) IS
	'ends due suspensions, purges expired users, drops old delivered events; returns counts';

CREATE FUNCTION userlife.schedule_maintenance(schedule text DEFAULT '*/5 * * * *')
	RETURNS bigint
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_schedule_maintenance';
COMMENT ON FUNCTION userlife.schedule_maintenance(text) IS
	'registers run_maintenance with pg_cron; returns the job id';

CREATE FUNCTION userlife.claim_events(max_events integer DEFAULT 100, partner text DEFAULT NULL)
	RETURNS SETOF userlife.events
	LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100 AS 'MODULE_PATHNAME', 'userlife_claim_events';
COMMENT ON FUNCTION userlife.claim_events(integer, text) IS
	'claims the oldest undelivered events (SKIP LOCKED); unacknowledged claims lapse after 5 minutes';

CREATE FUNCTION userlife.ack_events(event_ids bigint[])
	RETURNS integer
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_ack_events';
COMMENT ON FUNCTION userlife.ack_events(bigint[]) IS 'marks claimed events delivered';

CREATE FUNCTION userlife.issue_api_key(partner text, environment text DEFAULT 'production',
	grace interval DEFAULT '1 day')
	RETURNS text
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_issue_api_key';
COMMENT ON FUNCTION userlife.issue_api_key(text, text, interval) IS
	'a new random API key (returned once); earlier keys of the environment expire after grace';

CREATE FUNCTION userlife.generate_signature(partner text, signed_at text DEFAULT NULL,
	environment text DEFAULT 'production')
	RETURNS jsonb
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_generate_signature';
COMMENT ON FUNCTION userlife.generate_signature(text, text, text) IS
	'a signature with the newest key: {"signature", "timestamp"}, for tests and tools';

CREATE FUNCTION userlife.verify_signature(partner text, signature text, signed_at text,
	environment text DEFAULT 'production')
	RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_verify_signature';
COMMENT ON FUNCTION userlife.verify_signature(text, text, text, text) IS
	'true for a valid, fresh signature not seen before (HMAC-SHA256 through pgcrypto)';

CREATE FUNCTION userlife.enrollee_request(body jsonb)
	RETURNS jsonb
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_enrollee_request';
COMMENT ON FUNCTION userlife.enrollee_request(jsonb) IS
	'a partner''s signed enrollee request: verified, then applied in one transaction';

CREATE FUNCTION userlife.sees_every_partner()
	RETURNS boolean
	LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'userlife_sees_every_partner';
COMMENT ON FUNCTION userlife.sees_every_partner() IS
	'row-level security: the current role sees every partner (superuser or userlife_owner)';

CREATE FUNCTION userlife.bound_partners()
	RETURNS text[]
	LANGUAGE c STABLE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'userlife_bound_partners';
COMMENT ON FUNCTION userlife.bound_partners() IS
	'row-level security: the partners bound to the current role';

------------------------------------------------------------------------
-- Row-level security: a role sees the rows of its bound partners only.
-- The functions write as the table owner, to whom RLS does not apply;
-- they check partners themselves.  The sub-SELECTs run once per query.
------------------------------------------------------------------------
ALTER TABLE userlife.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE userlife.audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE userlife.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE userlife.jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_by_partner ON userlife.users FOR SELECT
	USING ((SELECT userlife.sees_every_partner())
		   OR partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]));
CREATE POLICY audit_by_partner ON userlife.audit FOR SELECT
	USING ((SELECT userlife.sees_every_partner())
		   OR partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]));
CREATE POLICY events_by_partner ON userlife.events FOR SELECT
	USING ((SELECT userlife.sees_every_partner())
		   OR partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]));
CREATE POLICY jobs_by_partner ON userlife.jobs FOR SELECT
	USING ((SELECT userlife.sees_every_partner())
		   OR partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]));

------------------------------------------------------------------------
-- Views
------------------------------------------------------------------------
-- security_invoker: the caller's row-level security applies
CREATE VIEW userlife.status_counts WITH (security_invoker = true) AS
	SELECT u.partner, u.status, pg_catalog.count(*) AS users
	FROM userlife.users u
	GROUP BY u.partner, u.status;
COMMENT ON VIEW userlife.status_counts IS 'number of users per partner and status';

CREATE VIEW userlife.due_for_purge WITH (security_invoker = true) AS
	SELECT u.partner, u.external_id, u.purge_after, u.legal_hold
	FROM userlife.users u
	WHERE u.status OPERATOR(pg_catalog.=) 'deleted' AND u.purge_after OPERATOR(pg_catalog.<=) pg_catalog.now();
COMMENT ON VIEW userlife.due_for_purge IS 'soft-deleted users whose retention has ended (held ones stay until released)';

------------------------------------------------------------------------
-- Privileges: no one writes the tables but the extension owner; all
-- writes go through the functions, which check the calling role.
------------------------------------------------------------------------
REVOKE ALL ON ALL TABLES IN SCHEMA userlife FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA userlife FROM PUBLIC;
GRANT USAGE ON SCHEMA userlife TO userlife_reader, userlife_developer,
	userlife_compliance, userlife_admin, userlife_owner;
GRANT USAGE ON TYPE userlife.user_status TO PUBLIC;
GRANT EXECUTE ON FUNCTION userlife.sees_every_partner(), userlife.bound_partners() TO PUBLIC;

GRANT SELECT ON userlife.users, userlife.status_counts TO userlife_reader, userlife_developer,
	userlife_compliance, userlife_admin, userlife_owner;
GRANT SELECT ON userlife.jobs TO userlife_reader, userlife_developer,
	userlife_compliance, userlife_admin, userlife_owner;
GRANT SELECT ON userlife.audit, userlife.due_for_purge TO userlife_compliance, userlife_admin, userlife_owner;
GRANT SELECT ON userlife.events TO userlife_developer, userlife_admin, userlife_owner;
GRANT SELECT ON userlife.partners, userlife.transitions TO userlife_reader, userlife_developer,
	userlife_compliance, userlife_admin, userlife_owner;
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
