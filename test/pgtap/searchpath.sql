-- search_path safety: look-alikes of lower, =, sha256, digest, hmac, now and
-- gen_random_uuid, in public and in a schema first on the caller's
-- search_path, change no result of userlife's functions or triggers.
BEGIN;
SELECT plan(13);

CREATE SCHEMA evil;
CREATE FUNCTION evil.text_always_equal(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, PROCEDURE = evil.text_always_equal);
CREATE FUNCTION public.text_always_equal(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, PROCEDURE = public.text_always_equal);
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE sql AS 'SELECT md5(random()::text)';
CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql AS 'SELECT md5(random()::text)';
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE sql AS $$SELECT '2000-01-01'::timestamptz$$;
CREATE FUNCTION evil.sha256(bytea) RETURNS bytea LANGUAGE sql AS $$SELECT '\x00'::bytea$$;
CREATE FUNCTION evil.digest(bytea, text) RETURNS bytea LANGUAGE sql AS $$SELECT '\x00'::bytea$$;
CREATE FUNCTION evil.digest(text, text) RETURNS bytea LANGUAGE sql AS $$SELECT '\x00'::bytea$$;
CREATE FUNCTION evil.hmac(bytea, bytea, text) RETURNS bytea LANGUAGE sql AS $$SELECT decode(repeat('00', 32), 'hex')$$;
CREATE FUNCTION evil.hmac(text, text, text) RETURNS bytea LANGUAGE sql AS $$SELECT decode(repeat('00', 32), 'hex')$$;
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$SELECT '00000000-0000-0000-0000-000000000001'::uuid$$;

SELECT userlife.create_partner('sp') IS NOT NULL AS created \gset
SELECT length(userlife.issue_api_key('sp')) AS n \gset
SELECT userlife.generate_signature('sp') AS sig \gset

-- everything below until RESET runs with the look-alikes first on the path
SET LOCAL search_path = evil, public, pg_catalog;
CREATE TEMP TABLE got (k text, v text);
INSERT INTO got SELECT 'u1', (userlife.register_user('sp', 'u1', 'Uma One', 'uma@example.com')).user_id::text;
INSERT INTO got SELECT 'u2', (userlife.register_user('sp', 'u2', 'Ugo Two', 'ugo@example.com')).user_id::text;
INSERT INTO got SELECT 'get u2', (userlife.get_user('sp', 'u2')).display_name;
DO $$ BEGIN
	PERFORM userlife.register_user('sp', 'u3', email => 'UMA@example.com');
	INSERT INTO got VALUES ('dup email', 'accepted');
EXCEPTION WHEN unique_violation THEN
	INSERT INTO got VALUES ('dup email', 'refused');
END $$;
INSERT INTO got SELECT 'deleted_at', ((userlife.delete_user('sp', 'u2')).deleted_at > pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 hour')::text;
INSERT INTO got SELECT 'search', string_agg(external_id, ',') FROM userlife.list_users('sp', search => 'UMA');
INSERT INTO got SELECT 'verify good', userlife.verify_signature('sp', :'sig'::jsonb->>'signature', :'sig'::jsonb->>'timestamp')::text;
INSERT INTO got SELECT 'verify zeros', userlife.verify_signature('sp', encode(decode(repeat('00', 32), 'hex'), 'base64'),
                                                                 :'sig'::jsonb->>'timestamp')::text;
INSERT INTO got SELECT 'erase', userlife.erase_user('sp', 'u2', 'gdpr')::text;
UPDATE userlife.users SET status = 'inactive' WHERE partner OPERATOR(pg_catalog.=) 'sp' AND external_id OPERATOR(pg_catalog.=) 'u1';
INSERT INTO got SELECT 'audit u1', userlife.verify_audit('sp', 'u1')::text;
RESET search_path;

SELECT isnt((SELECT v FROM got WHERE k = 'u1'), (SELECT v FROM got WHERE k = 'u2'), 'gen_random_uuid is the real one');
SELECT isnt((SELECT v FROM got WHERE k = 'u1'), '00000000-0000-0000-0000-000000000001', 'no look-alike uuid');
SELECT is((SELECT v FROM got WHERE k = 'get u2'), 'Ugo Two', 'get_user finds the right user (the real =)');
SELECT is((SELECT v FROM got WHERE k = 'dup email'), 'refused', 'e-mail uniqueness still case-insensitive (the real lower)');
SELECT is((SELECT v FROM got WHERE k = 'deleted_at'), 'true', 'deleted_at is the real now()');
SELECT is((SELECT v FROM got WHERE k = 'search'), 'u1', 'search uses the real lower');
SELECT is((SELECT v FROM got WHERE k = 'verify good'), 'true', 'a good signature verifies (pgcrypto''s hmac)');
SELECT is((SELECT v FROM got WHERE k = 'verify zeros'), 'false', 'the look-alike hmac''s output does not');
SELECT is((SELECT v FROM got WHERE k = 'erase'), 'true', 'erasure works');
SELECT is((SELECT count(*) FROM userlife.tombstones
            WHERE partner = 'sp' AND external_id_digest = sha256(convert_to('u2', 'UTF8'))), 1::bigint,
          'the tombstone holds the real SHA-256');
SELECT is((SELECT status::text FROM userlife.users WHERE partner = 'sp' AND external_id = 'u1'), 'inactive',
          'the direct UPDATE went through the trigger');
SELECT is((SELECT v FROM got WHERE k = 'audit u1'), 'true', 'and its audit chain verifies');
SELECT is((SELECT count(*) FROM userlife.audit WHERE partner = 'sp' AND at < '2001-01-01'), 0::bigint,
          'no audit row took the look-alike now()');

SELECT * FROM finish();
ROLLBACK;
