-- Messages (issue 17 point 5): every kind of refusal names the user as
-- 'user "X" of partner "Y"' and quotes the values it shows; a value the
-- caller passed is shown at most 64 characters long, then "..."; a caller
-- without the partner's binding learns nothing it did not pass in.
\set SHOW_CONTEXT never
\set VERBOSITY default
SELECT partner FROM userlife.create_partner('msg');
SELECT external_id FROM userlife.register_user('msg', 'm-1', email => 'm1@example.com');
SELECT external_id FROM userlife.register_user('msg', 'm-2');
SELECT external_id FROM userlife.register_user('msg', 'quo"te ü');
SELECT length(external_id) FROM userlife.register_user('msg', repeat('l', 255));

-- not found: the partner, then the user
SELECT userlife.get_user('nopartner', 'm-1');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.get_user('msg', 'nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.user_history('msg', 'nobody');
\echo :LAST_ERROR_SQLSTATE
-- a 10 kB external_id: the message stays short
SELECT userlife.get_user('msg', repeat('x', 10000));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('msg', repeat('x', 10000));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user(repeat('p', 10000), 'm-1');
\echo :LAST_ERROR_SQLSTATE

-- duplicates
SELECT userlife.register_user('msg', 'm-1');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('msg', 'm-3', email => 'M1@example.com');
\echo :LAST_ERROR_SQLSTATE

-- the user's state
SELECT userlife.update_user('msg', 'm-1', display_name => 'x', expected_version => 99);
\echo :LAST_ERROR_SQLSTATE
SELECT verified_at IS NOT NULL AS verified FROM userlife.mark_verified('msg', 'm-1', '{"doc": "id"}');
SELECT userlife.mark_verified('msg', 'm-1', '{"doc": "id"}');
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET verified_attributes = '{}' WHERE partner = 'msg' AND external_id = 'm-1';
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET partner = 'other' WHERE partner = 'msg' AND external_id = 'm-1';
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.restore_user('msg', 'm-1');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM userlife.delete_user('msg', 'm-2');
SELECT userlife.update_user('msg', 'm-2', display_name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.mark_verified('msg', 'm-2', '{}');
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET purge_after = now() - interval '1 second'
 WHERE partner = 'msg' AND external_id = 'm-2';
SELECT userlife.restore_user('msg', 'm-2');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM userlife.delete_user('msg', repeat('l', 255));
SELECT userlife.update_user('msg', repeat('l', 255), display_name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM userlife.delete_user('msg', 'quo"te ü');
SELECT userlife.update_user('msg', 'quo"te ü', display_name => 'x');
\echo :LAST_ERROR_SQLSTATE

-- the status machine
SELECT userlife.set_status('msg', 'm-1', 'deleted');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('msg', 'm-1', 'inactive', 'x', until => now() + interval '1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('msg', 'm-1', 'blocked');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM userlife.set_status('msg', 'm-1', 'blocked', 'fraud ring');
SELECT userlife.set_status('msg', 'm-1', 'suspended', 'x');
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET status = 'deleted' WHERE partner = 'msg' AND external_id = 'm-1';
\echo :LAST_ERROR_SQLSTATE

-- legal hold
SELECT legal_hold FROM userlife.set_legal_hold('msg', 'm-1', true, 'subpoena');
SELECT userlife.erase_user('msg', 'm-1', 'gdpr');
\echo :LAST_ERROR_SQLSTATE
DELETE FROM userlife.users WHERE partner = 'msg' AND external_id = 'm-1';
\echo :LAST_ERROR_SQLSTATE
SET session_replication_role = replica;
DELETE FROM userlife.users WHERE partner = 'msg' AND external_id = 'm-1';
\echo :LAST_ERROR_SQLSTATE
RESET session_replication_role;
SELECT legal_hold FROM userlife.set_legal_hold('msg', 'm-1', false, 'case closed');

-- import: the item's message names the user too
SELECT item, external_id, result, sqlstate, message
  FROM userlife.import_users('msg', '[{"external_id": "m-2"}, {"external_id": "m-1"}]')
 ORDER BY item;
SELECT item, external_id, result, sqlstate, message
  FROM userlife.import_users('msg', '[{"external_id": "m-2"}]', 'update')
 ORDER BY item;

-- values the caller passed, quoted and bounded
SELECT userlife.record_job('msg', 'm-1', 'check', repeat('o', 10000));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.verify_signature('msg', 'AAAA', '2026-01-01T00:00:00Z', repeat('e', 100));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.import_users('msg', '[]', repeat('c', 100));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.add_webhook_endpoint('msg', 'https://hooks.example.com/' || repeat('x', 10000));
\echo :LAST_ERROR_SQLSTATE
-- credentials in a URL are not repeated into the server log
SELECT userlife.add_webhook_endpoint('msg', 'https://user:secret@hooks.example.com/');
\echo :LAST_ERROR_SQLSTATE

-- a caller without the binding: the same message whether the user exists
-- or not, naming only the partner it passed
CREATE ROLE regress_msg_dev IN ROLE userlife_developer, userlife_compliance;
SET ROLE regress_msg_dev;
SELECT userlife.update_user('msg', 'm-1', display_name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.update_user('msg', 'nobody', display_name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_status('msg', 'm-1', 'blocked', 'x');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_msg_dev;
