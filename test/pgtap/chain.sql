-- test/pgtap/chain.sql — the audit hash chain as an attacker meets it:
-- no-op updates of TOASTed rows, erasure of values that look like digests,
-- guessing erased values from their digests, a removed tail of a purged
-- user's chain, and the columns outside the hash (external_id,
-- redacted_fields, hash_version).  Tampering is done as a superuser with
-- the audit's guard disabled, each case inside a savepoint.
BEGIN;
SELECT plan(45);

SET LOCAL client_min_messages = warning;
SELECT userlife.create_partner('chain');

-- ---------------------------------------------------------------------
-- TOASTed values: a no-op is a no-op, a change lists only what changed
-- ---------------------------------------------------------------------
SELECT userlife.register_user('chain', 'toast-1', 'Toast One', 'toast1@example.com',
	jsonb_build_object('blob', repeat('compressible ', 300),
	                   'noise', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 150) i)));
SELECT is((userlife.update_user('chain', 'toast-1', display_name => 'Toast One')).version, 1::bigint,
	'an update to the same name of a user with TOASTed metadata is a no-op (version 1)');
SELECT is((SELECT count(*) FROM userlife.user_history('chain', 'toast-1')), 1::bigint,
	'... and writes no audit row');
SELECT userlife.update_user('chain', 'toast-1', display_name => 'Toast Renamed');
SELECT is((SELECT changed_fields FROM userlife.user_history('chain', 'toast-1') ORDER BY audit_id DESC LIMIT 1),
	ARRAY['display_name'], 'a rename of that user lists display_name only, not the unchanged metadata');
SELECT is((SELECT count(*) FROM userlife.events e JOIN userlife.users u USING (user_id)
            WHERE u.external_id = 'toast-1'), 2::bigint, 'one event for the registration, one for the rename');

-- ---------------------------------------------------------------------
-- Erasure of a name that looks like a digest, and of real personal data
-- ---------------------------------------------------------------------
SELECT userlife.register_user('chain', 'hexname', 'Plain Name', 'hex@example.com');
SELECT userlife.update_user('chain', 'hexname', display_name => repeat('ab', 32));
SELECT userlife.erase_user('chain', 'hexname', 'right to erasure');
SELECT ok(NOT EXISTS (SELECT 1 FROM userlife.user_history('chain', 'hexname') a
                       WHERE a.new_values::text LIKE '%' || repeat('ab', 32) || '%'
                          OR a.old_values::text LIKE '%' || repeat('ab', 32) || '%'),
	'a display name of 64 hex characters does not stay in clear after erasure');
SELECT ok(userlife.verify_audit('chain', 'hexname'), '... and the chain still verifies');

CREATE TEMP TABLE jane AS
SELECT (userlife.register_user('chain', 'jane-1', 'Jane Doe', 'jane.doe@example.com',
	'{"birth_date": "1990-04-01", "city": "Lyon"}', '{country:DE,diagnosis:diabetes}')).user_id;
SELECT userlife.update_user('chain', 'jane-1', email => 'jane.d@example.org',
	metadata => '{"phone": "+33 6 12 34 56 78"}');
SELECT userlife.set_status('chain', 'jane-1', 'suspended', 'checking');
SELECT userlife.mark_verified('chain', 'jane-1', '{"document": "X1234567"}');
SELECT ok((SELECT count(*) FROM userlife.audit_keys k JOIN jane USING (user_id)) = 1,
	'a user registered now has a digest key');
SELECT ok(userlife.verify_audit('chain', 'jane-1'), 'Jane''s chain verifies before erasure');
SELECT userlife.erase_user('chain', 'jane-1', 'right to erasure');
SELECT ok(userlife.verify_audit('chain', 'jane-1'), 'Jane''s chain verifies after erasure');
SELECT ok((SELECT count(*) FROM userlife.audit_keys k JOIN jane USING (user_id)) = 0,
	'erasure destroys the digest key');

-- every former value of Jane, as a guesser would try it
CREATE TEMP TABLE guesses(v jsonb);
INSERT INTO guesses VALUES ('"Jane Doe"'), ('"jane.doe@example.com"'), ('"jane.d@example.org"'),
	('"jane-1"'), ('{"birth_date": "1990-04-01", "city": "Lyon"}'),
	('{"birth_date": "1990-04-01", "city": "Lyon", "phone": "+33 6 12 34 56 78"}'),
	('{"document": "X1234567"}'), ('"1990-04-01"'), ('"X1234567"'), ('"diagnosis:diabetes"'),
	('["country:DE", "diagnosis:diabetes"]');
CREATE TEMP TABLE jane_audit AS
SELECT a.* FROM userlife.audit a JOIN jane USING (user_id);
SELECT ok((SELECT count(*) FROM jane_audit) >= 5, 'Jane has her audit rows still');
SELECT is((SELECT count(*) FROM jane_audit a, guesses g
            WHERE a.old_values::text LIKE '%' || trim(both '"' from g.v::text) || '%'
               OR a.new_values::text LIKE '%' || trim(both '"' from g.v::text) || '%'
               OR a.external_id = 'jane-1'), 0::bigint,
	'no former value of Jane is left in clear in her audit rows');
SELECT is((SELECT count(*) FROM jane_audit a, guesses g,
                 LATERAL (SELECT value FROM jsonb_each(a.old_values) UNION ALL
                          SELECT value FROM jsonb_each(a.new_values)) d(value)
            WHERE d.value = to_jsonb(encode(sha256(convert_to(g.v::text, 'UTF8')), 'hex'))
               OR d.value = to_jsonb(encode(sha256(convert_to(g.v #>> '{}', 'UTF8')), 'hex'))),
	0::bigint, 'no stored digest matches the SHA-256 of any guess');
SELECT is((SELECT count(*) FROM jane_audit a
            WHERE a.redacted_fields <> '{}'), (SELECT count(*) FROM jane_audit a
            WHERE a.changed_fields && ARRAY['display_name', 'email', 'external_id', 'metadata', 'verified_attributes']),
	'every row that changed a personal field lists it as redacted');
SELECT is((SELECT count(*) FROM jane_audit WHERE hash_version = 2), (SELECT count(*) FROM jane_audit),
	'the erased chain is hash version 2 throughout');
SELECT is((SELECT count(*) FROM userlife.events e JOIN jane USING (user_id)
            WHERE e.payload->>'external_id' IS NOT NULL), 0::bigint, 'Jane''s events no longer name her');

-- ---------------------------------------------------------------------
-- Tampering: every edit, removal or reordering is noticed
-- ---------------------------------------------------------------------
SELECT userlife.register_user('chain', 'live-1', 'Live One', 'live1@example.com');
SELECT userlife.update_user('chain', 'live-1', display_name => 'Live Uno');
SELECT userlife.set_fraud_flag('chain', 'live-1', true, 'chargebacks');
SELECT userlife.set_status('chain', 'live-1', 'inactive', 'dormant');
SELECT ok(userlife.verify_audit('chain', 'live-1'), 'a live chain verifies');

ALTER TABLE userlife.audit DISABLE TRIGGER ALL;
CREATE TEMP TABLE live AS SELECT user_id FROM userlife.users WHERE partner = 'chain' AND external_id = 'live-1';

-- tamper(description, statement): runs the statement in a savepoint and
-- reports whether verify_audit of the given user turned false
CREATE FUNCTION pg_temp.tampered(stmt text, ext text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE r boolean;
BEGIN
	BEGIN
		EXECUTE stmt;
		r := NOT userlife.verify_audit('chain', ext);
		RAISE EXCEPTION 'undo' USING ERRCODE = 'P0001';
	EXCEPTION WHEN raise_exception THEN
		RETURN r;
	END;
END $$;

SELECT ok(pg_temp.tampered($$UPDATE userlife.audit SET external_id = 'someone-else'
	WHERE audit_id = (SELECT min(audit_id) FROM userlife.audit JOIN live USING (user_id))$$, 'live-1'),
	'live: rewriting external_id of a row is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit SET external_id = 'someone-else'
	WHERE audit_id = (SELECT max(audit_id) FROM userlife.audit JOIN live USING (user_id))$$, 'live-1'),
	'live: rewriting external_id of the newest row is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET redacted_fields = '{is_fraudulent}',
	new_values = jsonb_set(new_values, '{is_fraudulent}',
	  to_jsonb(encode(sha256(convert_to('true', 'UTF8')), 'hex')))
	WHERE a.action = 'fraud_flag' AND a.user_id = (SELECT user_id FROM live)$$, 'live-1'),
	'live: hiding the fraud flag behind its digest is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET redacted_fields = '{display_name}',
	new_values = jsonb_set(new_values, '{display_name}',
	  to_jsonb(encode(sha256(convert_to('"Live Uno"', 'UTF8')), 'hex')))
	WHERE a.action = 'update' AND a.user_id = (SELECT user_id FROM live)$$, 'live-1'),
	'live: marking a field redacted with its plain digest is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET reason = 'nothing to see'
	WHERE a.action = 'fraud_flag' AND a.user_id = (SELECT user_id FROM live)$$, 'live-1'),
	'live: a changed reason is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET hash_version = 1
	WHERE a.action = 'status' AND a.user_id = (SELECT user_id FROM live)$$, 'live-1'),
	'live: a changed hash version is noticed');
SELECT ok(pg_temp.tampered($$DELETE FROM userlife.audit
	WHERE audit_id = (SELECT max(audit_id) FROM userlife.audit JOIN live USING (user_id))$$, 'live-1'),
	'live: removing the newest row is noticed');
SELECT ok(pg_temp.tampered($$DELETE FROM userlife.audit a USING live
	WHERE a.user_id = live.user_id AND a.action <> 'register';
	UPDATE userlife.users SET audit_head = NULL WHERE external_id = 'live-1' AND partner = 'chain'$$, 'live-1'),
	'live: cutting the chain back to its registration and clearing the head is noticed');
SELECT ok(pg_temp.tampered($$WITH r AS (SELECT audit_id, row_number() OVER (ORDER BY audit_id) n
	  FROM userlife.audit JOIN live USING (user_id)),
	a2 AS (SELECT a.* FROM userlife.audit a JOIN r USING (audit_id) WHERE r.n = 2),
	a3 AS (SELECT a.* FROM userlife.audit a JOIN r USING (audit_id) WHERE r.n = 3)
	UPDATE userlife.audit a SET action = s.action, reason = s.reason, changed_fields = s.changed_fields,
	  old_values = s.old_values, new_values = s.new_values, prev_hash = s.prev_hash, row_hash = s.row_hash
	FROM (SELECT (SELECT audit_id FROM a2) AS tgt, a3.* FROM a3
	      UNION ALL SELECT (SELECT audit_id FROM a3), a2.* FROM a2) s
	WHERE a.audit_id = s.tgt$$, 'live-1'),
	'live: swapping two rows is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.users SET audit_head = NULL
	WHERE external_id = 'live-1' AND partner = 'chain';
	DELETE FROM userlife.audit
	WHERE audit_id = (SELECT max(audit_id) FROM userlife.audit JOIN live USING (user_id))$$, 'live-1'),
	'live: removing the newest row and the head on the user together is noticed');

-- an erased user
SELECT ok(pg_temp.tampered($$DELETE FROM userlife.audit a
	WHERE a.audit_id = (SELECT max(audit_id) FROM userlife.audit JOIN jane USING (user_id))$$, 'jane-1'),
	'erased: removing the last row (the erase row) is noticed');
SELECT ok(pg_temp.tampered($$DELETE FROM userlife.audit a
	WHERE a.audit_id IN (SELECT audit_id FROM userlife.audit JOIN jane USING (user_id)
	                     ORDER BY audit_id DESC LIMIT 2)$$, 'jane-1'),
	'erased: removing the last two rows is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET external_id = 'jane-1'
	WHERE a.audit_id = (SELECT min(audit_id) FROM userlife.audit JOIN jane USING (user_id))$$, 'jane-1'),
	'erased: pinning a row on an external_id is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET redacted_fields = '{}'
	WHERE a.audit_id = (SELECT min(audit_id) FROM userlife.audit JOIN jane USING (user_id))$$, 'jane-1'),
	'erased: clearing redacted_fields is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET redacted_fields = redacted_fields || '{status}'::text[]
	WHERE a.action = 'status' AND a.user_id = (SELECT user_id FROM jane)$$, 'jane-1'),
	'erased: listing a field that is not personal as redacted is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a
	SET new_values = jsonb_set(new_values, '{email}', to_jsonb(repeat('0', 64)))
	WHERE a.action = 'register' AND a.user_id = (SELECT user_id FROM jane)$$, 'jane-1'),
	'erased: replacing a digest is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.audit a SET new_values = new_values || '{"status": "active"}'
	WHERE a.action = 'status' AND a.user_id = (SELECT user_id FROM jane)$$, 'jane-1'),
	'erased: a changed value in clear is noticed');
SELECT ok(pg_temp.tampered($$UPDATE userlife.tombstones t SET audit_head = NULL
	WHERE t.user_id = (SELECT user_id FROM jane)$$, 'jane-1'),
	'erased: a tombstone without the chain head is noticed');
SELECT ok(NOT pg_temp.tampered($$SELECT 1$$, 'jane-1'), 'erased: the untouched chain still verifies');
ALTER TABLE userlife.audit ENABLE TRIGGER ALL;

-- ---------------------------------------------------------------------
-- Purge, then re-enrollment: the chain goes on over the redacted rows
-- ---------------------------------------------------------------------
CREATE TEMP TABLE again AS
SELECT (userlife.register_user('chain', 'again-1', 'Again One', 'again1@example.com')).user_id;
SELECT userlife.delete_user('chain', 'again-1', 'closing');
SELECT userlife.allow_reenroll('chain', 'again-1', true, 'came back');
UPDATE userlife.users SET purge_after = now() - interval '1 day' WHERE partner = 'chain' AND external_id = 'again-1';
SELECT ok(userlife.purge_expired(100) >= 1, 'the deleted user is purged');
SELECT ok(userlife.verify_audit('chain', 'again-1'), 'the purged user''s chain verifies by its tombstone');
SELECT is(userlife.purge_expired(100), 0::bigint, 'nobody else is due');
SELECT is((SELECT count(*) FROM userlife.user_history('chain', 'again-1') WHERE action = 'purge'), 1::bigint,
	'one purge row');
ALTER TABLE userlife.audit DISABLE TRIGGER ALL;
SELECT ok(pg_temp.tampered($$DELETE FROM userlife.audit a
	WHERE a.audit_id = (SELECT max(audit_id) FROM userlife.audit JOIN again USING (user_id))$$, 'again-1'),
	'purged: removing the purge row is noticed');
ALTER TABLE userlife.audit ENABLE TRIGGER ALL;
SELECT userlife.allow_reenroll('chain', 'again-1', true, 'came back after the purge');
SELECT is((userlife.register_user('chain', 'again-1', 'Again Back', 'again.back@example.com')).enrollment_count, 2,
	're-enrolled after the purge');
SELECT userlife.update_user('chain', 'again-1', display_name => 'Again Renamed');
SELECT ok(userlife.verify_audit('chain', 'again-1'), 'the chain goes on over the redacted rows and verifies');
SELECT is((SELECT count(*) FROM userlife.user_history('chain', 'again-1') WHERE redacted_fields <> '{}'),
	1::bigint, 'the registration before the purge stays redacted');

-- replica mode switches the users guard off, not the legal hold
SELECT userlife.register_user('chain', 'held-1', 'Held One', 'held1@example.com');
SELECT userlife.set_legal_hold('chain', 'held-1', true, 'court order');
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$DELETE FROM userlife.users WHERE partner = 'chain' AND external_id = 'held-1'$$, 'UL004',
	NULL, 'a user under legal hold cannot be deleted in replica mode either');
RESET session_replication_role;

SELECT * FROM finish();
ROLLBACK;
