-- Operations (issue 17 points 4, 8, 9): the monitoring views' columns and
-- contents, the event payload a consumer reads, and the messages of
-- rebuild_search and verify_partner_audit.
\set SHOW_CONTEXT never
SELECT partner FROM userlife.create_partner('opsview');
SELECT external_id FROM userlife.register_user('opsview', 'v-1', 'Vee One', 'v1@example.com');
SELECT external_id FROM userlife.register_user('opsview', 'v-2');
SELECT external_id, status FROM userlife.set_status('opsview', 'v-2', 'suspended', 'review');

-- what a consumer reads: every key, action and audit_id among them
SELECT e.event_type, jsonb_object_keys(e.payload) AS key
  FROM userlife.events e JOIN userlife.users u USING (user_id)
 WHERE u.partner = 'opsview' AND u.external_id = 'v-2'
 ORDER BY e.event_id, key;
SELECT e.payload->>'action' AS action, e.payload->'audit_id' = to_jsonb(e.audit_id) AS audit_id_matches
  FROM userlife.events e WHERE e.partner = 'opsview' ORDER BY e.event_id;

-- event backlog: three undelivered, one of them claimed, nothing lapsed
SELECT count(*) FROM userlife.claim_events(1, 'opsview');
SELECT partner, undelivered, oldest_undelivered_at IS NOT NULL AS has_oldest,
       oldest_undelivered_age >= interval '0' AS has_age, claimed_unacknowledged, claims_lapsed
  FROM userlife.event_backlog WHERE partner = 'opsview';
SELECT userlife.ack_events(ARRAY(SELECT event_id FROM userlife.events WHERE partner = 'opsview'));
SELECT partner, undelivered, oldest_undelivered_at, oldest_undelivered_age, claimed_unacknowledged
  FROM userlife.event_backlog WHERE partner = 'opsview';

-- audit size
SELECT partner, audit_rows, bytes > 0 AS has_bytes, oldest_at <= newest_at AS ordered
  FROM userlife.audit_size WHERE partner = 'opsview';

-- maintenance runs
SELECT (userlife.run_maintenance(5) ->> 'users_purged') IS NOT NULL AS ran;
SELECT batch_size, duration >= interval '0' AS has_duration, users_purged IS NOT NULL AS has_purged,
       counts ? 'purge_failed' AS has_counts
  FROM userlife.maintenance_runs ORDER BY run_id DESC LIMIT 1;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'userlife' AND table_name IN ('maintenance_runs', 'event_backlog', 'audit_size')
 ORDER BY table_name, ordinal_position;

-- verify_partner_audit: nothing broken, and the errors
SELECT * FROM userlife.verify_partner_audit('opsview');
SELECT * FROM userlife.verify_partner_audit(NULL);
SELECT * FROM userlife.verify_partner_audit('bad partner');
SELECT * FROM userlife.verify_partner_audit('no-such-partner');

-- roles: monitoring views and functions are not for everyone
CREATE ROLE regress_ops_reader IN ROLE userlife_reader;
CREATE ROLE regress_ops_developer IN ROLE userlife_developer;
SET ROLE regress_ops_reader;
SELECT * FROM userlife.verify_partner_audit('opsview');
SELECT count(*) FROM userlife.event_backlog;
SELECT count(*) FROM userlife.maintenance_runs;
SELECT userlife.rebuild_search();
SET ROLE regress_ops_developer;
SELECT count(*) >= 0 AS readable FROM userlife.event_backlog;
SELECT count(*) FROM userlife.audit_size;
RESET ROLE;
DROP ROLE regress_ops_reader;
DROP ROLE regress_ops_developer;

-- rebuild_search: the number of users
SELECT userlife.rebuild_search() = (SELECT count(*) FROM userlife.users) AS every_user;
