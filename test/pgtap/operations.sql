-- Operations (issue 17 points 4, 6, 8, 9): register_user returns the row
-- with its audit_head (SPEC §5 "the whole row after the change"); event
-- payloads carry action and audit_id on both append paths (§8);
-- verify_partner_audit (§7); rebuild_search (§5.6); the maintenance log
-- and the event backlog as behaviour (their output format is in
-- sql/11_operations.sql).
BEGIN;
SELECT plan(28);

SELECT lives_ok($$SELECT userlife.create_partner('ops1')$$, 'partner ops1');
SELECT lives_ok($$SELECT userlife.create_partner('ops2')$$, 'partner ops2');
CREATE TEMP TABLE reg AS
	SELECT r.* FROM userlife.register_user('ops1', 'alice', 'Alice Example', 'alice@example.com') r;

-- point 6: the row register_user returns is the final row
SELECT isnt((SELECT audit_head FROM reg), NULL, 'register_user returns audit_head');
SELECT is((SELECT audit_head FROM reg),
          (SELECT row_hash FROM userlife.audit a JOIN reg USING (user_id) ORDER BY audit_id DESC LIMIT 1),
          'its audit_head is the hash of the register audit row');
SELECT is((SELECT to_jsonb(r) FROM reg r), (SELECT to_jsonb(g) FROM userlife.get_user('ops1', 'alice') g),
          'register_user returns the row get_user reads afterwards');
SELECT ok(userlife.verify_audit('ops1', 'alice'), 'the chain of a new user verifies');
SELECT is((SELECT count(*) FROM userlife.audit_keys k JOIN reg USING (user_id)), 1::bigint,
          'the new user''s digest key is stored once');
SELECT throws_ok($$SELECT userlife.register_user('ops1', 'alice')$$, '23505', NULL,
                 'a duplicate registration still fails');
SELECT lives_ok($$SELECT userlife.register_user('ops1', 'bob', 'Bob')$$, 'bob registered');
SELECT lives_ok($$SELECT userlife.update_user('ops1', 'bob', display_name => 'Bobby')$$, 'bob renamed');
SELECT ok(userlife.verify_audit('ops1', 'bob'), 'a user registered with its head and then changed verifies');

-- point 8: action and audit_id in every payload
SELECT lives_ok($$SELECT userlife.set_status('ops1', 'bob', 'suspended', 'check')$$, 'bob suspended');
SELECT lives_ok($$SELECT userlife.delete_user('ops1', 'bob')$$, 'bob deleted');
SELECT results_eq($$SELECT e.payload->>'action' FROM userlife.events e JOIN userlife.users u USING (user_id)
                    WHERE u.external_id = 'bob' ORDER BY e.event_id$$,
                  ARRAY['register', 'update', 'status', 'delete'], 'payload action is the audit action');
SELECT is((SELECT count(*) FROM userlife.events e WHERE e.partner = 'ops1'
           AND (e.payload->'audit_id') = to_jsonb(e.audit_id)), 5::bigint,
          'payload audit_id is the event''s audit row');
SELECT is((SELECT count(*) FROM userlife.events e WHERE e.partner = 'ops1'
           AND e.payload ?& ARRAY['partner', 'external_id', 'user_id', 'changed_fields', 'status', 'at']), 5::bigint,
          'the earlier keys are all still there');
-- the SQL append path: an INSERT trigger on audit makes the direct path step aside
CREATE FUNCTION pg_temp.audit_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER ops_noop BEFORE INSERT ON userlife.audit FOR EACH ROW EXECUTE FUNCTION pg_temp.audit_noop();
SELECT lives_ok($$SELECT userlife.register_user('ops2', 'carol')$$, 'a registration through the SQL path');
SELECT is((SELECT e.payload->'audit_id' = to_jsonb(e.audit_id) AND e.payload->>'action' = 'register'
           FROM userlife.events e WHERE e.partner = 'ops2'), true,
          'the SQL path fills action and audit_id too');
DROP TRIGGER ops_noop ON userlife.audit;

-- point 9: verify_partner_audit
SELECT is_empty($$SELECT * FROM userlife.verify_partner_audit('ops1')$$, 'a sound partner: no rows');
SELECT lives_ok($$SELECT userlife.register_user('ops1', 'dave'), userlife.register_user('ops1', 'erin'),
                         userlife.erase_user('ops1', 'erin', 'right to erasure')$$, 'dave registered, erin erased');
SET LOCAL session_replication_role = replica;
UPDATE userlife.users SET audit_head = sha256('forged') WHERE partner = 'ops1' AND external_id = 'dave';
UPDATE userlife.tombstones SET audit_head = sha256('forged')
 WHERE partner = 'ops1' AND external_id_digest = sha256(convert_to('erin', 'UTF8'));
RESET session_replication_role;
SELECT results_eq($$SELECT coalesce(external_id, '(purged)'), user_id FROM userlife.verify_partner_audit('ops1') ORDER BY 1$$,
                  $$VALUES ('(purged)', (SELECT user_id FROM userlife.tombstones WHERE partner = 'ops1')),
                           ('dave', (SELECT user_id FROM userlife.users WHERE partner = 'ops1' AND external_id = 'dave'))$$,
                  'the broken chains, a purged user by its tombstone');
SELECT throws_ok($$SELECT * FROM userlife.verify_partner_audit(NULL)$$, '22004', NULL, 'NULL partner: 22004');
SELECT throws_ok($$SELECT * FROM userlife.verify_partner_audit('no partner!')$$, '22023', NULL, 'malformed partner: 22023');

-- point 4: rebuild_search restores a missing document and drops an orphan
DELETE FROM userlife.user_search s USING userlife.users u
 WHERE s.user_id = u.user_id AND u.partner = 'ops1' AND u.external_id = 'alice';
INSERT INTO userlife.user_search VALUES (gen_random_uuid(), 'ops1', 'orphan');
SELECT is(userlife.rebuild_search(), (SELECT count(*) FROM userlife.users), 'rebuild_search returns the number of users');
SELECT results_eq($$SELECT external_id FROM userlife.list_users('ops1', search => 'alice example')$$,
                  ARRAY['alice'], 'the missing document is back');
SELECT is((SELECT count(*) FROM userlife.user_search s
           WHERE NOT EXISTS (SELECT 1 FROM userlife.users u WHERE u.user_id = s.user_id)), 0::bigint,
          'documents without a user are gone');

-- point 9: one maintenance log row per run_maintenance, old rows dropped
INSERT INTO userlife.maintenance_log (started_at, finished_at, db_role, batch_size, counts)
VALUES (now() - interval '31 days', now() - interval '31 days', 'x', 1, '{}');
SELECT lives_ok($$SELECT userlife.run_maintenance(10)$$, 'run_maintenance');
SELECT is((SELECT count(*) FILTER (WHERE started_at >= now() - interval '1 minute' AND batch_size = 10)
                  || '/' || count(*) FILTER (WHERE started_at < now() - interval '30 days')
           FROM userlife.maintenance_runs), '1/0',
          'the call is logged and a row older than 30 days dropped');

SELECT * FROM finish();
ROLLBACK;
