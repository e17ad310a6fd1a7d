-- Webhook ids of other partners (SPEC §3, issue 18 test 8): a developer or
-- admin bound to partner twa, calling any webhook function with an
-- endpoint or delivery id of partner twb, gets the same 42501, without a
-- hint, as with an id no endpoint or delivery has: nothing tells it which
-- ids exist.  A binding whose role was renamed since is not honoured by
-- claim_webhook_deliveries either (as everywhere else).
BEGIN;
SELECT plan(15);

SELECT userlife.create_partner('wia');
SELECT userlife.create_partner('wib');
CREATE ROLE wi_dev IN ROLE userlife_developer;
CREATE ROLE wi_adm IN ROLE userlife_admin;
CREATE ROLE wi_gone IN ROLE userlife_developer;
SELECT userlife.bind_partner(r::regrole, 'wia') FROM unnest(ARRAY['wi_dev', 'wi_adm', 'wi_gone']) r;
CREATE TEMP TABLE ep AS
SELECT ((userlife.add_webhook_endpoint('wia', 'https://hooks.example.com/a'))->>'endpoint_id')::int8 AS a,
       ((userlife.add_webhook_endpoint('wib', 'https://hooks.example.com/b'))->>'endpoint_id')::int8 AS b;
-- an id no endpoint has, and one no event has
ALTER TABLE ep ADD COLUMN unused int8, ADD COLUMN no_event int8;
UPDATE ep SET unused = (SELECT max(endpoint_id) + 1000 FROM userlife.webhook_endpoints),
              no_event = (SELECT coalesce(max(event_id), 0) + 1000 FROM userlife.events);
GRANT SELECT ON ep TO PUBLIC;
SELECT userlife.register_user('wib', 'b1') IS NOT NULL;
-- twb's delivery exists, claimed (attempt 1), waiting for its completion
SELECT is((SELECT count(*) FROM userlife.claim_webhook_deliveries(10, 'wib')), 1::bigint, 'twb''s delivery is claimed');
CREATE TEMP TABLE dl AS SELECT endpoint_id, event_id FROM userlife.webhook_queue WHERE partner = 'wib';
GRANT SELECT ON dl TO PUBLIC;

-- what a call answers (SQLSTATE, message, hint)
\ir include/answer.sql

SET LOCAL ROLE wi_dev;
SELECT is(pg_temp.answer(format('SELECT userlife.complete_webhook_delivery(%s, %s, 1, 200, 3)',
                                (SELECT endpoint_id FROM dl), (SELECT event_id FROM dl))),
          '42501: permission denied for webhook endpoint N',
          'developer of twa completing twb''s delivery: 42501, no hint, no partner named');
SELECT is(pg_temp.answer(format('SELECT userlife.complete_webhook_delivery(%s, %s, 1, 200, 3)',
                                (SELECT unused FROM ep), (SELECT event_id FROM dl))),
          '42501: permission denied for webhook endpoint N', 'the same for an unused endpoint id');
SELECT is(pg_temp.answer(format('SELECT userlife.complete_webhook_delivery(%s, %s, 1, 200, 3)',
                                (SELECT endpoint_id FROM dl), (SELECT no_event FROM ep))),
          '42501: permission denied for webhook endpoint N', 'the same for twb''s endpoint and an unused event id');
SELECT is(userlife.complete_webhook_delivery((SELECT a FROM ep), (SELECT no_event FROM ep), 1, 200, 3), 'gone',
          'its own endpoint''s missing delivery is still "gone"');
RESET ROLE;
SELECT is((SELECT state || ' ' || attempts FROM userlife.webhook_queue WHERE partner = 'wib'), 'pending 1',
          'twb''s delivery is unchanged');
SELECT is((SELECT count(*) FROM userlife.webhook_attempt_log WHERE partner = 'wib'), 0::bigint,
          'and no attempt was logged for it');

SET LOCAL ROLE wi_adm;
SELECT is(pg_temp.answer(format('SELECT userlife.rotate_webhook_secret(''wia'', %s)', (SELECT b FROM ep))),
          pg_temp.answer(format('SELECT userlife.rotate_webhook_secret(''wia'', %s)', (SELECT unused FROM ep))),
          'rotate_webhook_secret: twb''s endpoint id and an unused one answer the same');
SELECT is(pg_temp.answer(format('SELECT userlife.set_webhook_endpoint(''wia'', %s, false)', (SELECT b FROM ep))),
          pg_temp.answer(format('SELECT userlife.set_webhook_endpoint(''wia'', %s, false)', (SELECT unused FROM ep))),
          'set_webhook_endpoint: the same');
SELECT is(pg_temp.answer(format('SELECT userlife.replay_webhooks(''wia'', %s, now() - interval ''1 day'')', (SELECT b FROM ep))),
          pg_temp.answer(format('SELECT userlife.replay_webhooks(''wia'', %s, now() - interval ''1 day'')', (SELECT unused FROM ep))),
          'replay_webhooks: the same');
SELECT is(pg_temp.answer(format('SELECT userlife.remove_webhook_endpoint(''wia'', %s)', (SELECT b FROM ep))),
          pg_temp.answer(format('SELECT userlife.remove_webhook_endpoint(''wia'', %s)', (SELECT unused FROM ep))),
          'remove_webhook_endpoint: the same');
SELECT is(pg_temp.answer(format('SELECT userlife.remove_webhook_endpoint(''wia'', %s)', (SELECT unused FROM ep))),
          '42501: permission denied for webhook endpoint N', 'and that is 42501 without a hint');
RESET ROLE;
SELECT is((SELECT count(*) FROM userlife.webhook_endpoints WHERE partner = 'wib' AND enabled), 1::bigint,
          'twb''s endpoint is still there, enabled');

-- a binding stops counting once its role is renamed
SELECT userlife.register_user('wia', 'a1') IS NOT NULL;
ALTER ROLE wi_gone RENAME TO wi_renamed;
SET LOCAL ROLE wi_renamed;
SELECT is((SELECT count(*) FROM userlife.claim_webhook_deliveries(10)), 0::bigint,
          'a role renamed since its binding claims none of the partner''s deliveries');
RESET ROLE;
SET LOCAL ROLE wi_dev;
SELECT is((SELECT count(*) FROM userlife.claim_webhook_deliveries(10)), 1::bigint,
          'a role still bound claims it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
