-- test/pgtap/summary_webhooks.sql — user_summary's webhook counters: a
-- change committed after an endpoint was added is pending for the user
-- (past the endpoint's cursor, not queued yet), and only for that user.
BEGIN;
SELECT plan(4);
SET LOCAL client_min_messages = warning;
SELECT userlife.create_partner('sumwh');
SELECT userlife.register_user('sumwh', 'w-1', 'W One', 'w1@example.com');
SELECT userlife.register_user('sumwh', 'w-2', 'W Two', 'w2@example.com');
SELECT is(userlife.user_summary('sumwh', 'w-1') -> 'webhooks', '{"pending": 0, "dead": 0}'::jsonb,
	'no endpoint: nothing pending');
SELECT userlife.add_webhook_endpoint('sumwh', 'https://hooks.example.com/userlife');
SELECT userlife.set_status('sumwh', 'w-1', 'inactive', 'dormant');
SELECT userlife.set_fraud_flag('sumwh', 'w-1', true, 'chargebacks');
SELECT is((userlife.user_summary('sumwh', 'w-1') -> 'webhooks' ->> 'pending')::int, 2,
	'two changes after the endpoint was added are pending for the user');
SELECT is((userlife.user_summary('sumwh', 'w-2') -> 'webhooks' ->> 'pending')::int, 0,
	'... and none for another user');
SELECT is((userlife.user_summary('sumwh', 'w-1') -> 'webhooks' ->> 'dead')::int, 0, 'none dead');
SELECT * FROM finish();
ROLLBACK;
