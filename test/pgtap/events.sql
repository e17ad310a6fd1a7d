-- The outbox (SPEC §8) and maintenance (SPEC §5.6): claim_events and
-- ack_events, lapsed claims, run_maintenance's three jobs.
BEGIN;
SELECT plan(17);

SELECT lives_ok($$SELECT userlife.create_partner('ev1')$$, 'partner ev1');
SELECT lives_ok($$SELECT userlife.create_partner('ev2')$$, 'partner ev2');
SELECT lives_ok($$SELECT userlife.register_user(p, 'u' || i) FROM unnest(ARRAY['ev1', 'ev2']) p, generate_series(1, 3) i$$,
                'three users each');
-- only this test's events matter
UPDATE userlife.events SET delivered_at = now() WHERE partner NOT IN ('ev1', 'ev2') AND delivered_at IS NULL;

SELECT results_eq($$SELECT payload->>'external_id' FROM userlife.claim_events(2, 'ev1')$$,
                  ARRAY['u1', 'u2'], 'oldest first, limited, one partner');
SELECT results_eq($$SELECT payload->>'external_id' FROM userlife.claim_events(10, 'ev1')$$,
                  ARRAY['u3'], 'claimed events are not handed out again');
SELECT is((SELECT count(*) FROM userlife.claim_events(10)), 3::bigint, 'no partner: every partner''s events');
SELECT is((SELECT count(*) FROM userlife.claim_events(10)), 0::bigint, 'nothing left to claim');

-- a claim that is not acknowledged lapses after 5 minutes
UPDATE userlife.events SET claimed_at = claimed_at - interval '6 minutes'
 WHERE partner = 'ev1' AND payload->>'external_id' = 'u1';
SELECT results_eq($$SELECT payload->>'external_id' FROM userlife.claim_events(10)$$, ARRAY['u1'],
                  'a lapsed claim can be claimed again');

SELECT is(userlife.ack_events(ARRAY(SELECT event_id FROM userlife.events WHERE partner IN ('ev1', 'ev2'))), 6,
          'ack_events returns how many it delivered');
SELECT is(userlife.ack_events(ARRAY(SELECT event_id FROM userlife.events WHERE partner IN ('ev1', 'ev2'))), 0,
          'acknowledging twice delivers nothing more');
SELECT is(userlife.ack_events('{}'), 0, 'an empty list is fine');
SELECT throws_ok($$SELECT userlife.ack_events(NULL)$$, '22004', NULL, 'NULL list: 22004');
SELECT throws_ok($$SELECT userlife.claim_events(0)$$, '22023', NULL, 'max_events 0: 22023');

-- run_maintenance: due suspensions end, delivered events age out
SELECT lives_ok($$SELECT userlife.set_status('ev1', 'u1', 'suspended', 'cool-off', now() + interval '1 hour')$$, 'suspend u1');
UPDATE userlife.users SET suspended_until = now() - interval '1 second' WHERE partner = 'ev1' AND external_id = 'u1';
UPDATE userlife.events SET delivered_at = now() - interval '8 days' WHERE partner = 'ev2';
SELECT is(userlife.run_maintenance() - 'users_purged' - 'purge_failed' - 'signatures_forgotten' - 'bindings_dropped'
          - 'webhook_attempts_dropped' - 'webhook_deliveries_dropped' - 'webhook_endpoints_disabled',
          '{"suspensions_ended": 1, "events_dropped": 3}'::jsonb, 'run_maintenance reports its work');
SELECT is((SELECT status::text || '/' || status_reason FROM userlife.get_user('ev1', 'u1')),
          'active/suspension expired', 'the suspension ended, with its reason');
SELECT is((SELECT count(*) FROM userlife.events WHERE partner = 'ev2'), 0::bigint, 'old delivered events are gone');

SELECT * FROM finish();
ROLLBACK;
