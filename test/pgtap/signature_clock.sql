-- The clock, not the transaction's start (issue "Trust, round two",
-- defect 1; SPEC §5.5-§5.7, §8): a transaction opened early cannot use a
-- timestamp that has gone stale meanwhile, a key another session revoked
-- meanwhile (under READ COMMITTED and REPEATABLE READ alike), or a used
-- signature the replay memory has since forgotten; restore_user's window,
-- set_status's "until", run_maintenance's suspension expiry and
-- claim_events' 5-minute lapse go by the clock too.  Runs outside a
-- transaction: the second session (dblink) must see committed data, so it
-- works on a partner of its own.
SELECT plan(19);

SELECT set_config('tap.partner', 'clk_' || substr(md5(random()::text), 1, 8), false);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), false);
SELECT lives_ok(format($$SELECT userlife.create_partner(%L)$$, current_setting('tap.partner')), 'own partner');
SELECT lives_ok(format($$SELECT userlife.register_user(%L, 'c1')$$, current_setting('tap.partner')), 'a user');
SELECT set_config('tap.key', userlife.issue_api_key(current_setting('tap.partner')), false);
SELECT dblink_connect('s1', current_setting('tap.conn'));

-- a signature by a given key, as a partner's client computes it
CREATE FUNCTION pg_temp.sign(key text, t text) RETURNS text LANGUAGE sql AS $$
	SELECT encode(hmac(convert_to(t || current_setting('tap.partner') || 'sid_request', 'UTF8'),
	                   convert_to(key, 'UTF8'), 'sha256'), 'base64')
$$;
CREATE FUNCTION pg_temp.utc(at timestamptz) RETURNS text LANGUAGE sql AS $$
	SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
-- verify_signature's answer, or the SQLSTATE it failed with
CREATE FUNCTION pg_temp.verify(key text, t text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	RETURN userlife.verify_signature(current_setting('tap.partner'), pg_temp.sign(key, t), t)::text;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
CREATE FUNCTION pg_temp.request(key text, t text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM userlife.enrollee_request(jsonb_build_object('partner_id', current_setting('tap.partner'),
		'user_id', 'c1', 'environment', 'production', 'timestamp', t,
		'signature', pg_temp.sign(key, t), 'delete', true));
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
-- s1 issues a key (revoking the earlier ones at once) and returns it
CREATE FUNCTION pg_temp.rotate_in_s1() RETURNS text LANGUAGE sql AS $$
	SELECT k FROM dblink('s1', format($q$SELECT userlife.issue_api_key(%L, grace => '0')$q$,
	                                  current_setting('tap.partner'))) AS r(k text)
$$;

---- READ COMMITTED, opened early ----------------------------------------
BEGIN;
SELECT set_config('tap.t0', pg_temp.utc(now()), true);
SET LOCAL userlife.signature_max_age = 1;
SELECT pg_sleep(1.3);
SELECT is(pg_temp.verify(current_setting('tap.key'), current_setting('tap.t0')), 'false',
          'a timestamp from the transaction''s start is stale by the clock');
SELECT is(pg_temp.request(current_setting('tap.key'), pg_temp.utc(now() + interval '1 millisecond')), 'UL003',
          'enrollee_request refuses a request signed at the transaction''s start: UL003');
SET LOCAL userlife.signature_max_age = 300;
SELECT set_config('tap.key2', pg_temp.rotate_in_s1(), true);
SELECT is(pg_temp.verify(current_setting('tap.key'), pg_temp.utc(clock_timestamp())), 'false',
          'a key another session revoked meanwhile (grace 0) is refused');
SELECT is(pg_temp.request(current_setting('tap.key'), pg_temp.utc(clock_timestamp())), 'UL003',
          'enrollee_request with the revoked key: UL003');
SELECT is(pg_temp.verify(current_setting('tap.key2'), pg_temp.utc(clock_timestamp())), 'true',
          'the key that replaced it verifies');
-- a signature used by s1, then forgotten by run_maintenance once past its window
SET LOCAL userlife.signature_max_age = 3;
SELECT set_config('tap.t1', pg_temp.utc(now()), true);
SELECT dblink_exec('s1', 'SET userlife.signature_max_age = 3');
SELECT is((SELECT v FROM dblink('s1', format($q$SELECT userlife.verify_signature(%L, %L, %L)$q$,
              current_setting('tap.partner'), pg_temp.sign(current_setting('tap.key2'), current_setting('tap.t1')),
              current_setting('tap.t1'))) AS r(v boolean)), true,
          'another session uses a signature dated at this transaction''s start');
SELECT pg_sleep(2.3);
SELECT cmp_ok((SELECT (v->>'signatures_forgotten')::int
                 FROM dblink('s1', 'SELECT userlife.run_maintenance()') AS r(v jsonb)), '>=', 1,
          'run_maintenance forgets it once it is past its window');
SELECT is(pg_temp.verify(current_setting('tap.key2'), current_setting('tap.t1')), 'false',
          'the forgotten signature is not accepted a second time by the early transaction');
ROLLBACK;

---- REPEATABLE READ, snapshot taken early -------------------------------
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) >= 0 FROM userlife.partners;
SELECT set_config('tap.key3', pg_temp.rotate_in_s1(), true);
SELECT is(pg_temp.verify(current_setting('tap.key2'), pg_temp.utc(clock_timestamp())), 'false',
          'REPEATABLE READ: a key revoked after the snapshot was taken is refused');
SELECT set_config('tap.t2', pg_temp.utc(clock_timestamp()), true);
SELECT is((SELECT v FROM dblink('s1', format($q$SELECT userlife.verify_signature(%L, %L, %L)$q$,
              current_setting('tap.partner'), pg_temp.sign(current_setting('tap.key3'), current_setting('tap.t2')),
              current_setting('tap.t2'))) AS r(v boolean)), true,
          'another session uses a fresh signature after the snapshot was taken');
SELECT is(pg_temp.verify(current_setting('tap.key3'), current_setting('tap.t2')), 'false',
          'REPEATABLE READ: the replay is refused (false, not a serialization error)');
ROLLBACK;

---- lifecycle deadlines by the clock ------------------------------------
BEGIN;
SELECT userlife.set_retention(current_setting('tap.partner'), '1 second') IS NOT NULL;
SELECT userlife.register_user(current_setting('tap.partner'), 'r1') IS NOT NULL;
SELECT userlife.delete_user(current_setting('tap.partner'), 'r1') IS NOT NULL;
SELECT userlife.register_user(current_setting('tap.partner'), 's1') IS NOT NULL;
SELECT userlife.set_status(current_setting('tap.partner'), 's1', 'suspended', 'review',
                           until => clock_timestamp() + interval '1 second') IS NOT NULL;
SELECT pg_sleep(1.5);
SELECT throws_ok(format($$SELECT userlife.restore_user(%L, 'r1')$$, current_setting('tap.partner')), 'UL005', NULL,
                 'restore_user: the retention window closed by the clock, though not by the transaction''s start');
SELECT throws_ok(format($$SELECT userlife.set_status(%L, 'c1', 'suspended', 'x', until => now() + interval '1 second')$$,
                        current_setting('tap.partner')), '22023', NULL,
                 'set_status: an "until" past by the clock is not in the future');
SELECT cmp_ok((userlife.run_maintenance()->>'suspensions_ended')::int, '>=', 1,
              'run_maintenance ends a suspension due by the clock');
SELECT is((SELECT status::text FROM userlife.get_user(current_setting('tap.partner'), 's1')), 'active',
          'the suspended user is active again');
SELECT set_config('tap.before', clock_timestamp()::text, true);
SELECT is((SELECT bool_and(claimed_at >= current_setting('tap.before')::timestamptz)
             FROM userlife.claim_events(100, current_setting('tap.partner'))), true,
          'claim_events stamps claims with the clock');
UPDATE userlife.events SET claimed_at = clock_timestamp() - interval '5 minutes 200 milliseconds'
 WHERE partner = current_setting('tap.partner');
SELECT is((SELECT count(*) FROM userlife.claim_events(100, current_setting('tap.partner'))),
          (SELECT count(*) FROM userlife.events WHERE partner = current_setting('tap.partner') AND delivered_at IS NULL),
          'a claim 5 minutes old by the clock lapses, however old the transaction');
ROLLBACK;

SELECT dblink_disconnect('s1');
SELECT * FROM finish();
