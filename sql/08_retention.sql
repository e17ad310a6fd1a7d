-- Retention, erasure, legal hold, maintenance, the audit guard and the
-- outbox functions: their messages.
\set SHOW_CONTEXT never
SELECT partner FROM userlife.create_partner('ret', retention => '1 day');
SELECT external_id FROM userlife.register_user('ret', 'h-1', 'Hal', 'hal@example.com');

-- legal hold
SELECT legal_hold, version FROM userlife.set_legal_hold('ret', 'h-1', true, 'subpoena');
SELECT legal_hold, version FROM userlife.set_legal_hold('ret', 'h-1', true, 'again');
SELECT userlife.erase_user('ret', 'h-1', 'gdpr');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM userlife.users WHERE external_id = 'h-1';
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_legal_hold('ret', 'h-1', NULL, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_legal_hold('ret', 'h-1', false, NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_legal_hold('ret', 'nobody', true, 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT legal_hold FROM userlife.set_legal_hold('ret', 'h-1', false, 'case closed');
SELECT action, reason, changed_fields FROM userlife.audit WHERE external_id = 'h-1' ORDER BY audit_id;

-- erasure
SELECT userlife.erase_user('ret', 'h-1', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.erase_user('ret', 'h-1', '');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.erase_user('ret', 'nobody', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.erase_user('ret', 'h-1', 'right to erasure');
SELECT userlife.erase_user('ret', 'h-1', 'twice');
\echo :LAST_ERROR_SQLSTATE
SELECT action, reason, external_id, redacted_fields FROM userlife.user_history('ret', 'h-1');
SELECT userlife.verify_audit('ret', 'h-1');

-- purge
SELECT userlife.purge_expired(0);
\echo :LAST_ERROR_SQLSTATE
-- a paced purge: a negative rate is refused; a cancel ends a pause and
-- the purge removes no one
SET userlife.purge_rate_limit = -1;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM generate_series(1, 10) i, LATERAL userlife.register_user('ret', 'pace-' || i) r,
       LATERAL userlife.delete_user('ret', r.external_id) d;
UPDATE userlife.users SET purge_after = now() - interval '1 minute' WHERE partner = 'ret' AND external_id LIKE 'pace-%';
SET userlife.purge_rate_limit = 5;
SET statement_timeout = '300ms';
SELECT userlife.purge_expired(10);
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT count(*) FROM userlife.users WHERE partner = 'ret' AND external_id LIKE 'pace-%';
RESET userlife.purge_rate_limit;
SELECT userlife.purge_expired(10);
SELECT userlife.run_maintenance(-1);
\echo :LAST_ERROR_SQLSTATE
-- terse: the hint names this database and where pg_cron runs (test/scripts/cron.sh checks it)
\set VERBOSITY terse
SELECT userlife.schedule_maintenance();
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE

-- the audit is append-only
UPDATE userlife.audit SET reason = 'rewritten';
\echo :LAST_ERROR_SQLSTATE
DELETE FROM userlife.audit;
\echo :LAST_ERROR_SQLSTATE
TRUNCATE userlife.audit;
\echo :LAST_ERROR_SQLSTATE

-- outbox
SELECT userlife.claim_events(0);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.claim_events(10001);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.claim_events(10, 'bad partner');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.ack_events(NULL);
\echo :LAST_ERROR_SQLSTATE
