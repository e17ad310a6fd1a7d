-- Audit (SPEC §7) and retention (SPEC §5.6): append-only for every role,
-- tamper evidence, redaction that keeps the chain verifiable, purge,
-- erasure, legal hold, tombstones, maintenance, and event claiming.
BEGIN;
SELECT plan(64);

SELECT lives_ok($$SELECT userlife.create_partner('aud', retention => '1 day')$$, 'partner');
SELECT lives_ok($$SELECT userlife.register_user('aud', 'zq-77-unique', 'Zebulon Quux', 'zebulon@quux.example',
                                                '{"passport": "passport-998877"}')$$, 'a user with personal data');
SELECT lives_ok($$SELECT userlife.set_status('aud', 'zq-77-unique', 'suspended', 'review')$$, 'change 1');
SELECT lives_ok($$SELECT userlife.update_user('aud', 'zq-77-unique', display_name => 'Zebulon Q. Quux')$$, 'change 2');
SELECT lives_ok($$SELECT userlife.mark_verified('aud', 'zq-77-unique', '{"name": "Zebulon Quux"}')$$, 'change 3');
SELECT lives_ok($$SELECT userlife.enable_user('aud', 'zq-77-unique')$$, 'change 4');
SELECT ok(userlife.verify_audit('aud', 'zq-77-unique'), 'the chain verifies');

-- append-only, superuser included, session_replication_role included
SELECT throws_ok($$UPDATE userlife.audit SET reason = 'x'$$, '42501', NULL, 'UPDATE of audit refused');
SELECT throws_ok($$DELETE FROM userlife.audit$$, '42501', NULL, 'DELETE of audit refused');
SELECT throws_ok($$DELETE FROM userlife.audit WHERE false$$, '42501', NULL, 'even a DELETE that matches nothing');
SELECT throws_ok($$TRUNCATE userlife.audit$$, '42501', NULL, 'TRUNCATE of audit refused');
SET LOCAL session_replication_role = replica;
SELECT throws_ok($$UPDATE userlife.audit SET reason = 'x'$$, '42501', NULL, 'refused in replica mode too');
RESET session_replication_role;

-- tampering with the guards switched off by a superuser is detected
CREATE FUNCTION pg_temp.tampered(sql text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	intact boolean;
BEGIN
	ALTER TABLE userlife.audit DISABLE TRIGGER ALL;
	EXECUTE sql;
	ALTER TABLE userlife.audit ENABLE TRIGGER ALL;
	intact := userlife.verify_audit('aud', 'zq-77-unique');
	RAISE EXCEPTION 'undo' USING ERRCODE = 'P0001', DETAIL = intact::text;
EXCEPTION WHEN raise_exception THEN
	GET STACKED DIAGNOSTICS sql = PG_EXCEPTION_DETAIL;
	RETURN NOT sql::boolean;
END
$$;
CREATE FUNCTION pg_temp.nth(n int) RETURNS bigint LANGUAGE sql AS $$
	SELECT audit_id FROM userlife.audit WHERE partner = 'aud' AND external_id = 'zq-77-unique'
	 ORDER BY audit_id OFFSET n - 1 LIMIT 1
$$;
SELECT ok(pg_temp.tampered(format($$UPDATE userlife.audit SET reason = 'routine' WHERE audit_id = %s$$, pg_temp.nth(2))),
          'editing a reason is detected');
SELECT ok(pg_temp.tampered(format($$UPDATE userlife.audit SET new_values = '{"display_name": "Someone Else"}' WHERE audit_id = %s$$, pg_temp.nth(3))),
          'editing a value is detected');
SELECT ok(pg_temp.tampered(format($$UPDATE userlife.audit SET at = at - interval '1 day' WHERE audit_id = %s$$, pg_temp.nth(2))),
          'editing a time is detected');
SELECT ok(pg_temp.tampered(format($$UPDATE userlife.audit SET db_role = 'nobody', actor = 'x' WHERE audit_id = %s$$, pg_temp.nth(4))),
          'editing who did it is detected');
SELECT ok(pg_temp.tampered(format($$UPDATE userlife.audit SET changed_fields = '{}' WHERE audit_id = %s$$, pg_temp.nth(3))),
          'editing changed_fields is detected');
SELECT ok(pg_temp.tampered(format($$DELETE FROM userlife.audit WHERE audit_id = %s$$, pg_temp.nth(3))),
          'deleting a middle row is detected');
SELECT ok(pg_temp.tampered(format($$DELETE FROM userlife.audit WHERE audit_id = %s$$, pg_temp.nth(5))),
          'deleting the newest row is detected');
SELECT ok(pg_temp.tampered(format($$DELETE FROM userlife.audit WHERE audit_id = %s$$, pg_temp.nth(1))),
          'deleting the first row is detected');
SELECT ok(pg_temp.tampered(format($$
	UPDATE userlife.audit a SET (at, action, db_role, actor, reason, changed_fields, old_values, new_values,
	                             txid, prev_hash, row_hash)
	  = (b.at, b.action, b.db_role, b.actor, b.reason, b.changed_fields, b.old_values, b.new_values,
	     b.txid, b.prev_hash, b.row_hash)
	  FROM userlife.audit b
	 WHERE (a.audit_id, b.audit_id) IN ((%1$s, %2$s), (%2$s, %1$s))$$, pg_temp.nth(2), pg_temp.nth(3))),
          'swapping two rows (reordering) is detected');
SELECT ok(userlife.verify_audit('aud', 'zq-77-unique'), 'untouched again after the tamper tests');

-- legal hold blocks purge and erasure
SELECT lives_ok($$SELECT userlife.delete_user('aud', 'zq-77-unique', 'user asked')$$, 'soft delete');
SELECT lives_ok($$UPDATE userlife.users SET purge_after = now() - interval '1 minute'
                   WHERE partner = 'aud' AND external_id = 'zq-77-unique'$$, 'retention ran out');
SELECT is((SELECT count(*) FROM userlife.due_for_purge WHERE partner = 'aud'), 1::bigint, 'due_for_purge lists it');
SELECT is((SELECT legal_hold FROM userlife.set_legal_hold('aud', 'zq-77-unique', true, 'litigation')), true,
          'legal hold placed');
SELECT is(userlife.purge_expired(), 0::bigint, 'purge_expired skips a held user');
SELECT throws_ok($$SELECT userlife.erase_user('aud', 'zq-77-unique', 'gdpr')$$, 'UL004', NULL, 'erasure of a held user: UL004');
SELECT throws_ok($$DELETE FROM userlife.users WHERE partner = 'aud' AND external_id = 'zq-77-unique'$$, 'UL004', NULL,
                 'a direct DELETE of a held user: UL004');
SELECT throws_ok($$SELECT userlife.set_legal_hold('aud', 'zq-77-unique', false, NULL)$$, '22004', NULL,
                 'releasing needs a reason');
SELECT lives_ok($$SELECT userlife.set_legal_hold('aud', 'zq-77-unique', false, 'settled')$$, 'hold released');
SELECT is(userlife.purge_expired(), 1::bigint, 'then purge proceeds');

-- what remains: a tombstone, a redacted audit that still verifies, nothing personal anywhere
SELECT throws_ok($$SELECT userlife.get_user('aud', 'zq-77-unique')$$, 'P0002', NULL, 'the user is gone');
SELECT is((SELECT count(*) FROM userlife.tombstones WHERE partner = 'aud'
             AND external_id_digest = sha256(convert_to('zq-77-unique', 'UTF8'))), 1::bigint,
          'a tombstone with the digest of the external_id');
SELECT results_eq($$SELECT action FROM userlife.user_history('aud', 'zq-77-unique')$$,
                  ARRAY['register', 'status', 'update', 'verify', 'status', 'delete', 'update',
                        'legal_hold', 'legal_hold', 'purge'],
                  'the history is kept, ending with one purge row');
SELECT ok(userlife.verify_audit('aud', 'zq-77-unique'), 'the redacted chain still verifies');
CREATE FUNCTION pg_temp.tables_mentioning(needle text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
	t text;
	hits text[] := '{}';
	found boolean;
BEGIN
	FOR t IN SELECT c.relname FROM pg_class c
	          WHERE c.relnamespace = 'userlife'::regnamespace AND c.relkind = 'r' ORDER BY 1 LOOP
		EXECUTE format('SELECT EXISTS (SELECT 1 FROM userlife.%I x WHERE x::text ILIKE %L)', t, '%' || needle || '%')
		   INTO found;
		IF found THEN hits := hits || t; END IF;
	END LOOP;
	RETURN hits;
END
$$;
SELECT is(pg_temp.tables_mentioning('Zebulon'), '{}'::text[], 'no table holds the display name');
SELECT is(pg_temp.tables_mentioning('quux.example'), '{}'::text[], 'no table holds the e-mail');
SELECT is(pg_temp.tables_mentioning('zq-77-unique'), '{}'::text[], 'no table holds the external_id');
SELECT is(pg_temp.tables_mentioning('998877'), '{}'::text[], 'no table holds the metadata');

-- erasure of a live user, and re-enrollment of a tombstoned id
SELECT lives_ok($$SELECT userlife.register_user('aud', 'er-1', 'Erin Erase', 'erin@erase.example')$$, 'another user');
SELECT throws_ok($$SELECT userlife.erase_user('aud', 'er-1', NULL)$$, '22004', NULL, 'erasure needs a reason');
SELECT ok(userlife.erase_user('aud', 'er-1', 'right to erasure'), 'erase_user');
SELECT is(pg_temp.tables_mentioning('Erin Erase'), '{}'::text[], 'erased at once');
SELECT throws_ok($$SELECT userlife.register_user('aud', 'er-1')$$, '23505', NULL,
                 'a tombstoned external_id needs allow_reenroll');
SELECT lives_ok($$SELECT userlife.allow_reenroll('aud', 'er-1')$$, 'allow_reenroll clears the tombstone');
SELECT is((SELECT enrollment_count FROM userlife.register_user('aud', 'er-1', 'Erin Again')), 2,
          're-enrolled with the next enrollment count');
SELECT ok(userlife.verify_audit('aud', 'er-1'), 'its chain continues across the purge');

-- rows go straight into audit and events only while the tables are as
-- installed: an INSERT trigger or a CHECK constraint a DBA adds still runs
CREATE TABLE public.ul_audit_copies (audit_id bigint, action text);
CREATE FUNCTION public.ul_copy_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.ul_audit_copies VALUES (NEW.audit_id, NEW.action);
	RETURN NEW;
END $$;
CREATE TRIGGER ul_copy_audit AFTER INSERT ON userlife.audit
	FOR EACH ROW EXECUTE FUNCTION public.ul_copy_audit();
SELECT lives_ok($$SELECT userlife.register_user('aud', 'dba-1', 'Dee')$$, 'registration with a DBA trigger on audit');
SELECT lives_ok($$SELECT userlife.set_status('aud', 'dba-1', 'suspended', 'review')$$, 'a change with a DBA trigger on audit');
SELECT results_eq($$SELECT c.audit_id, c.action FROM public.ul_audit_copies c ORDER BY 1$$,
                  $$SELECT a.audit_id, a.action FROM userlife.audit a JOIN userlife.users u USING (user_id)
                     WHERE u.partner = 'aud' AND u.external_id = 'dba-1' ORDER BY 1$$,
                  'the DBA trigger saw every audit row');
ALTER TABLE userlife.audit ADD CONSTRAINT ul_no_forbidden_reason
	CHECK (reason IS DISTINCT FROM 'forbidden reason') NOT VALID;
SELECT throws_ok($$SELECT userlife.set_status('aud', 'dba-1', 'blocked', 'forbidden reason')$$, '23514', NULL,
                 'a DBA CHECK constraint on audit is enforced');
SELECT is((SELECT status FROM userlife.get_user('aud', 'dba-1')), 'suspended'::userlife.user_status,
          'and the refused change did not happen');
DROP TRIGGER ul_copy_audit ON userlife.audit;
ALTER TABLE userlife.audit DROP CONSTRAINT ul_no_forbidden_reason;
SELECT lives_ok($$SELECT userlife.set_status('aud', 'dba-1', 'blocked', 'forbidden reason')$$,
                'without them, the change goes through');
SELECT is((SELECT count(*) FROM public.ul_audit_copies), 2::bigint, 'the dropped trigger no longer runs');
SELECT ok(userlife.verify_audit('aud', 'dba-1')
          AND (SELECT count(*) FROM userlife.audit a JOIN userlife.events e USING (audit_id)
                 JOIN userlife.users u ON u.user_id = a.user_id
                WHERE u.partner = 'aud' AND u.external_id = 'dba-1') = 3,
          'three audit rows, each with its event, one chain across both ways of writing');

-- the chain head of a user whose row does not carry it yet is read from
-- audit_user_idx, or with a query when that index is gone; both continue it
SELECT lives_ok($$SELECT userlife.register_user('aud', 'dba-2', 'Dot')$$, 'a user registered');
DROP INDEX userlife.audit_user_idx;
SELECT lives_ok($$SELECT userlife.set_status('aud', 'dba-2', 'suspended', 'review')$$,
                'its first change, without audit_user_idx');
SELECT is((SELECT count(*) FROM userlife.audit a JOIN userlife.users u USING (user_id)
            WHERE u.partner = 'aud' AND u.external_id = 'dba-2' AND a.prev_hash IS NOT NULL), 1::bigint,
          'the change points back at the registration');
SELECT ok(userlife.verify_audit('aud', 'dba-2'), 'and the chain verifies');

-- userlife.purge_rate_limit paces a purge
SELECT lives_ok($$SELECT userlife.delete_user('aud', r.external_id)
                    FROM generate_series(1, 10) i, LATERAL userlife.register_user('aud', 'pace-' || i) r$$,
                'ten users deleted');
UPDATE userlife.users SET purge_after = now() - interval '1 minute' WHERE partner = 'aud' AND external_id LIKE 'pace-%';
SET userlife.purge_rate_limit = 40;
CREATE TEMP TABLE pace_clock AS SELECT clock_timestamp() AS started;
SELECT is(userlife.purge_expired(10), 10::bigint, 'at 40 users/s a purge of 10 completes');
SELECT cmp_ok(extract(epoch FROM clock_timestamp() - (SELECT started FROM pace_clock))::numeric, '>=', 0.24,
              'and lasts at least the 10/40 s its pace asks for');
RESET userlife.purge_rate_limit;
SELECT ok(userlife.verify_audit('aud', 'pace-1'), 'a paced purge leaves the same verifiable chain');

SELECT * FROM finish();
ROLLBACK;
