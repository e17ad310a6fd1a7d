-- Signed requests under the caller's session settings (SPEC §5.7, issue
-- "Trust" defect 1): a timestamp without a UTC offset is UTC, so the same
-- fresh request is accepted and the same 10-minute-old one refused under
-- every TimeZone (INTERVAL '-00:10' HOUR TO MINUTE and '+14' included),
-- DateStyle and IntervalStyle, and under other output settings; an old
-- signature stays refused after SET TIME ZONE tricks; only ISO 8601 is a
-- timestamp (no zone names or abbreviations, no words, no date alone).
BEGIN;
SELECT plan(47);

SELECT lives_ok($$SELECT userlife.create_partner('sigset')$$, 'partner');
SELECT lives_ok($$SELECT userlife.issue_api_key('sigset')$$, 'key');
SELECT lives_ok($$SELECT userlife.register_user('sigset', 'm1')$$, 'user');

-- a signed request body at a time, written as UTC wall-clock time without an offset
CREATE FUNCTION pg_temp.body(flags jsonb, at timestamptz) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('partner_id', 'sigset', 'user_id', 'm1', 'environment', 'production',
	                          'email', 'ops@sigset.test')
	       || userlife.generate_signature('sigset', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))
	       || flags
$$;
-- accepted, or the SQLSTATE enrollee_request refused with
CREATE FUNCTION pg_temp.verdict(body jsonb) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM userlife.enrollee_request(body);
	RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
CREATE FUNCTION pg_temp.fresh() RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.verdict(pg_temp.body('{"active": true}', clock_timestamp()))
$$;
CREATE FUNCTION pg_temp.stale() RETURNS text LANGUAGE sql AS $$
	SELECT pg_temp.verdict(pg_temp.body('{"active": false}', clock_timestamp() - interval '10 minutes'))
$$;

-- TimeZone
SET LOCAL TIME ZONE 'UTC';
SELECT is(pg_temp.fresh(), 'accepted', 'TimeZone UTC: a fresh timestamp without offset is accepted');
SELECT is(pg_temp.stale(), 'UL003', 'TimeZone UTC: a 10-minute-old one is refused');
SET LOCAL TIME ZONE INTERVAL '-00:10' HOUR TO MINUTE;
SELECT is(pg_temp.fresh(), 'accepted', 'TimeZone -00:10: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'TimeZone -00:10: the 10-minute-old signature is not made current again');
SET LOCAL TIME ZONE '+14';
SELECT is(pg_temp.fresh(), 'accepted', 'TimeZone ''+14'': fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'TimeZone ''+14'': stale refused');
SET LOCAL TIME ZONE INTERVAL '+14:00' HOUR TO MINUTE;
SELECT is(pg_temp.fresh(), 'accepted', 'TimeZone INTERVAL +14:00: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'TimeZone INTERVAL +14:00: stale refused');
SET LOCAL TIME ZONE 'America/St_Johns';
SELECT is(pg_temp.fresh(), 'accepted', 'TimeZone America/St_Johns: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'TimeZone America/St_Johns: stale refused');
SET LOCAL TIME ZONE INTERVAL '-00:05' HOUR TO MINUTE;
SELECT is(pg_temp.verdict(pg_temp.body('{"active": true}', clock_timestamp() - interval '4 minutes 30 seconds')),
          'accepted', 'TimeZone -00:05: a 4.5-minute-old timestamp is still within the window');
SELECT is(pg_temp.verdict(pg_temp.body('{"active": true}', clock_timestamp() - interval '6 minutes')),
          'UL003', 'TimeZone -00:05: a 6-minute-old one is not pulled back into it');

-- DateStyle (TimeZone back to UTC)
SET LOCAL TIME ZONE 'UTC';
SET LOCAL DateStyle = 'ISO, MDY';
SELECT is(pg_temp.fresh(), 'accepted', 'DateStyle ISO, MDY: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'DateStyle ISO, MDY: stale refused');
SET LOCAL DateStyle = 'SQL, DMY';
SELECT is(pg_temp.fresh(), 'accepted', 'DateStyle SQL, DMY: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'DateStyle SQL, DMY: stale refused');
SET LOCAL DateStyle = 'German';
SELECT is(pg_temp.fresh(), 'accepted', 'DateStyle German: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'DateStyle German: stale refused');
SET LOCAL DateStyle = 'Postgres, YMD';
SELECT is(pg_temp.fresh(), 'accepted', 'DateStyle Postgres, YMD: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'DateStyle Postgres, YMD: stale refused');
SELECT matches(userlife.generate_signature('sigset')->>'timestamp',
               '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$',
               'generate_signature writes ISO 8601 in UTC whatever the DateStyle');

-- IntervalStyle
SET LOCAL DateStyle = 'ISO, MDY';
SET LOCAL IntervalStyle = 'postgres';
SELECT is(pg_temp.fresh(), 'accepted', 'IntervalStyle postgres: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'IntervalStyle postgres: stale refused');
SET LOCAL IntervalStyle = 'sql_standard';
SELECT is(pg_temp.fresh(), 'accepted', 'IntervalStyle sql_standard: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'IntervalStyle sql_standard: stale refused');
SET LOCAL IntervalStyle = 'iso_8601';
SELECT is(pg_temp.fresh(), 'accepted', 'IntervalStyle iso_8601: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'IntervalStyle iso_8601: stale refused');

-- everything odd at once
SET LOCAL TIME ZONE '+14';
SET LOCAL DateStyle = 'SQL, DMY';
SET LOCAL IntervalStyle = 'postgres_verbose';
SET LOCAL extra_float_digits = -15;
SET LOCAL bytea_output = 'escape';
SET LOCAL standard_conforming_strings = off;
SET LOCAL search_path = pg_temp, public, pg_catalog;
SELECT is(pg_temp.fresh(), 'accepted', 'all settings odd at once: fresh accepted');
SELECT is(pg_temp.stale(), 'UL003', 'all settings odd at once: stale refused');
RESET search_path;
RESET standard_conforming_strings;

-- explicit offsets mean what they say, whatever TimeZone
SELECT is(userlife.verify_signature('sigset',
          userlife.generate_signature('sigset', t)->>'signature', t), true,
          'a fresh timestamp written as +14:00 local time verifies under TimeZone ''+14''')
  FROM (SELECT to_char(clock_timestamp() AT TIME ZONE '-14:00', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+14:00' AS t) x;
SELECT is(userlife.verify_signature('sigset',
          userlife.generate_signature('sigset', t)->>'signature', t), true,
          'UTC wall-clock time of 10 minutes ago with offset -00:10 names the present: accepted')
  FROM (SELECT to_char((clock_timestamp() - interval '10 minutes') AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.US') || '-00:10' AS t) x;
SELECT is(userlife.verify_signature('sigset',
          userlife.generate_signature('sigset', t)->>'signature', t), false,
          'UTC wall-clock time of now with offset +00:10 names 10 minutes ago: refused')
  FROM (SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:10' AS t) x;

-- a used signature, replayed after a time zone trick
SET LOCAL TIME ZONE 'UTC';
SELECT set_config('tap.body', pg_temp.body('{"active": false}', clock_timestamp())::text, true);
SELECT is(pg_temp.verdict(current_setting('tap.body')::jsonb), 'accepted', 'a request accepted once');
SET LOCAL TIME ZONE INTERVAL '-00:10' HOUR TO MINUTE;
SELECT is(pg_temp.verdict(current_setting('tap.body')::jsonb), 'UL003', 'the same request after SET TIME ZONE: refused');

-- only ISO 8601 is a timestamp
SELECT throws_ok(format($$SELECT userlife.verify_signature('sigset', 'AAAA', %L)$$, t), '22023', NULL,
                 'not ISO 8601: ' || t)
  FROM unnest(ARRAY[to_char(clock_timestamp() AT TIME ZONE 'America/Los_Angeles', 'YYYY-MM-DD HH24:MI:SS') || ' PST',
                    to_char(clock_timestamp(), 'YYYY-MM-DD"T"HH24:MI:SS') || ' Europe/Paris',
                    to_char(clock_timestamp(), 'YYYY-MM-DD'),
                    'now', 'epoch',
                    '2026-1-1T12:00:00Z', '2026-01-01T24:00:00Z', '2026-02-29T00:00:00Z',
                    '2026-01-01T12:00:00+25:00', '2026-01-01T12:00:00Zjunk']) AS t;

SELECT * FROM finish();
ROLLBACK;
