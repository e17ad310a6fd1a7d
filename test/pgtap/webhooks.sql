-- Webhooks (SPEC §3, §10; issue 18 tests 8 and 9): bad input to the
-- endpoint functions gets a clean SQLSTATE and changes nothing; the role
-- matrix for every webhook function and view; row-level security of the
-- views by partner binding; secrets readable by no role.
BEGIN;
SELECT plan(30);

SELECT userlife.create_partner('twa');
SELECT userlife.create_partner('twb');
CREATE ROLE tw_dev IN ROLE userlife_developer;
CREATE ROLE tw_comp IN ROLE userlife_compliance;
CREATE ROLE tw_adm IN ROLE userlife_admin;
CREATE ROLE tw_adm_b IN ROLE userlife_admin;
CREATE ROLE tw_read IN ROLE userlife_reader;
CREATE ROLE tw_owner IN ROLE userlife_owner;
SELECT userlife.bind_partner(r::regrole, 'twa') FROM unnest(ARRAY['tw_dev', 'tw_comp', 'tw_adm', 'tw_read']) r;
SELECT userlife.bind_partner('tw_adm_b', 'twb');
CREATE TEMP TABLE ep AS
SELECT (userlife.add_webhook_endpoint('twa', 'https://hooks.example.com/a'))->>'endpoint_id' AS a,
       (userlife.add_webhook_endpoint('twb', 'https://hooks.example.com/b'))->>'endpoint_id' AS b;
GRANT SELECT ON ep TO PUBLIC;
SELECT userlife.register_user('twa', 'u1') IS NOT NULL;

-- test 8: bad input
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', 'ftp://hooks.example.com/')$$, '22023',
                 NULL, 'another scheme: 22023');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', 'https://user:pw@hooks.example.com/')$$, '22023',
                 NULL, 'credentials in the URL: 22023');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', 'https://hooks.example.com/' || repeat('x', 10000))$$,
                 '22023', NULL, 'a 10 kB URL: 22023');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', 'hooks.example.com/a')$$, '22023', NULL,
                 'a relative URL: 22023');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', 'https://hooks.example.com/', ARRAY['user.deleted'])$$,
                 '22023', NULL, 'an unknown event type: 22023');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', 'https://hooks.example.com/', '{}')$$,
                 '22023', NULL, 'no event type at all: 22023');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint(NULL, 'https://hooks.example.com/')$$, '22004', NULL,
                 'NULL partner: 22004');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', NULL)$$, '22004', NULL, 'NULL url: 22004');
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('nope', 'https://hooks.example.com/')$$, 'P0002', NULL,
                 'an unknown partner: P0002');
SELECT throws_ok($$SELECT userlife.rotate_webhook_secret('twa', (SELECT b FROM ep)::int8)$$, '42501',
                 format('permission denied for webhook endpoint %s', (SELECT b FROM ep)),
                 'another partner''s endpoint id: 42501');
SELECT throws_ok($$SELECT userlife.rotate_webhook_secret('twa', (SELECT a FROM ep)::int8, '-1 day')$$, '22023',
                 NULL, 'a negative grace: 22023');
SELECT throws_ok($$SELECT userlife.set_webhook_endpoint('twa', (SELECT a FROM ep)::int8, NULL)$$, '22004', NULL,
                 'NULL enabled: 22004');
SELECT throws_ok($$SELECT userlife.replay_webhooks('twa', (SELECT a FROM ep)::int8, now(), now() - interval '1 day')$$,
                 '22023', NULL, 'a window that ends before it starts: 22023');
SELECT lives_ok($$SELECT userlife.set_webhook_endpoint('twa', (SELECT a FROM ep)::int8, false)$$, 'disable');
SELECT throws_ok($$SELECT userlife.replay_webhooks('twa', (SELECT a FROM ep)::int8, now() - interval '1 day')$$,
                 '55000', NULL, 'replay to a disabled endpoint: 55000');
SELECT ok(userlife.remove_webhook_endpoint('twa', (SELECT a FROM ep)::int8), 'remove');
SELECT throws_ok($$SELECT userlife.set_webhook_endpoint('twa', (SELECT a FROM ep)::int8, true)$$, 'P0002', NULL,
                 'a removed endpoint: P0002');
SELECT is(userlife.remove_webhook_endpoint('twa', (SELECT a FROM ep)::int8), false, 'removing twice: false');
SELECT is((SELECT count(*) FROM userlife.webhook_endpoints WHERE partner IN ('twa', 'twb')), 1::bigint,
          'the refused calls added nothing');

-- test 9: the role matrix and row-level security
UPDATE ep SET a = (userlife.add_webhook_endpoint('twa', 'https://hooks.example.com/a2'))->>'endpoint_id';
SELECT userlife.update_user('twa', 'u1', display_name => 'U1') IS NOT NULL;
SET LOCAL ROLE tw_dev;
SELECT throws_ok($$SELECT userlife.add_webhook_endpoint('twa', 'https://hooks.example.com/d')$$, '42501', NULL,
                 'developer cannot add endpoints');
SELECT throws_ok($$SELECT * FROM userlife.webhook_deliveries$$, '42501', NULL,
                 'developer cannot read webhook_deliveries');
SELECT is((SELECT count(*) FROM userlife.claim_webhook_deliveries(10, 'twa')), 1::bigint,
          'developer claims the partner''s due delivery, signed');
SELECT is(userlife.complete_webhook_delivery((SELECT a FROM ep)::int8,
          (SELECT max(event_id) FROM userlife.events WHERE partner = 'twa'), 1, 200, 3), 'delivered',
          'developer completes it');
RESET ROLE;
SET LOCAL ROLE tw_comp;
SELECT throws_ok($$SELECT userlife.rotate_webhook_secret('twa', (SELECT a FROM ep)::int8)$$, '42501', NULL,
                 'compliance cannot rotate secrets');
SELECT throws_ok($$SELECT * FROM userlife.claim_webhook_deliveries()$$, '42501', NULL,
                 'compliance cannot claim deliveries');
SELECT results_eq($$SELECT state, attempts FROM userlife.webhook_deliveries$$,
                  $$VALUES ('delivered'::text, 1)$$, 'compliance reads its partner''s deliveries');
SELECT is((SELECT count(*) FROM userlife.webhook_attempts), 1::bigint, 'and its attempt log');
RESET ROLE;
SET LOCAL ROLE tw_adm_b;
SELECT is((SELECT count(*) FROM userlife.webhook_deliveries WHERE partner = 'twa'), 0::bigint,
          'an admin of another partner sees none of them');
SELECT throws_ok($$SELECT userlife.set_webhook_endpoint('twa', (SELECT a FROM ep)::int8, false)$$, '42501', NULL,
                 'nor changes its endpoint');
RESET ROLE;
SET LOCAL ROLE tw_owner;
SELECT throws_ok($$SELECT secret FROM userlife.webhook_secrets$$, '42501', NULL,
                 'not even userlife_owner reads a secret');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
