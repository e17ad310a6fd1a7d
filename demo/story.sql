-- demo/story.sql — a readable walk through a user's lifecycle.
\set ON_ERROR_STOP 1
\pset footer off
\set QUIET 1
SET client_min_messages = warning;

\echo
\echo '== 1. Install: CREATE EXTENSION userlife CASCADE (pulls in pgcrypto and pg_trgm)'
CREATE EXTENSION IF NOT EXISTS userlife CASCADE;
SELECT extname, extversion FROM pg_extension WHERE extname IN ('userlife', 'pgcrypto', 'pg_trgm') ORDER BY 1;

\echo '== 2. A partner (tenant) with a 30-day retention for deleted users'
SELECT partner, display_name, retention FROM userlife.create_partner('acme', 'Acme Payments', '30 days');
\if :{?webhook_url}
\echo '   and its webhook endpoint: every change from now on is POSTed to it, signed as Standard'
\echo '   Webhooks says; the secret is shown once (demo/run gives it to the partner''s receiver)'
SELECT e->>'endpoint_id' AS endpoint_id, e->>'secret' AS secret
  FROM userlife.add_webhook_endpoint('acme', :'webhook_url') e \gset wh_
SELECT :'wh_endpoint_id' AS endpoint_id, url, enabled, :'wh_secret' AS secret
  FROM userlife.webhook_endpoints WHERE endpoint_id = :'wh_endpoint_id';
SELECT pg_catalog.json_build_object('acme', :'wh_secret') \g (format=unaligned tuples_only=on) :secrets_file
\else
\echo '   (its webhook endpoint: skipped; demo/run sets webhook_url and starts a receiver)'
\endif

\echo '== 3. The partner registers three end users; an operator is named for the audit'
SET userlife.actor = 'onboarding-service';
SELECT external_id, display_name, email, status, version
  FROM userlife.register_user('acme', 'cust-001', 'Ada Lovelace', 'ada@example.com', '{"plan": "pro"}', '{beta}');
SELECT external_id, display_name, email, status, version
  FROM userlife.register_user('acme', 'cust-002', 'Grace Hopper', 'grace@example.com');
SELECT external_id, display_name, email, status, version
  FROM userlife.register_user('acme', 'cust-003', 'Alan Turing', 'alan@example.com', status => 'inactive');

\echo '== 4. The users, as list_users pages them'
SELECT external_id, display_name, status, tags FROM userlife.list_users('acme');

\echo '== 5. What each registration wrote, in the same transaction: one audit row ...'
SELECT audit_id, action, external_id, db_role, actor, changed_fields FROM userlife.audit ORDER BY audit_id;
\echo '   ... and one change event for the outbox'
SELECT event_id, event_type, payload->>'external_id' AS external_id, payload->>'status' AS status
  FROM userlife.events ORDER BY event_id;

\echo '== 6. Ada through the status machine (userlife.transitions decides what is allowed)'
SET userlife.actor = 'ops@acme.test';
\echo '   flag for review:'
SELECT status, status_reason, version FROM userlife.set_status('acme', 'cust-001', 'flagged', 'unusual login pattern');
\echo '   block -- a reason is required; without one the call fails with 22023:'
\set ON_ERROR_STOP 0
SELECT userlife.set_status('acme', 'cust-001', 'blocked');
\set ON_ERROR_STOP 1
SELECT status, status_reason, version FROM userlife.set_status('acme', 'cust-001', 'blocked', 'chargeback confirmed');
\echo '   blocked -> inactive is not in the table: UL001'
\set ON_ERROR_STOP 0
SELECT userlife.disable_user('acme', 'cust-001', 'try');
\set ON_ERROR_STOP 1
\echo '   unblock (blocked -> active, with a reason):'
SELECT status, status_reason, version FROM userlife.enable_user('acme', 'cust-001', 'chargeback reversed by bank');

\echo '== 7. Fraud flag: jobs are still recorded with all their data, but every one fails'
SELECT is_fraudulent, version FROM userlife.set_fraud_flag('acme', 'cust-001', true, 'linked to fraud ring');
SELECT job_type, outcome, failure_reason, payload
  FROM userlife.record_job('acme', 'cust-001', 'document_check', 'passed', '{"score": 0.97}');

\echo '== 8. Soft deletion, then restore within the retention window'
SELECT status, deleted_at IS NOT NULL AS deleted, purge_after::date - deleted_at::date AS days_kept
  FROM userlife.delete_user('acme', 'cust-001', 'user asked to close the account');
SELECT status, deleted_at IS NULL AS undeleted FROM userlife.restore_user('acme', 'cust-001', 'closed by mistake');

\echo '== 9. Re-enrollment: refused (23505) until compliance allows it, then allowed once'
\set ON_ERROR_STOP 0
SELECT userlife.register_user('acme', 'cust-001', 'Ada King');
\set ON_ERROR_STOP 1
SELECT userlife.allow_reenroll('acme', 'cust-001', reason => 'identity re-verified');
SELECT external_id, display_name, status, enrollment_count, is_fraudulent, version
  FROM userlife.register_user('acme', 'cust-001', 'Ada King', 'ada.king@example.com');

\echo '== 10. Ada''s audit trail, oldest first, and its hash chain'
SELECT audit_id, action, actor, reason, changed_fields FROM userlife.user_history('acme', 'cust-001');
SELECT userlife.verify_audit('acme', 'cust-001') AS chain_intact;

\echo '== 11. A signed request from the partner: Grace is suspended for fraud by the partner''s ops team'
\echo '   the partner''s API key (returned once; only the extension owner can read it again):'
SELECT length(userlife.issue_api_key('acme')) AS api_key_length;
\echo '   the body the partner sends, signed with base64(HMAC-SHA256(key, timestamp || partner || ''sid_request'')):'
SELECT jsonb_build_object('partner_id', 'acme', 'user_id', 'cust-002', 'environment', 'production',
                          'email', 'fraud-desk@acme.test', 'is_fraudulent', true, 'active', false)
       || userlife.generate_signature('acme') AS body \gset
SELECT jsonb_pretty(:'body');
SELECT userlife.enrollee_request(:'body');
\echo '   the same body again is a replay: refused with UL003, nothing changes'
\set ON_ERROR_STOP 0
SELECT userlife.enrollee_request(:'body');
\set ON_ERROR_STOP 1
SELECT action, actor, reason, changed_fields FROM userlife.user_history('acme', 'cust-002');

\echo '== 12. Users per status'
SELECT status, users FROM userlife.status_counts WHERE partner = 'acme' ORDER BY status;

\echo '== 13. Retention: a partner keeping deleted users for 2 seconds'
SELECT partner, retention FROM userlife.create_partner('shortlived', 'Short-lived Ltd', '2 seconds');
SELECT external_id, display_name, email FROM userlife.register_user('shortlived', 'temp-42', 'Tess Temporary', 'tess@example.com', '{"passport": "X1234567"}');
SELECT status, purge_after > deleted_at AS kept_until_purge_after FROM userlife.delete_user('shortlived', 'temp-42', 'account closed');
\echo '   due for purge once the retention has run out:'
SELECT pg_sleep(2.5);
SELECT partner, external_id, legal_hold FROM userlife.due_for_purge;
SELECT userlife.purge_expired() AS users_purged;
\echo '   what remains is a tombstone: a digest of the external_id, nothing personal'
SELECT partner, encode(external_id_digest, 'hex') AS external_id_sha256, enrollment_count, purged_at IS NOT NULL AS purged
  FROM userlife.tombstones WHERE partner = 'shortlived';
\echo '   and a redacted audit: personal values are now their SHA-256 digests, the chain still verifies'
SELECT action, external_id, redacted_fields, new_values->>'display_name' AS display_name
  FROM userlife.user_history('shortlived', 'temp-42');
SELECT userlife.verify_audit('shortlived', 'temp-42') AS chain_intact;

\echo '== 14. A partner moving from another provider pre-loads its roster in one call'
\echo '   one row per item, in input order; the bad e-mail fails alone, the others are created'
\echo '   with their original registration time'
SELECT item, external_id, result, sqlstate, message
  FROM userlife.import_users('acme', '[
	{"external_id": "legacy-1", "display_name": "Katherine Johnson", "email": "katherine@example.com",
	 "created_at": "2019-04-01T09:00:00Z", "tags": ["migrated"]},
	{"external_id": "legacy-2", "display_name": "Dorothy Vaughan", "email": "dorothy(at)example.com"},
	{"external_id": "legacy-3", "display_name": "Mary Jackson", "email": "mary@example.com",
	 "created_at": "2020-09-15T14:30:00+02:00", "status": "inactive"},
	{"external_id": "cust-002", "display_name": "Grace H."}
  ]', on_conflict => 'skip', reason => 'migration from the old provider');
SELECT external_id, display_name, status, created_at::date AS registered FROM userlife.list_users('acme', page_size => 3);
\echo '   each imported user has its register audit row, chained as register_user writes it'
SELECT external_id, action, reason FROM userlife.audit WHERE external_id LIKE 'legacy-%' ORDER BY audit_id;
SELECT userlife.verify_audit('acme', 'legacy-1') AS chain_intact;

\echo '== 15. A user at a glance: the row and its counters'
SELECT s->'user'->>'display_name' AS name, (s->'jobs') - 'last_at' AS jobs, s->'changes'->'total' AS changes, s->'webhooks' AS webhooks
  FROM userlife.user_summary('acme', 'cust-001') s;
