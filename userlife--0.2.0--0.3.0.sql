/* userlife--0.2.0--0.3.0.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION userlife UPDATE TO '0.3.0'" to load this file. \quit

-- 0.3.0: the trust release.  A fresh install runs userlife--0.1.0.sql and
-- every update script after it, so this file is also what a new database
-- gets; each section below belongs to one concern.

-- The locks the update needs, taken first and in the order writers take
-- them (users, then audit and events): taken later, a writer holding users
-- and waiting for audit would deadlock with the update.  Sessions that
-- touch these tables wait until the update commits.
LOCK TABLE userlife.users, userlife.audit, userlife.events IN ACCESS EXCLUSIVE MODE;

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
SELECT pg_catalog.pg_extension_config_dump('userlife.audit_keys', '');


------------------------------------------------------------------------
-- Signatures: body-bound signature_v2
------------------------------------------------------------------------

CREATE FUNCTION userlife.canonical_body(body jsonb)
	RETURNS text
	LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'userlife_canonical_body';
COMMENT ON FUNCTION userlife.canonical_body(jsonb) IS
	'the text a signature_v2 covers: the body without signature and signature_v2, keys sorted, no whitespace, as Python''s json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes it';
COMMENT ON FUNCTION userlife.enrollee_request(jsonb) IS
	'a partner''s signed enrollee request (signature, optionally the body-bound signature_v2): verified, then applied in one transaction';


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

-- The users guards, each a C trigger function of the trigger's name, enabled
-- ALWAYS: session_replication_role does not switch them off.  TRUNCATE
-- would remove users without audit, tombstone or legal-hold check; the
-- users guard is off in replica mode (restores load users through it), and
-- a user under legal hold stays undeletable there too.
DO $guards$
DECLARE
	g record;
BEGIN
	FOR g IN SELECT * FROM (VALUES
		('users_truncate_guard', 'BEFORE TRUNCATE', 'STATEMENT',
		 'BEFORE TRUNCATE trigger on users: refuses it (42501)'),
		('users_hold_guard', 'BEFORE DELETE', 'ROW',
		 'BEFORE DELETE trigger on users, enabled ALWAYS: refuses deleting a user under legal hold in replica mode')
	) AS t (name, fires, per_what, about)
	LOOP
		EXECUTE pg_catalog.format('CREATE FUNCTION userlife.%I() RETURNS trigger LANGUAGE c AS %L, %L',
								  g.name, 'MODULE_PATHNAME', pg_catalog.format('userlife_%s', g.name));
		EXECUTE pg_catalog.format('COMMENT ON FUNCTION userlife.%I() IS %L', g.name, g.about);
		EXECUTE pg_catalog.format('CREATE TRIGGER %I %s ON userlife.users FOR EACH %s EXECUTE FUNCTION userlife.%I()',
								  g.name, g.fires, g.per_what, g.name);
		EXECUTE pg_catalog.format('ALTER TABLE userlife.users ENABLE ALWAYS TRIGGER %I', g.name);
	END LOOP;
END
$guards$;

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
-- Roster import and user summary
------------------------------------------------------------------------
CREATE FUNCTION userlife.import_users(partner text, users jsonb,
	on_conflict text DEFAULT 'error', reason text DEFAULT NULL)
	RETURNS TABLE (item integer, external_id text, result text, user_id uuid,
				   sqlstate text, message text)
	LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 1000 AS 'MODULE_PATHNAME', 'userlife_import_users';
COMMENT ON FUNCTION userlife.import_users(text, jsonb, text, text) IS
	'pre-loads up to 10,000 users: one result row per item, in input order; a bad item never stops the others';

-- the counters are read through jobs_user_idx and audit_user_idx, both
-- (user_id, id), which the base install already has
CREATE FUNCTION userlife.user_summary(partner text, external_id text)
	RETURNS jsonb
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_user_summary';
COMMENT ON FUNCTION userlife.user_summary(text, text) IS
	'a user at a glance: its row and counters of its jobs, changes and webhook deliveries';



------------------------------------------------------------------------
-- Operations: monitoring, events, search repair
------------------------------------------------------------------------
CREATE FUNCTION userlife.rebuild_search() RETURNS bigint
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_rebuild_search';
COMMENT ON FUNCTION userlife.rebuild_search() IS
	'rewrites the search document of every user that lacks it or whose document is stale, under a SHARE lock on users (writers wait); returns the number of users';

-- An update from 0.1.0 made before 0.3.0 copied the users without a lock:
-- a registration committed during it has no search document.  Repaired
-- here; documents that are right are not written again.
SELECT userlife.rebuild_search();

CREATE FUNCTION userlife.verify_partner_audit(partner text)
	RETURNS TABLE(external_id text, user_id uuid)
	LANGUAGE c STABLE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_verify_partner_audit';
COMMENT ON FUNCTION userlife.verify_partner_audit(text) IS
	'the partner''s users whose audit chain does not verify (purged ones by their tombstone, external_id NULL); no rows when all do';

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

CREATE VIEW userlife.audit_size WITH (security_invoker = true) AS
	SELECT a.partner, pg_catalog.count(*) AS audit_rows,
		   pg_catalog.sum(pg_catalog.pg_column_size(a.*))::bigint AS bytes,
		   pg_catalog.min(a.at) AS oldest_at, pg_catalog.max(a.at) AS newest_at
	FROM userlife.audit a
	GROUP BY a.partner;
COMMENT ON VIEW userlife.audit_size IS
	'per partner: audit rows, their size in bytes (row data, without indexes; reads the whole audit) and the oldest and newest row''s time';


------------------------------------------------------------------------
-- Webhooks
------------------------------------------------------------------------
-- Delivery state is created by the delivery side only: a change's
-- transaction writes nothing here.  Each endpoint keeps a cursor over the
-- outbox (userlife.events); claim_webhook_deliveries moves the events past
-- it into webhook_queue once every transaction that could still commit an
-- event below the new position has ended, and hands out signed requests.
CREATE TABLE userlife.webhook_endpoints (
	endpoint_id     bigint GENERATED ALWAYS AS IDENTITY,
	partner         text NOT NULL,
	url             text NOT NULL,
	event_types     text[],
	enabled         boolean NOT NULL DEFAULT true,
	disabled_reason text,
	cursor_event_id bigint NOT NULL,
	start_event_id  bigint NOT NULL,
	failing_since   timestamptz,
	created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT webhook_endpoints_pkey PRIMARY KEY (endpoint_id),
	CONSTRAINT webhook_endpoints_partner_fkey FOREIGN KEY (partner)
		REFERENCES userlife.partners (partner) ON DELETE CASCADE
);
CREATE INDEX webhook_endpoints_partner_idx ON userlife.webhook_endpoints (partner);
COMMENT ON TABLE userlife.webhook_endpoints IS
	'webhook endpoints of partners; the outbox has been queued for the endpoint up to cursor_event_id; events up to start_event_id came before it';

CREATE TABLE userlife.webhook_secrets (
	secret_id   bigint GENERATED ALWAYS AS IDENTITY,
	endpoint_id bigint NOT NULL,
	secret      bytea NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
	expires_at  timestamptz,
	CONSTRAINT webhook_secrets_pkey PRIMARY KEY (secret_id),
	CONSTRAINT webhook_secrets_endpoint_fkey FOREIGN KEY (endpoint_id)
		REFERENCES userlife.webhook_endpoints (endpoint_id) ON DELETE CASCADE,
	CONSTRAINT webhook_secrets_length CHECK (pg_catalog.length(secret) OPERATOR(pg_catalog.=) 32)
);
CREATE INDEX webhook_secrets_endpoint_idx ON userlife.webhook_secrets (endpoint_id);
COMMENT ON TABLE userlife.webhook_secrets IS
	'signing secrets of webhook endpoints (32 random bytes, shown once as whsec_<base64>); readable by the extension owner only';

CREATE TABLE userlife.webhook_queue (
	endpoint_id     bigint NOT NULL,
	event_id        bigint NOT NULL,
	partner         text NOT NULL,
	user_id         uuid NOT NULL,
	event_type      text NOT NULL,
	state           text NOT NULL DEFAULT 'pending',
	attempts        integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz,
	last_status     integer,
	last_error      text,
	delivered_at    timestamptz,
	updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CONSTRAINT webhook_queue_pkey PRIMARY KEY (endpoint_id, event_id),
	CONSTRAINT webhook_queue_endpoint_fkey FOREIGN KEY (endpoint_id)
		REFERENCES userlife.webhook_endpoints (endpoint_id) ON DELETE CASCADE,
	CONSTRAINT webhook_queue_state_known
		CHECK (state OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'delivered', 'dead']))
);
-- Every delivery writes each index of the table twice (queued, claimed) or
-- once more (completed): one index serves both the per-user order of the
-- claim (a user's oldest pending delivery to an endpoint) and user_summary
-- (a user's pending and dead deliveries).  state comes before event_id:
-- the claim reads a user's first pending entry without passing over every
-- dead one before it.
CREATE INDEX webhook_queue_due_idx ON userlife.webhook_queue (next_attempt_at, event_id)
	WHERE state OPERATOR(pg_catalog.=) 'pending';
CREATE INDEX webhook_queue_updated_idx ON userlife.webhook_queue (updated_at)
	WHERE state OPERATOR(pg_catalog.<>) 'pending';
CREATE INDEX webhook_queue_user_id_idx ON userlife.webhook_queue (user_id, endpoint_id, state, event_id)
	WHERE state OPERATOR(pg_catalog.<>) 'delivered';
COMMENT ON TABLE userlife.webhook_queue IS
	'webhook deliveries taken from the outbox: pending (due at next_attempt_at, or held by a program until then), delivered or dead';

CREATE TABLE userlife.webhook_attempt_log (
	attempt_id  bigint GENERATED ALWAYS AS IDENTITY,
	endpoint_id bigint NOT NULL,
	event_id    bigint NOT NULL,
	partner     text NOT NULL,
	at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
	status      integer,
	latency_ms  integer,
	error       text,
	response    text,
	CONSTRAINT webhook_attempt_log_pkey PRIMARY KEY (attempt_id),
	CONSTRAINT webhook_attempt_log_endpoint_fkey FOREIGN KEY (endpoint_id)
		REFERENCES userlife.webhook_endpoints (endpoint_id) ON DELETE CASCADE
);
-- the log grows in time order and is read by time only to drop old rows:
-- a BRIN index costs an insert next to nothing
CREATE INDEX webhook_attempt_log_at_idx ON userlife.webhook_attempt_log USING brin (at);
CREATE INDEX webhook_attempt_log_delivery_idx ON userlife.webhook_attempt_log (endpoint_id, event_id);
COMMENT ON TABLE userlife.webhook_attempt_log IS
	'one row per webhook request made: HTTP status (NULL when none came back), latency, error, first 1 KiB of the response';

SELECT pg_catalog.pg_extension_config_dump('userlife.webhook_endpoints', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.webhook_endpoints_endpoint_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.webhook_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.webhook_secrets_secret_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.webhook_queue', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.webhook_attempt_log', '');
SELECT pg_catalog.pg_extension_config_dump('userlife.webhook_attempt_log_attempt_id_seq', '');

-- Row-level security as on users: a role sees the rows of its bound
-- partners only; the secrets are the extension owner's alone (no policy).
DO $rls$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_queue', 'webhook_attempt_log']
	LOOP
		EXECUTE pg_catalog.format('ALTER TABLE userlife.%I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE pg_catalog.format('CREATE POLICY %I ON userlife.%I FOR SELECT
			USING ((SELECT userlife.sees_every_partner())
				   OR partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]))',
								  pg_catalog.format('%s_by_partner', t), t);
	END LOOP;
END
$rls$;
ALTER TABLE userlife.webhook_secrets ENABLE ROW LEVEL SECURITY;

-- The views read the tables as their owner (the events beyond a cursor
-- are pending deliveries too, and compliance cannot read events), so they
-- filter by the caller's partner bindings themselves, behind a security
-- barrier: a caller's function in WHERE never sees another partner's rows.
CREATE VIEW userlife.webhook_deliveries WITH (security_barrier = true) AS
	SELECT d.partner, d.endpoint_id, d.event_id, d.event_type, d.state, d.attempts,
		   d.next_attempt_at, d.last_status, d.last_error, d.delivered_at
	FROM (SELECT q.partner, q.endpoint_id, q.event_id, q.event_type, q.state, q.attempts,
				 q.next_attempt_at, q.last_status, q.last_error, q.delivered_at
			FROM userlife.webhook_queue q
		  UNION ALL
		  SELECT w.partner, w.endpoint_id, e.event_id, e.event_type, 'pending'::pg_catalog.text,
				 0, NULL::pg_catalog.timestamptz, NULL::pg_catalog.int4, NULL::pg_catalog.text,
				 NULL::pg_catalog.timestamptz
			FROM userlife.webhook_endpoints w
			JOIN userlife.events e ON e.partner OPERATOR(pg_catalog.=) w.partner
			 AND e.event_id OPERATOR(pg_catalog.>) w.cursor_event_id
		   WHERE w.event_types IS NULL OR e.event_type OPERATOR(pg_catalog.=) ANY (w.event_types)) d
	WHERE (SELECT userlife.sees_every_partner())
		  OR d.partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]);
COMMENT ON VIEW userlife.webhook_deliveries IS
	'every webhook delivery of the partners the caller is bound to: pending, delivered or dead';

CREATE VIEW userlife.webhook_attempts WITH (security_barrier = true) AS
	SELECT a.partner, a.endpoint_id, a.event_id, a.at, a.status, a.latency_ms, a.error, a.response
	FROM userlife.webhook_attempt_log a
	WHERE (SELECT userlife.sees_every_partner())
		  OR a.partner OPERATOR(pg_catalog.=) ANY ((SELECT userlife.bound_partners())::pg_catalog.text[]);
COMMENT ON VIEW userlife.webhook_attempts IS
	'the webhook attempt log of the partners the caller is bound to';

CREATE FUNCTION userlife.add_webhook_endpoint(partner text, url text, event_types text[] DEFAULT NULL)
	RETURNS jsonb
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_add_webhook_endpoint';
COMMENT ON FUNCTION userlife.add_webhook_endpoint(text, text, text[]) IS
	'adds a webhook endpoint: {"endpoint_id", "secret"}; the secret is shown only this once';

CREATE FUNCTION userlife.rotate_webhook_secret(partner text, endpoint_id bigint,
	grace interval DEFAULT '1 day')
	RETURNS text
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_rotate_webhook_secret';
COMMENT ON FUNCTION userlife.rotate_webhook_secret(text, bigint, interval) IS
	'a new signing secret (shown once); requests carry both signatures until grace ends';

CREATE FUNCTION userlife.set_webhook_endpoint(partner text, endpoint_id bigint, enabled boolean)
	RETURNS jsonb
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_set_webhook_endpoint';
COMMENT ON FUNCTION userlife.set_webhook_endpoint(text, bigint, boolean) IS
	'enables or disables an endpoint; events committed while disabled are delivered once enabled';

CREATE FUNCTION userlife.remove_webhook_endpoint(partner text, endpoint_id bigint)
	RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_remove_webhook_endpoint';
COMMENT ON FUNCTION userlife.remove_webhook_endpoint(text, bigint) IS
	'removes an endpoint with its secrets, deliveries and attempt log';

CREATE FUNCTION userlife.replay_webhooks(partner text, endpoint_id bigint, since timestamptz,
	until timestamptz DEFAULT pg_catalog.now())
	RETURNS bigint
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_replay_webhooks';
COMMENT ON FUNCTION userlife.replay_webhooks(text, bigint, timestamptz, timestamptz) IS
	'queues every event of the window for the endpoint again, delivered or dead alike; returns how many';

CREATE FUNCTION userlife.claim_webhook_deliveries(max_deliveries integer DEFAULT 100, partner text DEFAULT NULL)
	RETURNS TABLE (endpoint_id bigint, event_id bigint, attempt integer, url text, body text,
				   webhook_id text, webhook_timestamp text, webhook_signature text, timeout_ms integer)
	LANGUAGE c VOLATILE PARALLEL UNSAFE ROWS 100 AS 'MODULE_PATHNAME', 'userlife_claim_webhook_deliveries';
COMMENT ON FUNCTION userlife.claim_webhook_deliveries(integer, text) IS
	'queues new events for the endpoints and claims due deliveries (SKIP LOCKED), signed and ready to send';

CREATE FUNCTION userlife.complete_webhook_delivery(endpoint_id bigint, event_id bigint, attempt integer,
	status integer DEFAULT NULL, latency_ms integer DEFAULT NULL, error text DEFAULT NULL, response text DEFAULT NULL,
	retry_after integer DEFAULT NULL)
	RETURNS text
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_complete_webhook_delivery';
COMMENT ON FUNCTION userlife.complete_webhook_delivery(bigint, bigint, integer, integer, integer, text, text, integer) IS
	'records one attempt of a claimed delivery and schedules what follows; returns the delivery''s state';

-- for the delivery program: the attempts that finished together, in one
-- call and a few statements (complete_webhook_delivery for each position)
CREATE FUNCTION userlife.complete_webhook_deliveries(endpoint_ids bigint[], event_ids bigint[],
	attempts integer[], statuses integer[], latencies integer[], errors text[], responses text[],
	retry_afters integer[])
	RETURNS text[]
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_complete_webhook_deliveries';
COMMENT ON FUNCTION userlife.complete_webhook_deliveries(bigint[], bigint[], integer[], integer[], integer[], text[], text[], integer[]) IS
	'records the attempts of claimed deliveries, one per position of the arrays; returns their states in order';

-- for the delivery program, in the round trip of its claim: true when the
-- session's last claim held events back behind writers still running, so
-- that it polls again after userlife.notify_interval
CREATE FUNCTION userlife.webhook_claim_held_back()
	RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'userlife_webhook_claim_held_back';
COMMENT ON FUNCTION userlife.webhook_claim_held_back() IS
	'whether this session''s last claim_webhook_deliveries held events back behind running writers (poll again soon)';


------------------------------------------------------------------------
-- Preload notice
------------------------------------------------------------------------
-- The settings exist only once the library is loaded: without preloading,
-- SHOW userlife.* fails until a session's first userlife call and a
-- misspelt userlife.* setting is accepted.  CREATE EXTENSION (which runs
-- every script) and ALTER EXTENSION UPDATE end with check_preload(), so the
-- NOTICE that gives the command to preload it comes once, last.  A later
-- update script calls userlife.check_preload() at its own end instead.
CREATE FUNCTION userlife.check_preload() RETURNS boolean
	LANGUAGE c VOLATILE PARALLEL SAFE AS 'MODULE_PATHNAME', 'userlife_check_preload';
COMMENT ON FUNCTION userlife.check_preload() IS
	'true when this session preloaded the userlife library; otherwise a NOTICE with the ALTER SYSTEM and ALTER DATABASE commands that preload it';


------------------------------------------------------------------------
-- Privileges (keep this section the last of the script, before the preload check)
------------------------------------------------------------------------
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

-- SPEC §3's table as rows: a privilege, the object it is on and the
-- audience that gets it.  An audience names the marked columns of the
-- spec's row; admin and owner hold a mark in every row but the owner's own.
DO $grants$
DECLARE
	audiences CONSTANT jsonb := '{
		"reader": "userlife_reader, userlife_developer, userlife_compliance, userlife_admin, userlife_owner",
		"developer": "userlife_developer, userlife_admin, userlife_owner",
		"compliance": "userlife_compliance, userlife_admin, userlife_owner",
		"developer, compliance": "userlife_developer, userlife_compliance, userlife_admin, userlife_owner",
		"admin": "userlife_admin, userlife_owner",
		"owner": "userlife_owner",
		"PUBLIC": "PUBLIC"}';
	g record;
BEGIN
	-- In this order: a second grant on an object (transitions) adds to the
	-- first, so its privileges list the roles as the first one named them.
	-- An unknown audience leaves GRANT without grantees: an error, not a
	-- grant skipped.
	FOR g IN SELECT * FROM (VALUES
		('USAGE', 'SCHEMA userlife', 'reader'),
		('USAGE', 'TYPE userlife.user_status', 'PUBLIC'),
		-- row-level security calls these as the querying role
		('EXECUTE', 'FUNCTION userlife.sees_every_partner()', 'PUBLIC'),
		('EXECUTE', 'FUNCTION userlife.bound_partners()', 'PUBLIC'),
		('SELECT', 'userlife.users', 'reader'),
		('SELECT', 'userlife.status_counts', 'reader'),
		('SELECT', 'userlife.jobs', 'reader'),
		('SELECT', 'userlife.partners', 'reader'),
		('SELECT', 'userlife.transitions', 'reader'),
		('SELECT', 'userlife.audit', 'compliance'),
		('SELECT', 'userlife.due_for_purge', 'compliance'),
		('SELECT', 'userlife.events', 'developer'),
		('SELECT', 'userlife.partner_bindings', 'owner'),
		('SELECT', 'userlife.purge_failures', 'owner'),
		('SELECT', 'userlife.maintenance_log', 'compliance'),
		('SELECT', 'userlife.maintenance_runs', 'compliance'),
		('SELECT', 'userlife.event_backlog', 'developer'),
		('SELECT', 'userlife.audit_size', 'compliance'),
		('INSERT, UPDATE, DELETE', 'userlife.transitions', 'owner'),
		('SELECT', 'userlife.webhook_deliveries', 'compliance'),
		('SELECT', 'userlife.webhook_attempts', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.get_user(text, text)', 'reader'),
		('EXECUTE', 'FUNCTION userlife.list_users(text, userlife.user_status, text, timestamptz, timestamptz, text, integer, uuid, integer)', 'reader'),
		('EXECUTE', 'FUNCTION userlife.count_users(text, userlife.user_status, text, timestamptz, timestamptz, text)', 'reader'),
		('EXECUTE', 'FUNCTION userlife.users_page(text, integer, integer, userlife.user_status, text)', 'reader'),
		('EXECUTE', 'FUNCTION userlife.user_summary(text, text)', 'reader'),
		('EXECUTE', 'FUNCTION userlife.register_user(text, text, text, text, jsonb, text[], userlife.user_status)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.update_user(text, text, text, text, jsonb, text[], bigint)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.mark_verified(text, text, jsonb)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.record_job(text, text, text, text, jsonb)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.import_users(text, jsonb, text, text)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.set_status(text, text, userlife.user_status, text, timestamptz)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.enable_user(text, text, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.disable_user(text, text, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.set_fraud_flag(text, text, boolean, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.allow_reenroll(text, text, boolean, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.delete_user(text, text, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.delete_users(text, text[], text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.restore_user(text, text, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.user_history(text, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.verify_audit(text, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.erase_user(text, text, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.set_legal_hold(text, text, boolean, text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.verify_partner_audit(text)', 'compliance'),
		('EXECUTE', 'FUNCTION userlife.verify_signature(text, text, text, text)', 'developer, compliance'),
		('EXECUTE', 'FUNCTION userlife.enrollee_request(jsonb)', 'developer, compliance'),
		('EXECUTE', 'FUNCTION userlife.canonical_body(jsonb)', 'developer, compliance'),
		('EXECUTE', 'FUNCTION userlife.claim_events(integer, text)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.ack_events(bigint[])', 'developer'),
		('EXECUTE', 'FUNCTION userlife.create_partner(text, text, interval)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.set_retention(text, interval)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.bind_partner(regrole, text)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.unbind_partner(regrole, text)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.issue_api_key(text, text, interval)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.generate_signature(text, text, text)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.purge_expired(integer)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.run_maintenance(integer)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.schedule_maintenance(text)', 'owner'),
		('EXECUTE', 'FUNCTION userlife.unschedule_maintenance()', 'owner'),
		('EXECUTE', 'FUNCTION userlife.rebuild_search()', 'owner'),
		('EXECUTE', 'FUNCTION userlife.add_webhook_endpoint(text, text, text[])', 'admin'),
		('EXECUTE', 'FUNCTION userlife.rotate_webhook_secret(text, bigint, interval)', 'admin'),
		('EXECUTE', 'FUNCTION userlife.set_webhook_endpoint(text, bigint, boolean)', 'admin'),
		('EXECUTE', 'FUNCTION userlife.remove_webhook_endpoint(text, bigint)', 'admin'),
		('EXECUTE', 'FUNCTION userlife.replay_webhooks(text, bigint, timestamptz, timestamptz)', 'admin'),
		('EXECUTE', 'FUNCTION userlife.claim_webhook_deliveries(integer, text)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.complete_webhook_delivery(bigint, bigint, integer, integer, integer, text, text, integer)', 'developer'),
		('EXECUTE', 'FUNCTION userlife.complete_webhook_deliveries(bigint[], bigint[], integer[], integer[], integer[], text[], text[], integer[])', 'developer'),
		('EXECUTE', 'FUNCTION userlife.webhook_claim_held_back()', 'developer'),
		('EXECUTE', 'FUNCTION userlife.check_preload()', 'owner')
	) AS t (privilege, object, audience)
	LOOP
		EXECUTE pg_catalog.format('GRANT %s ON %s TO %s', g.privilege, g.object,
								  audiences OPERATOR(pg_catalog.->>) g.audience);
	END LOOP;
END
$grants$;

-- last: the preload notice (creates nothing)
SELECT userlife.check_preload();
