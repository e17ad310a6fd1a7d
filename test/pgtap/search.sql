-- The search documents in userlife.user_search follow the users through
-- every path: the functions, a superuser's direct writes, replica mode
-- (users_search_replica), a DBA's BEFORE trigger (the guard sees the final
-- row), purge, erasure and TRUNCATE; a status change does not write them;
-- no role but the owner reads them.
BEGIN;
SELECT plan(36);

CREATE FUNCTION pg_temp.doc(p text, e text) RETURNS text LANGUAGE sql AS $$
	SELECT s.document FROM userlife.user_search s JOIN userlife.users u USING (user_id)
	 WHERE u.partner = p AND u.external_id = e $$;
CREATE FUNCTION pg_temp.found(p text, q text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(external_id, ',' ORDER BY external_id), '') FROM userlife.list_users(p, search => q) $$;
CREATE FUNCTION pg_temp.in_step() RETURNS boolean LANGUAGE sql AS $$
	SELECT NOT EXISTS (
		SELECT u.user_id, u.partner, lower(coalesce(u.display_name, '') || E'\x1f' || coalesce(u.email, '')
		                                  || E'\x1f' || u.external_id)
		  FROM userlife.users u
		EXCEPT ALL
		SELECT s.user_id, s.partner, s.document FROM userlife.user_search s)
	   AND (SELECT count(*) FROM userlife.users) = (SELECT count(*) FROM userlife.user_search) $$;

SELECT lives_ok($$SELECT userlife.create_partner('srch', retention => '1 day')$$, 'partner');
SELECT lives_ok($$SELECT userlife.register_user('srch', 'S-1', 'Ada Lovelace', 'Ada@Example.com')$$, 'register');
SELECT is(pg_temp.doc('srch', 'S-1'), E'ada lovelace\x1fada@example.com\x1fs-1',
          'registration writes the document: lowered name, e-mail and external_id');
SELECT is(pg_temp.found('srch', 'LOVELACE'), 'S-1', 'search finds it by name, case-insensitively');

-- a status change does not touch the document
CREATE TEMP TABLE before_status AS
	SELECT s.ctid AS at FROM userlife.user_search s JOIN userlife.users u USING (user_id) WHERE u.external_id = 'S-1';
SELECT lives_ok($$SELECT userlife.set_status('srch', 'S-1', 'suspended', 'review')$$, 'status change');
SELECT is((SELECT s.ctid FROM userlife.user_search s JOIN userlife.users u USING (user_id) WHERE u.external_id = 'S-1'),
          (SELECT at FROM before_status), 'the document row was not rewritten');

-- a changed e-mail, through the function and by hand
SELECT lives_ok($$SELECT userlife.update_user('srch', 'S-1', email => 'ada@engine.example')$$, 'update_user e-mail');
SELECT is(pg_temp.found('srch', 'example.com'), '', 'the old e-mail no longer matches');
SELECT is(pg_temp.found('srch', 'engine.example'), 'S-1', 'the new one does');
UPDATE userlife.users SET display_name = 'Augusta King' WHERE partner = 'srch' AND external_id = 'S-1';
SELECT is(pg_temp.found('srch', 'augusta'), 'S-1', 'a superuser''s direct UPDATE is followed');

-- replica mode switches the users triggers off, but not these
SET session_replication_role = replica;
UPDATE userlife.users SET email = 'countess@lovelace.example' WHERE partner = 'srch' AND external_id = 'S-1';
INSERT INTO userlife.users (partner, external_id, display_name) VALUES ('srch', 'S-2', 'Charles Babbage');
RESET session_replication_role;
SELECT is(pg_temp.found('srch', 'countess@'), 'S-1', 'an UPDATE in replica mode is followed');
SELECT is(pg_temp.found('srch', 'babbage'), 'S-2', 'an INSERT in replica mode too');

-- the WHEN clause sees the final row, a DBA's BEFORE trigger included
CREATE FUNCTION pg_temp.mark_suspended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.status = 'suspended' THEN
		NEW.display_name := NEW.display_name || ' (on hold)';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER aa_mark_suspended BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION pg_temp.mark_suspended();
SELECT lives_ok($$SELECT userlife.set_status('srch', 'S-2', 'suspended', 'review')$$,
                'a status change whose BEFORE trigger renames the user');
SELECT is(pg_temp.found('srch', 'on hold'), 'S-2', 'the renamed document is written');
DROP TRIGGER aa_mark_suspended ON userlife.users;

-- a user_id changed by hand (the users guard refuses it; replica mode
-- switches the guard off) takes its document along
SELECT throws_ok($$UPDATE userlife.users SET user_id = gen_random_uuid() WHERE partner = 'srch' AND external_id = 'S-2'$$,
                 NULL, 'column "user_id" of user "S-2" of partner "srch" cannot be changed', 'the guard refuses a new user_id');
SET session_replication_role = replica;
UPDATE userlife.users SET user_id = '00000000-0000-4000-8000-00000000002a' WHERE partner = 'srch' AND external_id = 'S-2';
RESET session_replication_role;
SELECT is((SELECT count(*) FROM userlife.user_search WHERE user_id = '00000000-0000-4000-8000-00000000002a'), 1::bigint,
          'the document moves to the new user_id');
SELECT ok(pg_temp.in_step(), 'no document is left under the old one');

-- soft deletion keeps the document; purge and erasure remove it
SELECT lives_ok($$SELECT userlife.register_user('srch', 'S-3', 'Mary Somerville', 'mary@example.org')$$, 'register S-3');
SELECT lives_ok($$SELECT userlife.delete_user('srch', 'S-3')$$, 'soft delete S-3');
SELECT isnt(pg_temp.doc('srch', 'S-3'), NULL, 'a soft-deleted user keeps its document');
UPDATE userlife.users SET purge_after = now() - interval '1 minute' WHERE partner = 'srch' AND external_id = 'S-3';
SELECT lives_ok($$SELECT userlife.purge_expired()$$, 'purge');
SELECT is((SELECT count(*) FROM userlife.user_search WHERE document LIKE '%somerville%'), 0::bigint,
          'the purged user''s name and e-mail are gone from the documents');
SELECT lives_ok($$SELECT userlife.erase_user('srch', 'S-1', 'right to erasure')$$, 'erase S-1');
SELECT is((SELECT count(*) FROM userlife.user_search WHERE document LIKE '%lovelace%' OR document LIKE '%augusta%'),
          0::bigint, 'the erased user''s too');
SELECT ok(pg_temp.in_step(), 'documents and users are in step after all of it');

-- a new document goes straight into the table while it is as installed;
-- with a DBA's trigger on it, through an INSERT statement that runs it
CREATE TEMP TABLE document_inserts (user_id uuid);
CREATE FUNCTION pg_temp.note_document() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pg_temp.document_inserts VALUES (NEW.user_id);
	RETURN NEW;
END $$;
CREATE TRIGGER ul_note_document BEFORE INSERT ON userlife.user_search
	FOR EACH ROW EXECUTE FUNCTION pg_temp.note_document();
SELECT lives_ok($$SELECT userlife.register_user('srch', 'S-4', 'Emmy Noether', 'emmy@example.org')$$,
                'register with a DBA trigger on user_search');
SELECT is((SELECT count(*) FROM document_inserts d JOIN userlife.users u USING (user_id) WHERE u.external_id = 'S-4'),
          1::bigint, 'the DBA trigger ran for its document');
DROP TRIGGER ul_note_document ON userlife.user_search;
SELECT lives_ok($$SELECT userlife.register_user('srch', 'S-5', 'Sophie Germain')$$, 'register after it is dropped');
SELECT is((SELECT count(*) FROM document_inserts), 1::bigint, 'the dropped trigger no longer runs');
SELECT is(pg_temp.found('srch', 'noether'), 'S-4', 'both documents are found');
SELECT is(pg_temp.found('srch', 'germain'), 'S-5', 'the one written directly too');
SELECT ok(pg_temp.in_step(), 'and both equal the SQL expression of the document');

-- only the owner reads them
SET LOCAL ROLE userlife_reader;
SELECT throws_ok($$SELECT count(*) FROM userlife.user_search$$, '42501', NULL, 'a reader cannot read the documents');
RESET ROLE;

-- the trigger function refuses to run anywhere else
CREATE TEMP TABLE not_users (x int);
CREATE TRIGGER ul_misplaced AFTER INSERT ON not_users
	FOR EACH ROW EXECUTE FUNCTION userlife.users_search_sync();
SELECT throws_ok($$INSERT INTO not_users VALUES (1)$$, '39P01', 'userlife.users_search_sync must be fired on userlife.users',
                 'users_search_sync on another table: 39P01');
CREATE TRIGGER ul_too_early BEFORE UPDATE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION userlife.users_search_sync();
SELECT throws_ok($$UPDATE userlife.users SET display_name = 'x' WHERE external_id = 'S-5'$$, '39P01',
                 'userlife.users_search_sync must be fired after the change', 'users_search_sync as a BEFORE trigger: 39P01');
DROP TRIGGER ul_too_early ON userlife.users;

-- TRUNCATE is refused (ddl_guards.sql); when a superuser switches that
-- guard off, it still empties the documents with the users
ALTER TABLE userlife.users DISABLE TRIGGER users_truncate_guard;
TRUNCATE userlife.users CASCADE;
SELECT is((SELECT count(*) FROM userlife.user_search), 0::bigint, 'TRUNCATE of users empties the documents');

SELECT * FROM finish();
ROLLBACK;
