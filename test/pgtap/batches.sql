-- Bounded batches and a purge that one user cannot stop (SPEC §5.6):
-- delete_users takes at most 10,000 ids and changes nothing beyond that;
-- a user whose purge fails (here: a DBA's foreign key into users) is
-- skipped, the others are purged, the failed one is taken after the others
-- next time, run_maintenance counts it as purge_failed and still does its
-- other work.
BEGIN;
SELECT plan(28);

SELECT lives_ok($$SELECT userlife.create_partner('bt', retention => '1 day')$$, 'partner bt');
SELECT lives_ok($$SELECT userlife.register_user('bt', 'bt-' || i, 'Batch ' || i, 'bt' || i || '@example.com')
                    FROM generate_series(1, 6) i$$, 'six users');

-- delete_users: at most 10,000 ids
SELECT throws_ok($$SELECT * FROM userlife.delete_users('bt', ARRAY['bt-1'] || array_fill('x'::text, ARRAY[10000]))$$,
                 '22023', 'too many external_ids for delete_users', '10,001 ids: 22023');
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = 'bt' AND status = 'deleted'), 0::bigint,
          'and nothing was deleted');
SELECT throws_ok($$SELECT * FROM userlife.delete_users('bt', array_fill('x'::text, ARRAY[2, 2]))$$,
                 '22023', NULL, 'a two-dimensional array: 22023');
SELECT results_eq($$SELECT result, count(*) FROM userlife.delete_users('bt',
                      ARRAY(SELECT 'bt-' || i FROM generate_series(1, 6) i) || array_fill('x'::text, ARRAY[9994]))
                    GROUP BY result ORDER BY result$$,
                  $$VALUES ('deleted', 6::bigint), ('not_found', 9994::bigint)$$, 'exactly 10,000 ids are taken');

-- their retention ends, bt-1 first; a DBA's table refers to bt-1
UPDATE userlife.users SET purge_after = now() - (10 - substr(external_id, 4)::int) * interval '1 hour'
 WHERE partner = 'bt';
CREATE TABLE public.bt_orders (order_id int PRIMARY KEY, user_id uuid REFERENCES userlife.users (user_id));
INSERT INTO public.bt_orders SELECT 1, user_id FROM userlife.users WHERE partner = 'bt' AND external_id = 'bt-1';

SELECT is(userlife.purge_expired(1), 0::bigint, 'a batch of one whose user cannot be purged purges nothing');
SELECT is((SELECT sqlstate || '/' || attempts FROM userlife.purge_failures f JOIN userlife.users u USING (user_id)
            WHERE u.external_id = 'bt-1'), '23503/1', 'the failure is remembered with its SQLSTATE');
SELECT is(userlife.purge_expired(1), 1::bigint, 'the next batch of one is not stuck on it');
SELECT is((SELECT array_agg(external_id ORDER BY external_id) FROM userlife.users WHERE partner = 'bt'),
          ARRAY['bt-1', 'bt-3', 'bt-4', 'bt-5', 'bt-6'], 'it purged the next user due, bt-2');
SELECT is(userlife.purge_expired(10), 4::bigint, 'a larger batch purges every other user');
SELECT is((SELECT array_agg(external_id) FROM userlife.users WHERE partner = 'bt'), ARRAY['bt-1'],
          'only the user the foreign key holds is left');
SELECT is((SELECT attempts FROM userlife.purge_failures f JOIN userlife.users u USING (user_id)
            WHERE u.external_id = 'bt-1'), 2, 'it was tried again after the others, and failed again');

-- the failed purge was rolled back whole: the user, its audit and events as they were
SELECT is((SELECT status::text FROM userlife.users WHERE partner = 'bt' AND external_id = 'bt-1'), 'deleted',
          'the user stays deleted');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = 'bt' AND external_id = 'bt-1'), 3::bigint,
          'its audit rows are neither redacted nor joined by a purge row');
SELECT is((SELECT count(*) FROM userlife.tombstones WHERE partner = 'bt'
             AND external_id_digest = sha256(convert_to('bt-1', 'UTF8'))), 0::bigint, 'it has no tombstone');
SELECT ok(userlife.verify_audit('bt', 'bt-1'), 'its chain verifies');
-- the others are purged completely
SELECT is((SELECT count(*) FROM userlife.tombstones WHERE partner = 'bt'), 5::bigint, 'five tombstones');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = 'bt' AND action = 'purge'), 5::bigint,
          'five purge audit rows');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = 'bt' AND external_id <> 'bt-1'), 0::bigint,
          'their audit rows are redacted');
SELECT ok(userlife.verify_audit('bt', 'bt-4'), 'a purged user''s chain verifies');

-- run_maintenance counts the failure and still does its other work
SELECT lives_ok($$SELECT userlife.register_user('bt', 'bt-s')$$, 'a user to suspend');
SELECT lives_ok($$SELECT userlife.set_status('bt', 'bt-s', 'suspended', 'cool-off', now() + interval '1 hour')$$,
                'suspend it');
UPDATE userlife.users SET suspended_until = now() - interval '1 second' WHERE partner = 'bt' AND external_id = 'bt-s';
SELECT is(userlife.run_maintenance() - 'events_dropped' - 'signatures_forgotten' - 'bindings_dropped' - 'webhook_attempts_dropped'
          - 'webhook_deliveries_dropped' - 'webhook_endpoints_disabled',
          '{"suspensions_ended": 1, "users_purged": 0, "purge_failed": 1}'::jsonb,
          'run_maintenance: the suspension ended, the purge failed once');
SELECT is((SELECT status::text FROM userlife.users WHERE partner = 'bt' AND external_id = 'bt-s'), 'active',
          'the suspension really ended');

SELECT lives_ok($$SELECT userlife.delete_user('bt', 'bt-s')$$, 'delete the other user');
UPDATE userlife.users SET purge_after = now() - interval '1 day' WHERE partner = 'bt' AND external_id = 'bt-s';

-- once the DBA lets go, the user is purged and forgotten as a failure
DELETE FROM public.bt_orders;
SELECT is(userlife.purge_expired(10), 2::bigint, 'both are purged');
SELECT is((SELECT count(*) FROM userlife.purge_failures), 0::bigint, 'no failure is remembered any more');

SELECT * FROM finish();
ROLLBACK;
