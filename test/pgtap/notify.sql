-- Wake-up notifications (SPEC §8): a listener (dblink connection) is woken
-- by committed changes, never by rolled-back ones, at most once per
-- transaction, and at most once per userlife.notify_interval per backend.
SELECT plan(11);

SELECT set_config('tap.partner', 'notify_' || substr(md5(random()::text), 1, 8), false);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), false);
SELECT lives_ok(format($$SELECT userlife.create_partner(%L)$$, current_setting('tap.partner')), 'own partner');
SELECT dblink_connect('listener', current_setting('tap.conn'));
SELECT dblink_exec('listener', 'LISTEN userlife_events');
SELECT dblink_connect('writer', current_setting('tap.conn'));

CREATE FUNCTION pg_temp.write(sql text) RETURNS void LANGUAGE sql AS $$
	SELECT count(*) FROM dblink('writer', format(sql, current_setting('tap.partner'))) AS t(x text)
$$;
-- notifications the listener got since the last call (after a moment for delivery)
CREATE FUNCTION pg_temp.received() RETURNS TABLE (channel text, payload text) LANGUAGE sql AS $$
	SELECT pg_sleep(0.3);
	SELECT n.notify_name, n.extra FROM dblink_get_notify('listener') n
$$;

-- interval 0: exactly one notification per committing transaction
SELECT pg_temp.write('SET userlife.notify_interval = 0');
SELECT pg_temp.write($w$DO $do$ BEGIN
	PERFORM userlife.register_user(%1$L, 'a');
	PERFORM userlife.register_user(%1$L, 'b');
	PERFORM userlife.set_status(%1$L, 'a', 'inactive');
	PERFORM userlife.update_user(%1$L, 'b', display_name => 'B');
END $do$$w$);
SELECT results_eq($$SELECT * FROM pg_temp.received()$$,
                  format($$VALUES ('userlife_events'::text, %L::text)$$, current_setting('tap.partner')),
                  'four changes in one transaction: one notification, payload = partner');

SELECT pg_temp.write($$SELECT userlife.enable_user(%L, 'a')$$);
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT pg_temp.write($$SELECT userlife.enable_user(%L, 'a')$$);
SELECT is((SELECT count(*) FROM pg_temp.received()), 3::bigint, 'three committed transactions: three notifications');

-- rolled back: none
SELECT pg_temp.write('BEGIN');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT pg_temp.write('ROLLBACK');
SELECT is((SELECT count(*) FROM pg_temp.received()), 0::bigint, 'a rolled-back change notifies nobody');
SELECT is((SELECT status::text FROM userlife.get_user(current_setting('tap.partner'), 'a')), 'active',
          'and it changed nothing');

-- a change that changes nothing: no event, no notification
SELECT pg_temp.write($$SELECT userlife.enable_user(%L, 'a')$$);
SELECT is((SELECT count(*) FROM pg_temp.received()), 0::bigint, 'a no-op notifies nobody');

-- an interval: after a quiet interval the first change wakes the listener
-- at once, the next ones within the interval do not
SELECT pg_temp.write($$SET userlife.notify_interval = '2s'$$);
SELECT pg_sleep(2.1);
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT pg_temp.write($$SELECT userlife.enable_user(%L, 'a')$$);
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT is((SELECT count(*) FROM pg_temp.received()), 1::bigint,
          'three commits within the interval: one notification');
SELECT is((SELECT count(*) FROM userlife.events e JOIN userlife.audit a USING (audit_id)
            WHERE a.partner = current_setting('tap.partner') AND a.external_id = 'a' AND e.delivered_at IS NULL),
          (SELECT count(*) FROM userlife.audit a
            WHERE a.partner = current_setting('tap.partner') AND a.external_id = 'a'),
          'every change is in the outbox all the same');
SELECT pg_sleep(2.1);
SELECT pg_temp.write($$SELECT userlife.enable_user(%L, 'a')$$);
SELECT is((SELECT count(*) FROM pg_temp.received()), 1::bigint, 'once the interval has passed, the next change notifies');

-- switched off
SELECT pg_temp.write('SET userlife.notify_interval = 0');
SELECT pg_temp.write('SET userlife.notify = off');
SELECT pg_temp.write($$SELECT userlife.enable_user(%L, 'a')$$);
SELECT is((SELECT count(*) FROM pg_temp.received()), 0::bigint, 'userlife.notify = off: no notification');
SELECT pg_temp.write('SET userlife.notify = on');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT is((SELECT count(*) FROM pg_temp.received()), 1::bigint, 'back on: notified again');

SELECT dblink_disconnect('listener');
SELECT dblink_disconnect('writer');
SELECT * FROM finish();
