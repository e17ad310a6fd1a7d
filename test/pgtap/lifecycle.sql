-- Lifecycle contracts: SQLSTATEs of SPEC §6 for the lifecycle functions,
-- version counting, one audit row and one event per real change, the hash
-- chain, and what a direct UPDATE by a superuser does.
BEGIN;
SELECT plan(40);

SELECT lives_ok($$SELECT userlife.create_partner('tap')$$, 'create partner');
SELECT lives_ok($$SELECT userlife.register_user('tap', 'a', 'Alice', 'alice@example.com')$$, 'register alice');
SELECT lives_ok($$SELECT userlife.register_user('tap', 'b', 'Bob', 'bob@example.com')$$, 'register bob');

-- SQLSTATEs
SELECT throws_ok($$SELECT userlife.create_partner('tap')$$, '23505', NULL, 'duplicate partner: 23505');
SELECT throws_ok($$SELECT userlife.create_partner('no spaces')$$, '22023', NULL, 'malformed partner: 22023');
SELECT throws_ok($$SELECT userlife.register_user('tap', 'a')$$, '23505', NULL, 'duplicate external_id: 23505');
SELECT throws_ok($$SELECT userlife.register_user('tap', 'c', email => 'ALICE@example.com')$$, '23505', NULL,
                 'duplicate email, other case: 23505');
SELECT throws_ok($$SELECT userlife.register_user('nope', 'c')$$, 'P0002', NULL, 'unknown partner: P0002');
SELECT throws_ok($$SELECT userlife.get_user('tap', 'zz')$$, 'P0002', NULL, 'unknown user: P0002');
SELECT throws_ok($$SELECT userlife.set_status('tap', 'a', 'blocked')$$, '22023', NULL, 'block without reason: 22023');
SELECT throws_ok($$SELECT userlife.set_status('tap', 'a', 'deleted')$$, '22023', NULL, 'set_status deleted: 22023');
SELECT throws_ok($$SELECT userlife.update_user('tap', 'a', display_name => 'x', expected_version => 99)$$,
                 'UL002', NULL, 'stale version: UL002');
SELECT throws_ok($$SELECT userlife.register_user('tap', NULL, metadata => '[]')$$, '22023', NULL,
                 'metadata not an object: 22023');
SELECT throws_ok($$SELECT userlife.get_user(NULL, 'a')$$, '22004', NULL, 'NULL partner: 22004');

-- version counts real changes; a no-op changes nothing
SELECT lives_ok($$SELECT userlife.set_status('tap', 'a', 'suspended', 'check')$$, 'suspend alice');
SELECT lives_ok($$SELECT userlife.set_status('tap', 'a', 'suspended', 'check again')$$, 'suspend alice again (no-op)');
SELECT lives_ok($$SELECT userlife.set_fraud_flag('tap', 'a', true, 'ring')$$, 'flag alice as fraudulent');
SELECT lives_ok($$SELECT userlife.update_user('tap', 'a', metadata => '{"k": 1}')$$, 'update alice');
SELECT lives_ok($$SELECT userlife.update_user('tap', 'a', metadata => '{"k": 1}')$$, 'update alice again (no-op)');
SELECT is((SELECT version FROM userlife.get_user('tap', 'a')), 4::bigint, 'version = 1 + three real changes');
SELECT is((SELECT count(*) FROM userlife.audit a JOIN userlife.users u USING (user_id)
            WHERE u.partner = 'tap' AND u.external_id = 'a'), 4::bigint,
          'one audit row per real change, registration included');
SELECT is((SELECT count(*) FROM userlife.audit a LEFT JOIN userlife.events e USING (audit_id)
            WHERE a.partner = 'tap' AND e.event_id IS NULL), 0::bigint,
          'every audit row has its event');
SELECT is((SELECT count(*) FROM userlife.events e JOIN userlife.audit a USING (audit_id)
            WHERE a.partner = 'tap'),
          (SELECT count(*) FROM userlife.audit WHERE partner = 'tap'), 'no audit row has two events');
SELECT results_eq($$SELECT action FROM userlife.user_history('tap', 'a')$$,
                  ARRAY['register', 'status', 'fraud_flag', 'update'], 'user_history, oldest first');
SELECT results_eq($$SELECT e.event_type FROM userlife.events e JOIN userlife.audit a USING (audit_id)
                    WHERE a.partner = 'tap' AND a.external_id = 'a' ORDER BY e.event_id$$,
                  ARRAY['user.data.updated', 'user.status.updated', 'user.status.updated', 'user.data.updated'],
                  'event types follow the action');

-- the hash chain
SELECT ok(userlife.verify_audit('tap', 'a'), 'intact chain verifies');
SELECT ok((SELECT bool_and(a.prev_hash = p.row_hash)
             FROM userlife.audit a
             JOIN LATERAL (SELECT row_hash FROM userlife.audit p
                            WHERE p.user_id = a.user_id AND p.audit_id < a.audit_id
                            ORDER BY p.audit_id DESC LIMIT 1) p ON true
            WHERE a.partner = 'tap'), 'each row links to the previous row of its user');
SELECT is((SELECT u.audit_head FROM userlife.users u WHERE partner = 'tap' AND external_id = 'a'),
          (SELECT a.row_hash FROM userlife.audit a WHERE partner = 'tap' AND external_id = 'a'
            ORDER BY audit_id DESC LIMIT 1), 'the users row keeps the chain head');

-- a direct UPDATE by a superuser goes through the same rules and audit
SELECT throws_ok($$UPDATE userlife.users SET status = 'blocked' WHERE partner = 'tap' AND external_id = 'b'$$,
                 '22023', NULL, 'direct block without reason: 22023');
SELECT lives_ok($$UPDATE userlife.users SET status = 'blocked', status_reason = 'manual'
                   WHERE partner = 'tap' AND external_id = 'b'$$, 'direct block with a reason');
SELECT throws_ok($$UPDATE userlife.users SET status = 'flagged' WHERE partner = 'tap' AND external_id = 'b'$$,
                 'UL001', NULL, 'direct blocked -> flagged: UL001');
SELECT is((SELECT action || '/' || reason || '/' || db_role FROM userlife.audit
            WHERE partner = 'tap' AND external_id = 'b' ORDER BY audit_id DESC LIMIT 1),
          'status/manual/' || current_user, 'the direct change is audited with its reason and role');
SELECT is((SELECT version FROM userlife.users WHERE partner = 'tap' AND external_id = 'b'), 2::bigint,
          'the direct change bumps the version');
SELECT lives_ok($$UPDATE userlife.users SET version = 100, updated_at = now() - interval '1 year'
                   WHERE partner = 'tap' AND external_id = 'b'$$, 'bookkeeping-only direct update');
SELECT is((SELECT version FROM userlife.users WHERE partner = 'tap' AND external_id = 'b'), 2::bigint,
          'bookkeeping columns cannot be forged');
SELECT ok(userlife.verify_audit('tap', 'b'), 'chain of a directly changed user verifies');

-- the fraud flag: jobs recorded, all failed
SELECT is((SELECT outcome || '/' || failure_reason FROM userlife.record_job('tap', 'a', 'kyc', 'passed', '{"s": 1}')),
          'failed/fraud_suspected', 'a fraudulent user''s job fails with fraud_suspected');
SELECT is((SELECT payload FROM userlife.jobs j JOIN userlife.users u USING (user_id)
            WHERE u.external_id = 'a' AND u.partner = 'tap'), '{"s": 1}'::jsonb, 'its data is kept');

-- re-enrollment keeps the fraud flag and continues the chain
SELECT lives_ok($$SELECT userlife.allow_reenroll('tap', 'a')$$, 'allow re-enrollment');
SELECT is((SELECT enrollment_count::text || '/' || is_fraudulent::text || '/' || status::text
             FROM userlife.register_user('tap', 'a', 'Alice 2')), '2/true/active',
          're-enrollment: count + 1, fraud flag kept, active');

SELECT * FROM finish();
ROLLBACK;
