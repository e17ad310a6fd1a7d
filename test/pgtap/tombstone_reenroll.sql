-- Purge and erasure keep a re-enrollment the partner already allowed
-- (SPEC §5.2, §5.6): allow_reenroll on a deleted user, then purge, and
-- registering the same external_id re-enrolls (no 23505); without the
-- permission, or with it withdrawn from the tombstone, 23505 as before.
BEGIN;
SELECT plan(16);

SELECT userlife.create_partner('tomb') IS NOT NULL AS created \gset
SELECT count(userlife.register_user('tomb', x, 'Name ' || x, x || '@tomb.example'))
  FROM unnest(ARRAY['allowed', 'plain', 'withdrawn', 'erased']) x \gset
SELECT count(userlife.delete_user('tomb', x, 'user asked'))
  FROM unnest(ARRAY['allowed', 'plain', 'withdrawn']) x \gset

SELECT ok(userlife.allow_reenroll('tomb', 'allowed', reason => 'partner decided'), 'allowed on the deleted user');
SELECT ok(userlife.allow_reenroll('tomb', 'withdrawn'), 'allowed on another, withdrawn after the purge below');
UPDATE userlife.users SET purge_after = now() - interval '1 minute' WHERE partner = 'tomb';
SELECT cmp_ok(userlife.purge_expired(), '>=', 3::bigint, 'the three deleted users are purged');
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = 'tomb' AND status = 'deleted'), 0::bigint,
          'no deleted user of the partner remains');

SELECT results_eq($$SELECT t.allow_new_enroll FROM userlife.tombstones t
                     WHERE t.partner = 'tomb' ORDER BY t.external_id_digest = sha256(convert_to('allowed', 'UTF8')) DESC,
                           t.external_id_digest = sha256(convert_to('withdrawn', 'UTF8')) DESC$$,
                  ARRAY[true, true, false], 'the tombstones keep the permission given before the purge');

-- the allowed one re-enrolls
SELECT lives_ok($$SELECT userlife.register_user('tomb', 'allowed', 'Back Again', 'back@tomb.example')$$,
                'a purged user whose re-enrollment was allowed registers again');
SELECT is((SELECT row(status, enrollment_count, allow_new_enroll, display_name)::text
             FROM userlife.get_user('tomb', 'allowed')),
          '(active,2,f,"Back Again")', 're-enrolled: active, second enrollment, the permission used up');
SELECT is((SELECT count(*) FROM userlife.tombstones t WHERE t.partner = 'tomb'
             AND t.external_id_digest = sha256(convert_to('allowed', 'UTF8'))), 0::bigint,
          'its tombstone is gone');
SELECT is((SELECT action FROM userlife.user_history('tomb', 'allowed') ORDER BY audit_id DESC LIMIT 1),
          'reenroll', 'audited as reenroll');
SELECT throws_ok($$SELECT userlife.register_user('tomb', 'allowed')$$, '23505', NULL,
                 'the permission was one-shot: once more is 23505');

-- no permission, or a withdrawn one: 23505 as before
SELECT throws_ok($$SELECT userlife.register_user('tomb', 'plain')$$, '23505', NULL,
                 'purged without permission: 23505');
SELECT is(userlife.allow_reenroll('tomb', 'withdrawn', false), false, 'the permission withdrawn on the tombstone');
SELECT throws_ok($$SELECT userlife.register_user('tomb', 'withdrawn')$$, '23505', NULL,
                 'withdrawn after the purge: 23505');

-- erasure is a purge too
SELECT ok(userlife.allow_reenroll('tomb', 'erased'), 'allowed on a live user');
SELECT ok(userlife.erase_user('tomb', 'erased', 'right to erasure'), 'then erased');
SELECT is((SELECT enrollment_count FROM userlife.register_user('tomb', 'erased')), 2,
          'the erased user registers again under the permission given before');

SELECT * FROM finish();
ROLLBACK;
