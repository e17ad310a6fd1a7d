-- The transition rule cache follows a change another session commits to
-- userlife.transitions, also in a REPEATABLE READ transaction whose
-- snapshot predates the change: set_status judges by the rules committed when it runs, and a
-- backend never keeps rules read through an old snapshot.  Another session
-- (dblink) removes the rule active -> suspended and puts it back; the test
-- runs outside a transaction and works on a partner of its own.
SELECT plan(8);

SELECT set_config('tap.partner', 'rc_' || substr(md5(random()::text), 1, 8), false);
SELECT set_config('tap.conn', format('dbname=%s host=%s port=%s user=%s', current_database(),
       split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port'),
       current_user), false);
SELECT lives_ok(format($$SELECT userlife.create_partner(%L)$$, current_setting('tap.partner')), 'own partner');
SELECT lives_ok(format($$SELECT userlife.register_user(%L, u) FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e']) u$$,
                       current_setting('tap.partner')), 'users');
SELECT dblink_connect('rc', current_setting('tap.conn'));

-- a REPEATABLE READ transaction, rules cached before it: the rule removed
-- after its snapshot is gone for it too
SELECT lives_ok(format($$SELECT userlife.set_status(%L, 'a', 'inactive')$$, current_setting('tap.partner')),
                'rules read');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) >= 0 FROM userlife.users;
SELECT dblink_exec('rc', $$DELETE FROM userlife.transitions WHERE from_status = 'active' AND to_status = 'suspended'$$);
SELECT throws_ok(format($$SELECT userlife.set_status(%L, 'b', 'suspended')$$, current_setting('tap.partner')),
                 'UL001', NULL, 'the rule removed meanwhile is gone for this transaction too');
COMMIT;

-- a REPEATABLE READ snapshot taken before the rule came back
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) >= 0 FROM userlife.users;
SELECT dblink_exec('rc', $$INSERT INTO userlife.transitions VALUES ('active', 'suspended', false)$$);
SELECT lives_ok(format($$SELECT userlife.set_status(%L, 'c', 'suspended')$$, current_setting('tap.partner')),
                'the rule put back is seen through an older snapshot');
COMMIT;

-- the backend keeps no rules read through that snapshot
SELECT dblink_exec('rc', $$DELETE FROM userlife.transitions WHERE from_status = 'active' AND to_status = 'suspended'$$);
SELECT throws_ok(format($$SELECT userlife.set_status(%L, 'd', 'suspended')$$, current_setting('tap.partner')),
                 'UL001', NULL, 'a later transaction judges by the rules committed now');
SELECT dblink_exec('rc', $$INSERT INTO userlife.transitions VALUES ('active', 'suspended', false)$$);
SELECT lives_ok(format($$SELECT userlife.set_status(%L, 'e', 'suspended')$$, current_setting('tap.partner')),
                'and the rule back again allows it');
SELECT is((SELECT count(*) FROM userlife.transitions WHERE from_status = 'active' AND to_status = 'suspended'),
          1::bigint, 'the default rules are as they were');

SELECT dblink_disconnect('rc');
SELECT * FROM finish();
