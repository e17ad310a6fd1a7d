-- Concurrency: two sessions (dblink connections) changing the same user
-- serialize on its row lock; nothing is lost and version counts every
-- change exactly.  Runs outside a transaction: the other sessions must see
-- committed data, so it works on a partner of its own.
SELECT plan(17);

SELECT set_config('tap.partner', 'conc_' || substr(md5(random()::text), 1, 8), false);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), false);
SELECT lives_ok(format($$SELECT userlife.create_partner(%L)$$, current_setting('tap.partner')), 'own partner');
SELECT lives_ok(format($$SELECT userlife.register_user(%L, 'c1'), userlife.register_user(%L, 'c2')$$,
                       current_setting('tap.partner'), current_setting('tap.partner')), 'two users');
SELECT dblink_connect('s1', current_setting('tap.conn'));
SELECT dblink_connect('s2', current_setting('tap.conn'));

-- s1 holds the row lock; s2's change waits for it, then applies on top
SELECT dblink_exec('s1', 'BEGIN');
SELECT count(*) FROM dblink('s1', format($$SELECT 1 FROM userlife.set_status(%L, 'c1', 'suspended', 'review')$$,
       current_setting('tap.partner'))) AS r(x int);
SELECT dblink_send_query('s2', format($$SELECT version FROM userlife.set_fraud_flag(%L, 'c1', true, 'ring')$$,
                                      current_setting('tap.partner')));
SELECT pg_sleep(0.5);
SELECT is(dblink_is_busy('s2'), 1, 'the second session waits for the first one''s row lock');
SELECT dblink_exec('s1', 'COMMIT');
SELECT is((SELECT v FROM dblink_get_result('s2') AS r(v bigint)), 3::bigint,
          'the second change applies on top of the first: version 3');
SELECT * FROM dblink_get_result('s2') AS r(v bigint);
SELECT is((SELECT status::text || '/' || is_fraudulent::text FROM userlife.get_user(current_setting('tap.partner'), 'c1')),
          'suspended/true', 'no lost update: both changes are there');

-- two metadata patches at once: both keys survive
SELECT dblink_exec('s1', 'BEGIN');
SELECT count(*) FROM dblink('s1', format($$SELECT 1 FROM userlife.update_user(%L, 'c1', metadata => '{"a": 1}')$$,
       current_setting('tap.partner'))) AS r(x int);
SELECT dblink_send_query('s2', format($$SELECT version FROM userlife.update_user(%L, 'c1', metadata => '{"b": 2}')$$,
                                      current_setting('tap.partner')));
SELECT pg_sleep(0.3);
SELECT dblink_exec('s1', 'COMMIT');
SELECT is((SELECT v FROM dblink_get_result('s2') AS r(v bigint)), 5::bigint, 'second patch: version 5');
SELECT * FROM dblink_get_result('s2') AS r(v bigint);
SELECT is((SELECT metadata FROM userlife.get_user(current_setting('tap.partner'), 'c1')),
          '{"a": 1, "b": 2}'::jsonb, 'both merge patches applied');

-- optimistic concurrency: the loser of a race on expected_version gets UL002
SELECT dblink_exec('s1', 'BEGIN');
SELECT count(*) FROM dblink('s1', format($$SELECT 1 FROM userlife.update_user(%L, 'c1', display_name => 'one', expected_version => 5)$$,
       current_setting('tap.partner'))) AS r(x int);
SELECT dblink_send_query('s2', format(
	$$SELECT userlife.update_user(%L, 'c1', display_name => 'two', expected_version => 5)$$,
	current_setting('tap.partner')));
SELECT pg_sleep(0.3);
SELECT dblink_exec('s1', 'COMMIT');
SELECT throws_ok($$SELECT * FROM dblink_get_result('s2') AS r(u text)$$, 'UL002', NULL,
                 'the stale writer fails');
SELECT dblink_disconnect('s2');
SELECT dblink_connect('s2', current_setting('tap.conn'));
SELECT is((SELECT display_name FROM userlife.get_user(current_setting('tap.partner'), 'c1')), 'one',
          'the first writer''s change stands');

-- two sessions, 150 committed updates each, interleaved
SELECT dblink_send_query(s, format($f$DO $do$ BEGIN
	FOR i IN 1..150 LOOP
		PERFORM userlife.update_user(%L, 'c2', display_name => %L || i);
		COMMIT;
	END LOOP; END $do$$f$, current_setting('tap.partner'), s))
  FROM unnest(ARRAY['s1', 's2']) s;
SELECT * FROM dblink_get_result('s1') AS r(t text);
SELECT * FROM dblink_get_result('s2') AS r(t text);
SELECT is((SELECT version FROM userlife.get_user(current_setting('tap.partner'), 'c2')), 301::bigint,
          'version = 1 + 300 changes');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = current_setting('tap.partner') AND external_id = 'c2'),
          301::bigint, 'one audit row per change');
SELECT is((SELECT count(*) FROM userlife.events e JOIN userlife.audit a USING (audit_id)
            WHERE a.partner = current_setting('tap.partner') AND a.external_id = 'c2'),
          301::bigint, 'one event per change');
SELECT ok(userlife.verify_audit(current_setting('tap.partner'), 'c2'), 'the interleaved chain verifies');

-- a registration that waited for a transaction erasing the same id sees its
-- tombstone and is refused as the tombstone says, not registered past it
SELECT lives_ok(format($$SELECT userlife.register_user(%L, 'c3')$$, current_setting('tap.partner')), 'a third user');
SELECT dblink_connect('s3', current_setting('tap.conn'));
SELECT dblink_connect('s4', current_setting('tap.conn'));
SELECT dblink_exec('s3', 'BEGIN');
SELECT count(*) FROM dblink('s3', format($$SELECT userlife.erase_user(%L, 'c3', 'right to erasure')$$,
       current_setting('tap.partner'))) AS r(x boolean);
SELECT dblink_send_query('s4', format($$SELECT user_id FROM userlife.register_user(%L, 'c3')$$,
                                      current_setting('tap.partner')));
SELECT pg_sleep(0.5);
SELECT dblink_exec('s3', 'COMMIT');
SELECT throws_ok($$SELECT * FROM dblink_get_result('s4') AS r(u uuid)$$, '23505', NULL,
                 'the waiting registration meets the tombstone written meanwhile: 23505');
SELECT dblink_disconnect('s3');
SELECT dblink_disconnect('s4');
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = current_setting('tap.partner') AND external_id = 'c3'),
          0::bigint, 'and no user c3 exists');
SELECT throws_ok(format($$SELECT userlife.register_user(%L, 'c3')$$, current_setting('tap.partner')), '23505', NULL,
                 'retried, it meets the tombstone: allow_reenroll first');

SELECT dblink_disconnect('s1');
SELECT dblink_disconnect('s2');
SELECT * FROM finish();
