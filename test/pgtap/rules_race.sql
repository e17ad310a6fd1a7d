-- A change to userlife.transitions and the status changes it judges
-- serialize: a rule change waits for the transactions writing users, so
-- each commits under the rules it was judged by, and a status change made
-- while a rule change is in flight waits for it and is judged by the rules
-- it committed.  Sessions s1 and s2 are dblink connections; the test runs
-- outside a transaction, on a partner of its own, and puts the rule
-- active -> suspended back.
SELECT plan(9);

SELECT set_config('tap.partner', 'rr_' || substr(md5(random()::text), 1, 8), false);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), false);
SELECT lives_ok(format($$SELECT userlife.create_partner(%L)$$, current_setting('tap.partner')), 'own partner');
SELECT lives_ok(format($$SELECT userlife.register_user(%L, u) FROM unnest(ARRAY['a', 'b', 'c']) u$$,
                       current_setting('tap.partner')), 'users');
SELECT dblink_connect('s1', current_setting('tap.conn'));
SELECT dblink_connect('s2', current_setting('tap.conn'));

-- s1 suspends a under the rule; s2 removes the rule meanwhile
SELECT dblink_exec('s1', 'BEGIN');
SELECT is((SELECT s FROM dblink('s1', format($$SELECT status::text FROM userlife.set_status(%L, 'a', 'suspended')$$,
          current_setting('tap.partner'))) AS t(s text)), 'suspended', 's1: a suspended, not committed');
SELECT dblink_send_query('s2', $$DELETE FROM userlife.transitions WHERE from_status = 'active' AND to_status = 'suspended'$$);
SELECT pg_sleep(0.5);
SELECT is(dblink_is_busy('s2'), 1, 'the rule change waits for the status change in flight');
SELECT dblink_exec('s1', 'COMMIT');
SELECT is((SELECT r FROM dblink_get_result('s2') AS t(r text)), 'DELETE 1', 'then the rule is removed');
SELECT dblink_get_result('s2');
SELECT throws_ok(format($$SELECT userlife.set_status(%L, 'b', 'suspended')$$, current_setting('tap.partner')),
                 'UL001', NULL, 'and a later change is judged without it');

-- s2 puts the rule back in a transaction; s1 suspends c meanwhile
SELECT dblink_exec('s2', 'BEGIN');
SELECT dblink_exec('s2', $$INSERT INTO userlife.transitions VALUES ('active', 'suspended', false)$$);
SELECT dblink_send_query('s1', format($$SELECT status::text FROM userlife.set_status(%L, 'c', 'suspended')$$,
                         current_setting('tap.partner')));
SELECT pg_sleep(0.5);
SELECT is(dblink_is_busy('s1'), 1, 'a status change waits for the rule change in flight');
SELECT dblink_exec('s2', 'COMMIT');
SELECT is((SELECT s FROM dblink_get_result('s1') AS t(s text)), 'suspended',
          'and is judged by the rule it committed');
SELECT dblink_get_result('s1');
SELECT is((SELECT array_agg(status::text ORDER BY external_id) FROM userlife.users
           WHERE partner = current_setting('tap.partner')),
          ARRAY['suspended', 'active', 'suspended'], 'the statuses');

SELECT dblink_disconnect('s1');
SELECT dblink_disconnect('s2');
SELECT * FROM finish();
