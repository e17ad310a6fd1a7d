-- Soft deletion, restore, and re-enrollment of an existing external_id.
\set SHOW_CONTEXT never
SELECT partner, retention FROM userlife.set_retention('acme', '30 days');
SELECT external_id FROM userlife.register_user('acme', 'd-1', 'Dee', 'dee@example.com');
SELECT external_id FROM userlife.register_user('acme', 'd-2');

SELECT status, status_reason, deleted_at = now() AS deleted_now,
       purge_after = now() + interval '30 days' AS purge_after_retention, version
  FROM userlife.delete_user('acme', 'd-1', 'user asked');
-- deleting again is a no-op
SELECT status, version FROM userlife.delete_user('acme', 'd-1');
-- soft-deleted users are still readable
SELECT status FROM userlife.get_user('acme', 'd-1');
SELECT userlife.delete_user('acme', 'nobody');
\echo :LAST_ERROR_SQLSTATE
-- deleted is left only through restore_user or re-enrollment
SELECT userlife.set_status('acme', 'd-1', 'active', 'x');
\echo :LAST_ERROR_SQLSTATE

-- restore
SELECT status, deleted_at IS NULL AS undeleted, purge_after IS NULL AS no_purge, version
  FROM userlife.restore_user('acme', 'd-1', 'mistake');
SELECT userlife.restore_user('acme', 'd-1');
\echo :LAST_ERROR_SQLSTATE
SELECT status FROM userlife.delete_user('acme', 'd-1');
UPDATE userlife.users SET purge_after = now() - interval '1 second' WHERE external_id = 'd-1';
SELECT userlife.restore_user('acme', 'd-1');
\echo :LAST_ERROR_SQLSTATE
SELECT action, reason, changed_fields FROM userlife.audit WHERE external_id = 'd-1' ORDER BY audit_id;

-- many at once: one row per input, in input order
SELECT left(external_id, 10) AS external_id, result FROM userlife.delete_users('acme', ARRAY['d-2', 'nobody', NULL, 'd-1', 'd-2', '', repeat('x', 300)], 'cleanup');
SELECT * FROM userlife.delete_users('acme', ARRAY[]::text[]);
SELECT userlife.delete_users('acme', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.delete_users('nobody', ARRAY['x']);
\echo :LAST_ERROR_SQLSTATE

-- re-enrollment
SELECT external_id FROM userlife.register_user('acme', 'r-1', 'Rita', 'rita@example.com', '{"k": 1}', '{old}');
SELECT is_fraudulent FROM userlife.set_fraud_flag('acme', 'r-1', true, 'suspicious');
SELECT verified_at IS NOT NULL AS verified FROM userlife.mark_verified('acme', 'r-1', '{"doc": "id"}');
SELECT status FROM userlife.set_status('acme', 'r-1', 'blocked', 'fraud confirmed');
SELECT userlife.register_user('acme', 'r-1', 'Rita Again');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.allow_reenroll('acme', 'r-1', reason => 'cleared by compliance');
SELECT allow_new_enroll FROM userlife.get_user('acme', 'r-1');
SELECT display_name, email, metadata, tags, status, enrollment_count, allow_new_enroll,
       is_fraudulent, verified_at IS NULL AS unverified, verified_attributes
  FROM userlife.register_user('acme', 'r-1', 'Rita Again', 'rita2@example.com');
-- the permission was one-shot
SELECT userlife.register_user('acme', 'r-1');
\echo :LAST_ERROR_SQLSTATE
-- withdrawing a permission
SELECT userlife.allow_reenroll('acme', 'r-1');
SELECT userlife.allow_reenroll('acme', 'r-1', false);
SELECT allow_new_enroll FROM userlife.get_user('acme', 'r-1');
-- a deleted user comes back through re-enrollment too
SELECT status FROM userlife.delete_user('acme', 'r-1');
SELECT userlife.allow_reenroll('acme', 'r-1');
SELECT status, enrollment_count, deleted_at IS NULL AS undeleted FROM userlife.register_user('acme', 'r-1');
SELECT action, reason, changed_fields FROM userlife.audit WHERE external_id = 'r-1' ORDER BY audit_id;
SELECT userlife.allow_reenroll('acme', 'nobody');
\echo :LAST_ERROR_SQLSTATE
