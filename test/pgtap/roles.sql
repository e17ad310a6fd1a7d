-- Roles and tenancy (SPEC §3): every cell of the permission matrix, for
-- login roles that are members of each group role; partner bindings and
-- row-level security isolate partners, through functions and direct
-- SELECTs alike; audit records the calling role.
BEGIN;

-- fixtures, as the superuser
SELECT userlife.create_partner('mx') IS NOT NULL AS mx \gset
SELECT userlife.create_partner('other') IS NOT NULL AS other \gset
SELECT count(userlife.register_user('mx', 'mx-' || i, email => 'mx' || i || '@example.com')) AS n FROM generate_series(1, 3) i \gset
SELECT count(userlife.register_user('other', 'o-1', 'Other One')) AS n \gset
SELECT count(userlife.record_job('other', 'o-1', 'kyc')) AS n \gset
SELECT length(userlife.issue_api_key('mx')) AS n \gset
CREATE ROLE r_reader LOGIN IN ROLE userlife_reader;
CREATE ROLE r_developer LOGIN IN ROLE userlife_developer;
CREATE ROLE r_compliance LOGIN IN ROLE userlife_compliance;
CREATE ROLE r_admin LOGIN IN ROLE userlife_admin;
CREATE ROLE r_owner LOGIN IN ROLE userlife_owner;
CREATE ROLE r_none LOGIN;
SELECT count(userlife.bind_partner(r::regrole, 'mx')) AS n
  FROM unnest(ARRAY['r_reader', 'r_developer', 'r_compliance', 'r_admin', 'r_none']) r \gset

-- outcome(role, sql): the SQLSTATE of running sql as role, or 'ok'; undone either way
CREATE FUNCTION pg_temp.outcome(r text, sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	state text;
BEGIN
	BEGIN
		EXECUTE format('SET LOCAL ROLE %I', r);
		EXECUTE sql;
		RAISE EXCEPTION USING ERRCODE = 'UL999', MESSAGE = 'undo';
	EXCEPTION WHEN OTHERS THEN
		state := CASE SQLSTATE WHEN 'UL999' THEN 'ok' ELSE SQLSTATE END;
	END;
	RETURN state;
END
$$;

CREATE TEMP TABLE matrix (op text, sql text, allowed text[]);
INSERT INTO matrix VALUES
 ('get_user', $$SELECT userlife.get_user('mx', 'mx-1')$$, '{reader,developer,compliance,admin,owner}'),
 ('list_users', $$SELECT userlife.list_users('mx')$$, '{reader,developer,compliance,admin,owner}'),
 ('count_users', $$SELECT userlife.count_users('mx')$$, '{reader,developer,compliance,admin,owner}'),
 ('users_page', $$SELECT userlife.users_page('mx')$$, '{reader,developer,compliance,admin,owner}'),
 ('SELECT users', $$SELECT * FROM userlife.users$$, '{reader,developer,compliance,admin,owner}'),
 ('SELECT status_counts', $$SELECT * FROM userlife.status_counts$$, '{reader,developer,compliance,admin,owner}'),
 ('register_user', $$SELECT userlife.register_user('mx', 'new-1')$$, '{developer,admin,owner}'),
 ('update_user', $$SELECT userlife.update_user('mx', 'mx-1', display_name => 'x')$$, '{developer,admin,owner}'),
 ('mark_verified', $$SELECT userlife.mark_verified('mx', 'mx-1', '{}')$$, '{developer,admin,owner}'),
 ('record_job', $$SELECT userlife.record_job('mx', 'mx-1', 'kyc')$$, '{developer,admin,owner}'),
 ('set_status', $$SELECT userlife.set_status('mx', 'mx-1', 'inactive')$$, '{compliance,admin,owner}'),
 ('enable_user', $$SELECT userlife.enable_user('mx', 'mx-1')$$, '{compliance,admin,owner}'),
 ('disable_user', $$SELECT userlife.disable_user('mx', 'mx-1')$$, '{compliance,admin,owner}'),
 ('set_fraud_flag', $$SELECT userlife.set_fraud_flag('mx', 'mx-1', true)$$, '{compliance,admin,owner}'),
 ('allow_reenroll', $$SELECT userlife.allow_reenroll('mx', 'mx-1')$$, '{compliance,admin,owner}'),
 ('delete_user', $$SELECT userlife.delete_user('mx', 'mx-1')$$, '{compliance,admin,owner}'),
 ('delete_users', $$SELECT userlife.delete_users('mx', '{mx-1}')$$, '{compliance,admin,owner}'),
 ('restore_user', $$SELECT userlife.delete_user('mx', 'mx-2'); SELECT userlife.restore_user('mx', 'mx-2')$$, '{compliance,admin,owner}'),
 ('erase_user', $$SELECT userlife.erase_user('mx', 'mx-1', 'gdpr')$$, '{compliance,admin,owner}'),
 ('set_legal_hold', $$SELECT userlife.set_legal_hold('mx', 'mx-1', true, 'case')$$, '{compliance,admin,owner}'),
 ('user_history', $$SELECT userlife.user_history('mx', 'mx-1')$$, '{compliance,admin,owner}'),
 ('verify_audit', $$SELECT userlife.verify_audit('mx', 'mx-1')$$, '{compliance,admin,owner}'),
 ('SELECT audit', $$SELECT * FROM userlife.audit$$, '{compliance,admin,owner}'),
 ('SELECT due_for_purge', $$SELECT * FROM userlife.due_for_purge$$, '{compliance,admin,owner}'),
 ('enrollee_request', format($$SELECT userlife.enrollee_request(%L)$$,
     jsonb_build_object('partner_id', 'mx', 'user_id', 'mx-3', 'environment', 'production', 'active', false)
     || userlife.generate_signature('mx')), '{developer,compliance,admin,owner}'),
 ('verify_signature', $$SELECT userlife.verify_signature('mx', 'AAAA', '2026-01-01T00:00:00Z')$$, '{developer,compliance,admin,owner}'),
 ('claim_events', $$SELECT userlife.claim_events()$$, '{developer,admin,owner}'),
 ('ack_events', $$SELECT userlife.ack_events('{1}')$$, '{developer,admin,owner}'),
 ('SELECT events', $$SELECT * FROM userlife.events$$, '{developer,admin,owner}'),
 ('create_partner', $$SELECT userlife.create_partner('new-partner')$$, '{owner}'),
 ('set_retention', $$SELECT userlife.set_retention('mx', '9 days')$$, '{owner}'),
 ('bind_partner', $$SELECT userlife.bind_partner('r_none', 'other')$$, '{owner}'),
 ('unbind_partner', $$SELECT userlife.unbind_partner('r_none', 'mx')$$, '{owner}'),
 ('issue_api_key', $$SELECT userlife.issue_api_key('mx')$$, '{owner}'),
 ('generate_signature', $$SELECT userlife.generate_signature('mx')$$, '{owner}'),
 ('purge_expired', $$SELECT userlife.purge_expired()$$, '{owner}'),
 ('run_maintenance', $$SELECT userlife.run_maintenance()$$, '{owner}'),
 ('edit transitions', $$UPDATE userlife.transitions SET requires_reason = true WHERE from_status = 'active' AND to_status = 'inactive'$$, '{owner}'),
 ('INSERT users', $$INSERT INTO userlife.users (partner, external_id) VALUES ('mx', 'sneaky')$$, '{}'),
 ('UPDATE users', $$UPDATE userlife.users SET display_name = 'x'$$, '{}'),
 ('DELETE users', $$DELETE FROM userlife.users$$, '{}'),
 ('INSERT audit', $$INSERT INTO userlife.audit (at, partner, user_id, action, db_role, changed_fields, old_values, new_values, txid, row_hash) VALUES (now(), 'mx', gen_random_uuid(), 'update', 'x', '{}', '{}', '{}', '1', '\x00')$$, '{}'),
 ('UPDATE events', $$UPDATE userlife.events SET delivered_at = now()$$, '{}'),
 ('DELETE jobs', $$DELETE FROM userlife.jobs$$, '{}'),
 ('INSERT partners', $$INSERT INTO userlife.partners (partner) VALUES ('sneaky')$$, '{}'),
 ('INSERT partner_bindings', $$INSERT INTO userlife.partner_bindings (role, partner) VALUES ('r_none', 'other')$$, '{}'),
 ('SELECT partner_keys', $$SELECT * FROM userlife.partner_keys$$, '{}'),
 ('UPDATE tombstones', $$UPDATE userlife.tombstones SET allow_new_enroll = true$$, '{}');

SELECT plan((SELECT count(*)::int * 6 FROM matrix) + 17);

-- every cell: allowed ones do not fail with 42501, refused ones do
SELECT ok(CASE WHEN g = ANY (m.allowed) THEN pg_temp.outcome('r_' || g, m.sql) <> '42501'
               ELSE pg_temp.outcome('r_' || g, m.sql) = '42501' END,
          format('%s: %s for %s', m.op, CASE WHEN g = ANY (m.allowed) THEN 'allowed' ELSE 'refused' END, g))
  FROM matrix m, unnest(ARRAY['reader', 'developer', 'compliance', 'admin', 'owner', 'none']) g
 ORDER BY m.op, g;

-- tenancy: bound to mx only, a role learns nothing about other
SELECT is(pg_temp.outcome('r_compliance', $$SELECT userlife.get_user('other', 'o-1')$$), '42501',
          'an unbound partner is 42501 ...');
SELECT is(pg_temp.outcome('r_compliance', $$SELECT userlife.get_user('other', 'no-such-user')$$), '42501',
          '... whether or not the user exists');
SELECT is(pg_temp.outcome('r_compliance', $$SELECT userlife.get_user('no-such-partner', 'x')$$), '42501',
          '... or the partner exists');
SELECT is(pg_temp.outcome('r_compliance', $$SELECT userlife.set_status('other', 'o-1', 'inactive')$$), '42501',
          'an unbound partner cannot be changed');
SELECT is(pg_temp.outcome('r_developer', $$SELECT userlife.register_user('other', 'x')$$), '42501',
          'nor registered into');
SELECT is(pg_temp.outcome('r_owner', $$SELECT userlife.get_user('other', 'o-1')$$), 'ok',
          'userlife_owner members act on every partner');

SET LOCAL ROLE r_admin;
CREATE TEMP TABLE seen AS
SELECT 'users' AS t, array_agg(DISTINCT partner) AS partners FROM userlife.users
UNION ALL SELECT 'audit', array_agg(DISTINCT partner) FROM userlife.audit
UNION ALL SELECT 'events', array_agg(DISTINCT partner) FROM userlife.events
UNION ALL SELECT 'jobs', array_agg(DISTINCT partner) FROM userlife.jobs
UNION ALL SELECT 'status_counts', array_agg(DISTINCT partner) FROM userlife.status_counts
UNION ALL SELECT 'claim_events', array_agg(DISTINCT partner) FROM userlife.claim_events(1000);
RESET ROLE;
SELECT is((SELECT partners FROM seen WHERE t = 'users'), '{mx}', 'row-level security: users of bound partners only');
SELECT is((SELECT partners FROM seen WHERE t = 'audit'), '{mx}', 'audit of bound partners only');
SELECT is((SELECT partners FROM seen WHERE t = 'events'), '{mx}', 'events of bound partners only');
SELECT is((SELECT partners FROM seen WHERE t = 'jobs'), NULL, 'jobs of bound partners only');
SELECT is((SELECT partners FROM seen WHERE t = 'status_counts'), '{mx}', 'status_counts of bound partners only');
SELECT is((SELECT partners FROM seen WHERE t = 'claim_events'), '{mx}', 'claim_events hands out bound partners'' events only');
SELECT ok((SELECT count(*) > 0 FROM userlife.jobs WHERE partner = 'other'), 'while the superuser sees other''s job');

-- audit names the role that called, though the functions write as the owner
SET LOCAL ROLE r_compliance;
SELECT status FROM userlife.set_status('mx', 'mx-3', 'suspended', 'check') \gset
RESET ROLE;
SELECT is((SELECT db_role FROM userlife.audit WHERE partner = 'mx' AND external_id = 'mx-3' ORDER BY audit_id DESC LIMIT 1),
          'r_compliance', 'db_role is the calling role');
SELECT is((SELECT tableowner::text FROM pg_tables WHERE schemaname = 'userlife' AND tablename = 'users'),
          current_user::text, 'while the table belongs to the extension owner');

-- membership through another role counts, binding included
CREATE ROLE r_team IN ROLE userlife_compliance;
CREATE ROLE r_member LOGIN IN ROLE r_team;
SELECT userlife.bind_partner('r_team', 'other') IS NULL AS bound \gset
SELECT is(pg_temp.outcome('r_member', $$SELECT userlife.set_status('other', 'o-1', 'inactive')$$), 'ok',
          'a member of a bound group role acts on its partner');
SELECT is(pg_temp.outcome('r_member', $$SELECT userlife.get_user('mx', 'mx-1')$$), '42501',
          'and not on others');

SELECT * FROM finish();
ROLLBACK;
