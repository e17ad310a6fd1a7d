-- Calendar intervals are added in UTC, never in the caller's TimeZone
-- (SPEC §5.1, §5.6; session settings must not change what is stored):
-- issue_api_key's grace and delete_user's purge_after are 24 hours per day
-- even when the session's TimeZone springs forward in between.  The zone
-- is a POSIX rule made up here so that daylight saving time starts twelve
-- hours (to the hour) from now, whatever the date and the time of day: the
-- one-hour gap it opens is then far from both now and this time tomorrow
-- (a wall time inside the gap would be read as standard time, and 24 hours
-- would come back).
BEGIN;
SELECT plan(4);

SELECT lives_ok($$SELECT userlife.create_partner('dst', retention => '1 day')$$, 'partner with a 1-day retention');
SELECT userlife.issue_api_key('dst', 'test') IS NOT NULL;
SELECT userlife.register_user('dst', 'd1') IS NOT NULL;
SELECT set_config('TimeZone', format('AAA0BBB,%s/%s,%s/%s', n, h, (n + 5) % 365, h), true)
  FROM (SELECT extract(doy FROM t)::int - 1 AS n, extract(hour FROM t)::int AS h
          FROM (SELECT (now() AT TIME ZONE 'UTC') + interval '12 hours' AS t) a) x;
SELECT is(extract(epoch FROM (now() + interval '1 day') - now())::int, 23 * 3600,
          'the made-up zone springs forward before this time tomorrow (now() + 1 day is 23 hours away)');

SELECT userlife.issue_api_key('dst', 'test', grace => '1 day') IS NOT NULL;
SELECT cmp_ok((SELECT extract(epoch FROM min(k.expires_at) - clock_timestamp())::int
                 FROM userlife.partner_keys k WHERE k.partner = 'dst' AND k.expires_at IS NOT NULL),
              '>', 23 * 3600 + 1800,
              'issue_api_key: a 1-day grace is 24 hours, whatever the session''s TimeZone');
SELECT userlife.delete_user('dst', 'd1') IS NOT NULL;
SELECT is((SELECT extract(epoch FROM purge_after - deleted_at)::int FROM userlife.users
            WHERE partner = 'dst' AND external_id = 'd1'), 24 * 3600,
          'delete_user: a 1-day retention is 24 hours, whatever the session''s TimeZone');

SELECT * FROM finish();
ROLLBACK;
