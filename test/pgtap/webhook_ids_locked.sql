-- Webhook ids of other partners while that partner holds its endpoint row
-- (SPEC §3, issue 18): an admin bound to partner wla, calling an endpoint
-- function with an endpoint id of partner wlb whose row a transaction of
-- wlb holds locked, gets the same immediate 42501 as with an unused id.
-- Locking wlb's row before judging it made the call wait for wlb's
-- transaction: 55P03 under lock_timeout, where an unused id answered 42501
-- at once, told which ids exist (and when wlb was busy).  Runs outside a
-- transaction: the locking session must see committed endpoints, so it
-- works on partners and a role of its own.
SELECT plan(9);

SELECT set_config('tap.sfx', substr(md5(random()::text), 1, 8), false);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), false);
SELECT userlife.create_partner('wla_' || current_setting('tap.sfx'));
SELECT userlife.create_partner('wlb_' || current_setting('tap.sfx'));
SELECT set_config('tap.adm', 'wl_adm_' || current_setting('tap.sfx'), false);
SELECT lives_ok(format('CREATE ROLE %I IN ROLE userlife_admin', current_setting('tap.adm')), 'an admin role');
SELECT userlife.bind_partner(current_setting('tap.adm')::regrole, 'wla_' || current_setting('tap.sfx'));
SELECT set_config('tap.a', userlife.add_webhook_endpoint('wla_' || current_setting('tap.sfx'),
       'https://hooks.example.com/a')->>'endpoint_id', false);
SELECT set_config('tap.b', userlife.add_webhook_endpoint('wlb_' || current_setting('tap.sfx'),
       'https://hooks.example.com/b')->>'endpoint_id', false);
SELECT set_config('tap.unused', (SELECT (max(endpoint_id) + 1000)::text FROM userlife.webhook_endpoints), false);

-- what a call answers (SQLSTATE, message, hint)
\ir include/answer.sql
-- the four endpoint functions, for endpoint id $1, as text
CREATE FUNCTION pg_temp.calls(id text) RETURNS text LANGUAGE sql AS $$
SELECT string_agg(pg_temp.answer(format(f, 'wla_' || current_setting('tap.sfx'), id)), ' | ' ORDER BY n)
FROM unnest(ARRAY['SELECT userlife.rotate_webhook_secret(%L, %s)',
                  'SELECT userlife.set_webhook_endpoint(%L, %s, false)',
                  'SELECT userlife.remove_webhook_endpoint(%L, %s)',
                  'SELECT userlife.replay_webhooks(%L, %s, now() - interval ''1 day'')']) WITH ORDINALITY AS c(f, n)
$$;
GRANT EXECUTE ON FUNCTION pg_temp.calls(text) TO PUBLIC;

-- a transaction of wlb holds its endpoint row
SELECT dblink_connect('wl1', current_setting('tap.conn'));
SELECT dblink_exec('wl1', 'BEGIN');
SELECT is((SELECT x FROM dblink('wl1', format('SELECT (userlife.set_webhook_endpoint(%L, %s, true))->>''enabled''',
          'wlb_' || current_setting('tap.sfx'), current_setting('tap.b'))) AS r(x text)), 'true',
          'wlb''s transaction holds its endpoint row');

SET lock_timeout = '2s';
SET ROLE NONE;
SELECT set_config('role', current_setting('tap.adm'), false);
SELECT set_config('tap.for_b', pg_temp.calls(current_setting('tap.b')), false);
SELECT set_config('tap.for_unused', pg_temp.calls(current_setting('tap.unused')), false);
RESET ROLE;
SELECT is(current_setting('tap.for_b'), current_setting('tap.for_unused'),
          'wla''s admin: wlb''s locked endpoint id and an unused id answer the same in all four functions');
SELECT is(split_part(current_setting('tap.for_b'), ' | ', 1), '42501: permission denied for webhook endpoint N',
          'rotate_webhook_secret: 42501 without a hint, not a lock timeout');
SELECT is(split_part(current_setting('tap.for_b'), ' | ', 2), '42501: permission denied for webhook endpoint N',
          'set_webhook_endpoint: the same');
SELECT is(split_part(current_setting('tap.for_b'), ' | ', 3), '42501: permission denied for webhook endpoint N',
          'remove_webhook_endpoint: the same');
SELECT is(split_part(current_setting('tap.for_b'), ' | ', 4), '42501: permission denied for webhook endpoint N',
          'replay_webhooks: the same');
-- a superuser names wlb's endpoint under wla: 42501 at once as well
SELECT is(pg_temp.answer(format('SELECT userlife.rotate_webhook_secret(%L, %s)',
                                'wla_' || current_setting('tap.sfx'), current_setting('tap.b'))),
          '42501: permission denied for webhook endpoint N', 'a superuser naming the wrong partner: 42501, no wait');
RESET lock_timeout;
SELECT dblink_exec('wl1', 'ROLLBACK');
SELECT dblink_disconnect('wl1');
SELECT is((SELECT enabled FROM userlife.webhook_endpoints WHERE endpoint_id = current_setting('tap.b')::int8), true,
          'wlb''s endpoint is unchanged');
SELECT userlife.unbind_partner(current_setting('tap.adm')::regrole, 'wla_' || current_setting('tap.sfx'));
SELECT format('DROP ROLE %I', current_setting('tap.adm')) \gexec

SELECT * FROM finish();
