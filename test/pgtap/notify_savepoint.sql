-- Wake-up notifications and subtransactions (issue "Operations" defect 7):
-- the "already notified in this transaction" flag follows savepoints, so a
-- change rolled back to a savepoint does not stop the next committed change
-- from waking the listener, nor use up userlife.notify_interval.  A listener
-- and a writer (dblink connections) are the two sessions.
SELECT plan(6);

SELECT set_config('tap.partner', 'nsp_' || substr(md5(random()::text), 1, 8), false);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), false);
SELECT lives_ok(format($$SELECT userlife.create_partner(%L)$$, current_setting('tap.partner')), 'own partner');
SELECT dblink_connect('nsp_listener', current_setting('tap.conn'));
SELECT dblink_exec('nsp_listener', 'LISTEN userlife_events');
SELECT dblink_connect('nsp_writer', current_setting('tap.conn'));

CREATE FUNCTION pg_temp.write(sql text) RETURNS void LANGUAGE sql AS $$
	SELECT count(*) FROM dblink('nsp_writer', format(sql, current_setting('tap.partner'))) AS t(x text)
$$;
CREATE FUNCTION pg_temp.received() RETURNS bigint LANGUAGE sql AS $$
	SELECT pg_sleep(0.3);
	SELECT count(*) FROM dblink_get_notify('nsp_listener') n WHERE n.notify_name = 'userlife_events'
$$;

SELECT pg_temp.write('SET userlife.notify_interval = 0');
SELECT pg_temp.write($$SELECT userlife.register_user(%1$L, u) FROM unnest(ARRAY['a', 'b']) u$$);
SELECT pg_temp.received();

-- a change rolled back to a savepoint, then another committed
SELECT pg_temp.write('BEGIN');
SELECT pg_temp.write('SAVEPOINT s');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT pg_temp.write('ROLLBACK TO SAVEPOINT s');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'b')$$);
SELECT pg_temp.write('COMMIT');
SELECT is(pg_temp.received(), 1::bigint, 'a change after a rolled-back savepoint notifies at commit');

-- the same with an exception block
SELECT pg_temp.write($w$DO $do$ BEGIN
	BEGIN
		PERFORM userlife.disable_user(%1$L, 'a');
		RAISE EXCEPTION 'undo' USING ERRCODE = 'P0001';
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
	PERFORM userlife.enable_user(%1$L, 'b');
END $do$$w$);
SELECT is(pg_temp.received(), 1::bigint, 'a change after a caught error notifies at commit');

-- queued in a released savepoint, the parent rolled back, then a change
SELECT pg_temp.write('BEGIN');
SELECT pg_temp.write('SAVEPOINT outer_sp');
SELECT pg_temp.write('SAVEPOINT inner_sp');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT pg_temp.write('RELEASE SAVEPOINT inner_sp');
SELECT pg_temp.write('ROLLBACK TO SAVEPOINT outer_sp');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'b')$$);
SELECT pg_temp.write('COMMIT');
SELECT is(pg_temp.received(), 1::bigint, 'a notification released into a rolled-back savepoint is queued again');

-- a notification that stays queued is sent once
SELECT pg_temp.write('BEGIN');
SELECT pg_temp.write($$SELECT userlife.enable_user(%L, 'b')$$);
SELECT pg_temp.write('SAVEPOINT s');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT pg_temp.write('ROLLBACK TO SAVEPOINT s');
SELECT pg_temp.write('COMMIT');
SELECT is(pg_temp.received(), 1::bigint, 'queued before the savepoint: sent once');

-- a rolled-back notification does not use up the interval
SELECT pg_temp.write($$SET userlife.notify_interval = '2s'$$);
SELECT pg_sleep(2.1);
SELECT pg_temp.write('BEGIN');
SELECT pg_temp.write('SAVEPOINT s');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'a')$$);
SELECT pg_temp.write('ROLLBACK TO SAVEPOINT s');
SELECT pg_temp.write('COMMIT');
SELECT pg_temp.write($$SELECT userlife.disable_user(%L, 'b')$$);
SELECT is(pg_temp.received(), 1::bigint, 'the next committed change within the interval still notifies');

SELECT dblink_disconnect('nsp_listener');
SELECT dblink_disconnect('nsp_writer');
SELECT * FROM finish();
