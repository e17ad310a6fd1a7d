-- complete_webhook_deliveries (issue 18, cost per delivery): the attempts
-- the delivery program finished together, recorded in one call, each as
-- complete_webhook_delivery would: delivered, pending again after a
-- failure, stale, gone; one attempt-log row for each existing delivery,
-- responses cut to 1 KiB; bad input refuses the whole call and records
-- nothing; a developer of another partner gets 42501.
BEGIN;
SELECT plan(17);

SELECT userlife.create_partner('wba');
SELECT userlife.create_partner('wbb');
CREATE ROLE wb_dev IN ROLE userlife_developer;
CREATE ROLE wb_dev_b IN ROLE userlife_developer;
SELECT userlife.bind_partner('wb_dev', 'wba');
SELECT userlife.bind_partner('wb_dev_b', 'wbb');
CREATE TEMP TABLE ep AS
SELECT ((userlife.add_webhook_endpoint('wba', 'https://hooks.example.com/a'))->>'endpoint_id')::int8 AS a;
SELECT count(userlife.register_user('wba', 'u' || i)) FROM generate_series(1, 3) i;
CREATE TEMP TABLE d AS
SELECT endpoint_id, event_id, attempt, row_number() OVER (ORDER BY event_id) AS n
  FROM userlife.claim_webhook_deliveries(10, 'wba');
GRANT SELECT ON ep, d TO PUBLIC;
SELECT is((SELECT count(*) FROM d), 3::bigint, 'three deliveries claimed');
-- the arrays for deliveries 1, 2, 3 and one no delivery has
CREATE TEMP VIEW batch AS
SELECT array_agg(endpoint_id ORDER BY n) AS e, array_agg(event_id ORDER BY n) AS ev,
       array_agg(CASE n WHEN 3 THEN attempt + 5 ELSE attempt END ORDER BY n) AS at
  FROM (SELECT endpoint_id, event_id, attempt, n FROM d
        UNION ALL SELECT (SELECT a FROM ep), (SELECT max(event_id) + 100 FROM d), 1, 4) x;
GRANT SELECT ON batch TO PUBLIC;

-- bad input: refused, nothing recorded
SELECT throws_ok($$SELECT userlife.complete_webhook_deliveries(NULL, '{1}', '{1}', '{200}', '{1}', '{NULL}', '{NULL}', '{NULL}')$$,
                 '22004', NULL, 'NULL endpoint_ids: 22004');
SELECT throws_ok($$SELECT userlife.complete_webhook_deliveries('{1,2}', '{1}', '{1}', '{200}', '{1}', '{NULL}', '{NULL}', '{NULL}')$$,
                 '22023', NULL, 'arrays of different lengths: 22023');
SELECT throws_ok($$SELECT userlife.complete_webhook_deliveries('{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}')$$,
                 '22023', NULL, 'empty arrays: 22023');
SELECT throws_ok($$SELECT userlife.complete_webhook_deliveries('{1}', '{NULL}', '{1}', '{200}', '{1}', '{NULL}', '{NULL}', '{NULL}')$$,
                 '22004', NULL, 'a NULL event id: 22004');
SELECT throws_ok($$SELECT userlife.complete_webhook_deliveries(e, ev, at, '{200, 99, 200, 200}', '{1,1,1,1}',
                   '{NULL,NULL,NULL,NULL}', '{NULL,NULL,NULL,NULL}', '{NULL,NULL,NULL,NULL}') FROM batch$$,
                 '22023', 'invalid HTTP status 99', 'one bad status: 22023');
SELECT is((SELECT count(*) FROM userlife.webhook_attempt_log WHERE partner = 'wba'), 0::bigint,
          'the refused calls recorded nothing');

-- a developer of another partner
SET LOCAL ROLE wb_dev_b;
SELECT throws_ok($$SELECT userlife.complete_webhook_deliveries(e, ev, at, '{200,200,200,200}', '{1,1,1,1}',
                   '{NULL,NULL,NULL,NULL}', '{NULL,NULL,NULL,NULL}', '{NULL,NULL,NULL,NULL}') FROM batch$$,
                 '42501', NULL, 'a developer of another partner: 42501');
RESET ROLE;

-- one call: delivered, failed (500), stale (another attempt's), gone
SET LOCAL ROLE wb_dev;
SELECT is((SELECT userlife.complete_webhook_deliveries(e, ev, at, '{200, 500, 200, 200}', '{3, 4, 5, 6}',
            ARRAY[NULL, NULL, NULL, NULL]::text[], ARRAY['ok', repeat('x', 5000), NULL, NULL],
            '{NULL, NULL, NULL, NULL}') FROM batch),
          ARRAY['delivered', 'pending', 'stale', 'gone'], 'the states, in the order of the arrays');
RESET ROLE;
SELECT is((SELECT state FROM userlife.webhook_queue q JOIN d USING (endpoint_id, event_id) WHERE n = 1), 'delivered',
          'the first is delivered');
SELECT ok((SELECT delivered_at IS NOT NULL AND last_status = 200 AND last_error IS NULL
             FROM userlife.webhook_queue q JOIN d USING (endpoint_id, event_id) WHERE n = 1),
          'with its time and status');
SELECT ok((SELECT state = 'pending' AND next_attempt_at > now() AND last_error = 'HTTP status 500'
             FROM userlife.webhook_queue q JOIN d USING (endpoint_id, event_id) WHERE n = 2),
          'the second waits for its retry, with the reason');
SELECT is((SELECT attempts FROM userlife.webhook_queue q JOIN d USING (endpoint_id, event_id) WHERE n = 3), 1,
          'the stale one is unchanged');
SELECT is((SELECT count(*) FROM userlife.webhook_attempt_log WHERE partner = 'wba'), 3::bigint,
          'three attempts logged (none for the delivery that does not exist)');
SELECT is((SELECT length(response) FROM userlife.webhook_attempt_log a JOIN d USING (endpoint_id, event_id) WHERE n = 2),
          1024, 'a response is kept up to 1 KiB');
SELECT ok((SELECT failing_since IS NOT NULL FROM userlife.webhook_endpoints WHERE endpoint_id = (SELECT a FROM ep)),
          'the endpoint''s failure clock runs');
SELECT is((SELECT userlife.complete_webhook_delivery(endpoint_id, event_id, attempt, 200, 1) FROM d WHERE n = 1),
          'stale', 'complete_webhook_delivery after it: stale');

SELECT * FROM finish();
ROLLBACK;
