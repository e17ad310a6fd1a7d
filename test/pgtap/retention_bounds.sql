-- Retention bounds (SPEC §5.1, §5.6): a retention must be positive and at
-- most 100 years, compared as PostgreSQL compares intervals (a month is 30
-- days, a day 24 hours), at create_partner, set_retention and in the
-- userlife.default_retention setting; a refused call changes nothing.
-- Deletion never fails because of a stored retention (a row from before
-- the bound, or written past the constraint, is capped at 100 years), and
-- purge_after does not depend on the caller's TimeZone.
BEGIN;
SELECT plan(26);

-- too long or not positive: 22023 from create_partner ...
SELECT throws_ok(format('SELECT userlife.create_partner(%L, retention => %L)', 'rb-' || i, r), '22023', NULL,
                 format('create_partner with retention %s: 22023', r))
  FROM unnest(ARRAY['300000 years', '1200 months 1 day', '36500 days', '100 years 1 microsecond',
                    '864001 hours', '0', '-1 day', '1 month -31 days']) WITH ORDINALITY AS t(r, i);
SELECT is((SELECT count(*) FROM userlife.partners WHERE partner LIKE 'rb-%'), 0::bigint,
          'no partner was created by the refused calls');

-- ... and up to 100 years is fine
SELECT is((SELECT retention FROM userlife.create_partner('rb-ok-' || i, retention => r::interval)),
          r::interval, format('create_partner with retention %s', r))
  FROM unnest(ARRAY['100 years', '1200 months', '36000 days', '864000 hours', '1 microsecond'])
       WITH ORDINALITY AS t(r, i);

-- set_retention: the same bounds, the row unchanged when refused
SELECT throws_ok(format('SELECT userlife.set_retention(%L, %L)', 'rb-ok-1', r), '22023', NULL,
                 format('set_retention %s: 22023', r))
  FROM unnest(ARRAY['300000 years', '1200 months 1 day', '36500 days', '0']) r;
SELECT is((SELECT retention FROM userlife.partners WHERE partner = 'rb-ok-1'), '100 years'::interval,
          'the refused set_retention calls changed nothing');

-- the setting too
SELECT throws_ok($$SET LOCAL userlife.default_retention = '101 years'$$, '22023', NULL,
                 'userlife.default_retention over 100 years: 22023');

-- purge_after = now() + retention counted in UTC, whatever the session's TimeZone
SELECT count(userlife.register_user('rb-ok-3', 'tz-' || i)) FROM generate_series(1, 3) i \gset
SELECT userlife.set_retention('rb-ok-3', '200 days') IS NOT NULL AS set \gset
SET LOCAL TIME ZONE 'America/New_York';
SELECT userlife.delete_user('rb-ok-3', 'tz-1') IS NOT NULL AS deleted \gset
SET LOCAL TIME ZONE 'Australia/Sydney';
SELECT userlife.delete_user('rb-ok-3', 'tz-2') IS NOT NULL AS deleted \gset
SET LOCAL TIME ZONE 'Europe/London';
SELECT userlife.delete_user('rb-ok-3', 'tz-3') IS NOT NULL AS deleted \gset
RESET TIME ZONE;
SELECT is(purge_after, ((now() AT TIME ZONE 'UTC') + interval '200 days') AT TIME ZONE 'UTC',
          format('purge_after of %s (deleted under another TimeZone) is 200 days of UTC later', external_id))
  FROM userlife.users WHERE partner = 'rb-ok-3' ORDER BY external_id;

-- deletion with a huge stored retention (from 0.2.0, or past the
-- constraint): capped at 100 years, never a timestamp overflow
ALTER TABLE userlife.partners DROP CONSTRAINT IF EXISTS partners_retention_at_most_100_years;
UPDATE userlife.partners SET retention = '300000 years' WHERE partner = 'rb-ok-2';
SELECT count(userlife.register_user('rb-ok-2', 'u-' || i)) FROM generate_series(1, 3) i \gset
SELECT lives_ok($$SELECT userlife.delete_user('rb-ok-2', 'u-1')$$, 'delete_user under a 300000-year retention');
SELECT is((SELECT purge_after FROM userlife.get_user('rb-ok-2', 'u-1')),
          ((now() AT TIME ZONE 'UTC') + interval '100 years') AT TIME ZONE 'UTC',
          'purge_after is capped at 100 years');
SELECT results_eq($$SELECT result FROM userlife.delete_users('rb-ok-2', ARRAY['u-2', 'u-3'])$$,
                  ARRAY['deleted', 'deleted'], 'delete_users deletes the batch under it too');

SELECT * FROM finish();
ROLLBACK;
