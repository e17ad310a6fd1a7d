-- Registration (register_user), reading (get_user) and the audit row and
-- event every registration writes, through the function or a direct INSERT.
\set SHOW_CONTEXT never
SELECT external_id, display_name, email, status, is_fraudulent, allow_new_enroll,
       enrollment_count, legal_hold, metadata, tags, version, verified_at IS NULL AS unverified,
       created_at = updated_at AS fresh, deleted_at IS NULL AS not_deleted
  FROM userlife.register_user('acme', 'u-1', 'Ann Example', 'ann@example.com',
                              '{"plan": "gold"}', '{vip,beta}');
-- defaults: external_id is the user_id, status active
SELECT external_id = user_id::text AS external_id_is_user_id, status, metadata, tags
  FROM userlife.register_user('acme');
SELECT external_id, status FROM userlife.register_user('acme', 'u-2', status => 'inactive');
SELECT external_id, status FROM userlife.register_user('acme', 'u-3', status => 'flagged');
-- external_id is case-sensitive
SELECT external_id FROM userlife.register_user('acme', 'U-1');
-- the same external_id at another partner is another user
SELECT partner, external_id FROM userlife.register_user('gamma', 'u-1', email => 'ann@example.com');

-- get_user
SELECT external_id, display_name, version FROM userlife.get_user('acme', 'u-1');
SELECT userlife.get_user('acme', 'nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.get_user('nobody', 'u-1');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.get_user('acme', NULL);
\echo :LAST_ERROR_SQLSTATE

-- errors
SELECT userlife.register_user(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('bad partner');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('nobody', 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', '');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', repeat('x', 256));
\echo :LAST_ERROR_SQLSTATE
SELECT length(external_id) FROM userlife.register_user('acme', repeat('x', 255));
SELECT userlife.register_user('acme', 'e1', email => 'not-an-address');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', email => 'two@@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', email => 'a b@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', email => 'nodot@example');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', email => '@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', metadata => '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', metadata => '"text"');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', tags => ARRAY['a', NULL]);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', status => 'blocked');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', status => 'deleted');
\echo :LAST_ERROR_SQLSTATE
-- duplicates
SELECT userlife.register_user('acme', 'u-1');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('acme', 'e1', email => 'ANN@example.COM');
\echo :LAST_ERROR_SQLSTATE
-- nothing of the failed calls was written
SELECT count(*) AS users_e1 FROM userlife.users WHERE external_id = 'e1';

-- the audit rows and events of registrations
BEGIN;
SET LOCAL userlife.actor = 'ops@acme.test';
SET LOCAL userlife.reason = 'signup';
SELECT external_id FROM userlife.register_user('acme', 'u-audit', 'Audit Me', 'audit@example.com');
SELECT action, db_role, actor, reason, changed_fields, old_values, new_values,
       prev_hash IS NULL AS chain_start, length(row_hash) AS hash_bytes,
       txid = pg_current_xact_id() AS this_txn, at = now() AS at_now
  FROM userlife.audit WHERE external_id = 'u-audit';
COMMIT;
SELECT e.event_type, e.payload - 'user_id' - 'at' - 'audit_id' AS payload,
       e.audit_id = a.audit_id AND e.payload->'audit_id' = to_jsonb(a.audit_id) AS same_change
  FROM userlife.events e JOIN userlife.audit a USING (audit_id)
 WHERE a.external_id = 'u-audit';
-- one audit row and one event per registration so far
SELECT (SELECT count(*) FROM userlife.users) AS users,
       (SELECT count(*) FROM userlife.audit) AS audit_rows,
       (SELECT count(*) FROM userlife.events) AS events;

-- a direct INSERT by a superuser is audited like register_user
INSERT INTO userlife.users (partner, external_id, display_name, email)
VALUES ('acme', 'direct-1', 'Direct Insert', 'direct@example.com');
SELECT action, db_role, changed_fields, new_values->>'display_name' AS name
  FROM userlife.audit WHERE external_id = 'direct-1';
SELECT event_type FROM userlife.events e JOIN userlife.audit a USING (audit_id)
 WHERE a.external_id = 'direct-1';
-- ... and a direct INSERT cannot start a user in a status a registration cannot
INSERT INTO userlife.users (partner, external_id, status) VALUES ('acme', 'direct-2', 'blocked');
\echo :LAST_ERROR_SQLSTATE
-- ... nor skip the checks
\set VERBOSITY terse
INSERT INTO userlife.users (partner, external_id, email) VALUES ('acme', 'direct-3', 'nope');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY default
-- the bookkeeping columns are the trigger's, whatever the INSERT says
INSERT INTO userlife.users (partner, external_id, version, enrollment_count)
VALUES ('acme', 'direct-4', 42, 7);
SELECT version, enrollment_count FROM userlife.users WHERE external_id = 'direct-4';
-- INSERT ... ON CONFLICT DO NOTHING that inserts nothing audits nothing
INSERT INTO userlife.users (partner, external_id) VALUES ('acme', 'direct-4') ON CONFLICT DO NOTHING;
SELECT count(*) AS audit_rows_direct_4 FROM userlife.audit WHERE external_id = 'direct-4';
