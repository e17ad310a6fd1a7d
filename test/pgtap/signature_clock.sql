-- The clock, not the transaction's start (issue "Trust, round two",
-- defect 1; SPEC §5.5-§5.7, §8).  Session s1 (dblink) opens its
-- transaction early; session s2 (dblink, autocommit) acts meanwhile.  s1
-- cannot use a timestamp that has gone stale, a key s2 revoked (under READ
-- COMMITTED and REPEATABLE READ alike), or a used signature that
-- run_maintenance has since forgotten.  In this file's own transaction,
-- opened before all that: restore_user's window, set_status's "until",
-- run_maintenance's suspension expiry and claim_events' 5-minute lapse go
-- by the clock too.  The partner is committed by s2, so it stays behind
-- under a name of its own.
BEGIN;
SELECT plan(20);

SELECT set_config('tap.partner', 'clk_' || substr(md5(random()::text), 1, 8), true);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), true);
SELECT dblink_connect('s1', current_setting('tap.conn'));
SELECT dblink_connect('s2', current_setting('tap.conn'));
-- in s1: a statement's single result, or the SQLSTATE it failed with (the transaction goes on)
SELECT dblink_exec('s1', $q$CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	r text;
BEGIN
	EXECUTE q INTO r;
	RETURN r;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$f$$q$);
CREATE FUNCTION pg_temp.s1(q text) RETURNS text LANGUAGE sql AS $$
	SELECT r FROM dblink('s1', format('SELECT pg_temp.try(%L)', q)) AS t(r text)
$$;
CREATE FUNCTION pg_temp.s2(q text) RETURNS text LANGUAGE sql AS $$
	SELECT r FROM dblink('s2', q) AS t(r text)
$$;
-- a signature by a given key, as a partner's client computes it
CREATE FUNCTION pg_temp.sign(key text, t text) RETURNS text LANGUAGE sql AS $$
	SELECT encode(hmac(convert_to(t || current_setting('tap.partner') || 'sid_request', 'UTF8'),
	                   convert_to(key, 'UTF8'), 'sha256'), 'base64')
$$;
CREATE FUNCTION pg_temp.utc(at timestamptz) RETURNS text LANGUAGE sql AS $$
	SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
CREATE FUNCTION pg_temp.verify_sql(key text, t text) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT userlife.verify_signature(%L, %L, %L)::text',
	              current_setting('tap.partner'), pg_temp.sign(key, t), t)
$$;
CREATE FUNCTION pg_temp.request_sql(key text, t text) RETURNS text LANGUAGE sql AS $$
	SELECT format('SELECT userlife.enrollee_request(%L)->>''status''',
	              jsonb_build_object('partner_id', current_setting('tap.partner'), 'user_id', 'c1',
	                                 'environment', 'production', 'timestamp', t,
	                                 'signature', pg_temp.sign(key, t), 'delete', true))
$$;
-- s2 issues a key (revoking the earlier ones at once) and returns it
CREATE FUNCTION pg_temp.rotate() RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.s2(format($q$SELECT userlife.issue_api_key(%L, grace => '0')$q$, current_setting('tap.partner')))
$$;

SELECT is(pg_temp.s2(format($$SELECT partner FROM userlife.create_partner(%L)$$, current_setting('tap.partner'))),
          current_setting('tap.partner'), 's2 commits a partner of its own');
SELECT is(pg_temp.s2(format($$SELECT external_id FROM userlife.register_user(%L, 'c1')$$, current_setting('tap.partner'))),
          'c1', 'and a user');
SELECT set_config('tap.key', pg_temp.rotate(), true);

---- s1 under READ COMMITTED, opened early -------------------------------
SELECT dblink_exec('s1', 'BEGIN');
SELECT set_config('tap.t0', (SELECT pg_temp.utc(t) FROM dblink('s1', 'SELECT now()') AS r(t timestamptz)), true);
SELECT dblink_exec('s1', 'SET LOCAL userlife.signature_max_age = 1');
SELECT pg_sleep(1.3);
SELECT is(pg_temp.s1(pg_temp.verify_sql(current_setting('tap.key'), current_setting('tap.t0'))), 'false',
          'a timestamp from the transaction''s start is stale by the clock');
SELECT is(pg_temp.s1(pg_temp.request_sql(current_setting('tap.key'),
                                         pg_temp.utc(current_setting('tap.t0')::timestamptz + interval '1 millisecond'))),
          'UL003', 'enrollee_request refuses a request signed at the transaction''s start: UL003');
SELECT dblink_exec('s1', 'SET LOCAL userlife.signature_max_age = 300');
SELECT set_config('tap.key2', pg_temp.rotate(), true);
SELECT is(pg_temp.s1(pg_temp.verify_sql(current_setting('tap.key'), pg_temp.utc(clock_timestamp()))), 'false',
          'a key another session revoked meanwhile (grace 0) is refused');
SELECT is(pg_temp.s1(pg_temp.request_sql(current_setting('tap.key'), pg_temp.utc(clock_timestamp()))), 'UL003',
          'enrollee_request with the revoked key: UL003');
SELECT is(pg_temp.s1(pg_temp.verify_sql(current_setting('tap.key2'), pg_temp.utc(clock_timestamp()))), 'true',
          'the key that replaced it verifies');
-- a signature dated at s1's start, used by s2, then forgotten by run_maintenance
SELECT dblink_exec('s1', 'SET LOCAL userlife.signature_max_age = 3');
SELECT dblink_exec('s2', 'SET userlife.signature_max_age = 3');
SELECT set_config('tap.t1', current_setting('tap.t0'), true);
SELECT is(pg_temp.s2(pg_temp.verify_sql(current_setting('tap.key2'), current_setting('tap.t1'))), 'true',
          'another session uses a signature dated at s1''s start');
SELECT pg_sleep(2.3);
SELECT cmp_ok(pg_temp.s2('SELECT userlife.run_maintenance()->>''signatures_forgotten''')::int, '>=', 1,
              'run_maintenance forgets it once it is past its window');
SELECT is(pg_temp.s1(pg_temp.verify_sql(current_setting('tap.key2'), current_setting('tap.t1'))), 'false',
          'the forgotten signature is not accepted a second time by the early transaction');
SELECT dblink_exec('s1', 'ROLLBACK');
SELECT dblink_exec('s2', 'RESET userlife.signature_max_age');

---- s1 under REPEATABLE READ, snapshot taken early ----------------------
SELECT dblink_exec('s1', 'BEGIN ISOLATION LEVEL REPEATABLE READ');
SELECT pg_temp.s1('SELECT count(*)::text FROM userlife.partners');
SELECT set_config('tap.key3', pg_temp.rotate(), true);
SELECT is(pg_temp.s1(pg_temp.verify_sql(current_setting('tap.key2'), pg_temp.utc(clock_timestamp()))), 'false',
          'REPEATABLE READ: a key revoked after the snapshot was taken is refused');
SELECT is(pg_temp.s1(pg_temp.verify_sql(current_setting('tap.key3'), pg_temp.utc(clock_timestamp()))), 'true',
          'REPEATABLE READ: the key issued after the snapshot was taken verifies');
SELECT set_config('tap.t2', pg_temp.utc(clock_timestamp()), true);
SELECT is(pg_temp.s2(pg_temp.verify_sql(current_setting('tap.key3'), current_setting('tap.t2'))), 'true',
          'another session uses a fresh signature');
SELECT is(pg_temp.s1(pg_temp.verify_sql(current_setting('tap.key3'), current_setting('tap.t2'))), 'false',
          'REPEATABLE READ: its replay is refused (false, not a serialization failure)');
SELECT dblink_exec('s1', 'ROLLBACK');
SELECT dblink_disconnect('s1');
SELECT dblink_disconnect('s2');

---- this transaction, opened seconds ago: lifecycle deadlines -----------
SELECT userlife.set_retention(current_setting('tap.partner'), '1 second') IS NOT NULL;
SELECT userlife.register_user(current_setting('tap.partner'), 'r1') IS NOT NULL;
SELECT userlife.delete_user(current_setting('tap.partner'), 'r1') IS NOT NULL;
SELECT throws_ok(format($$SELECT userlife.restore_user(%L, 'r1')$$, current_setting('tap.partner')), 'UL005', NULL,
                 'restore_user: the window (purge_after = now() + 1 second) closed by the clock');
SELECT throws_ok(format($$SELECT userlife.set_status(%L, 'c1', 'suspended', 'x', until => now() + interval '1 second')$$,
                        current_setting('tap.partner')), '22023', NULL,
                 'set_status: an "until" past by the clock is not in the future');
SELECT userlife.register_user(current_setting('tap.partner'), 's1') IS NOT NULL;
SELECT userlife.set_status(current_setting('tap.partner'), 's1', 'suspended', 'review',
                           until => clock_timestamp() + interval '1 second') IS NOT NULL;
SELECT pg_sleep(1.2);
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

SELECT * FROM finish();
ROLLBACK;
