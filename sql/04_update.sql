-- Profile updates (update_user: merge-patch metadata, optimistic
-- concurrency, e-mail uniqueness) and verification (mark_verified).
\set SHOW_CONTEXT never
SELECT external_id, version FROM userlife.register_user('acme', 'p-1', 'Pat', 'pat@example.com',
       '{"a": 1, "nested": {"x": 1, "y": 2}, "list": [1, 2]}', '{one}');
SELECT external_id FROM userlife.register_user('acme', 'p-2', 'Other', 'other@example.com');

SELECT display_name, email, metadata, tags, version
  FROM userlife.update_user('acme', 'p-1', display_name => 'Patricia');
-- RFC 7396: null removes, objects merge, arrays and scalars replace
SELECT metadata, version FROM userlife.update_user('acme', 'p-1',
       metadata => '{"a": null, "nested": {"y": null, "z": 3}, "list": [3], "new": {"k": null, "v": true}}');
SELECT metadata, version FROM userlife.update_user('acme', 'p-1', metadata => '{}');
SELECT tags, version FROM userlife.update_user('acme', 'p-1', tags => '{two,three}');
SELECT email, version FROM userlife.update_user('acme', 'p-1', email => 'Pat@Example.com');
SELECT action, changed_fields, old_values, new_values FROM userlife.audit
 WHERE external_id = 'p-1' ORDER BY audit_id;

-- a call that changes nothing: no new version, no audit row, no event
SELECT version AS v FROM userlife.get_user('acme', 'p-1') \gset
SELECT count(*) AS a FROM userlife.audit WHERE external_id = 'p-1' \gset
SELECT version = :v AS unchanged FROM userlife.update_user('acme', 'p-1', display_name => 'Patricia', tags => '{two,three}');
SELECT version = :v AS unchanged FROM userlife.update_user('acme', 'p-1');
SELECT count(*) - :a AS new_audit_rows FROM userlife.audit WHERE external_id = 'p-1';

-- optimistic concurrency
SELECT display_name FROM userlife.update_user('acme', 'p-1', display_name => 'Pat', expected_version => :v);
SELECT userlife.update_user('acme', 'p-1', display_name => 'Stale', expected_version => :v);
\echo :LAST_ERROR_SQLSTATE

-- errors
SELECT userlife.update_user('acme', 'p-1', email => 'OTHER@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.update_user('acme', 'p-1', email => 'broken');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.update_user('acme', 'p-1', metadata => '[1]');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.update_user('acme', 'p-1', tags => ARRAY[NULL::text]);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.update_user('acme', 'nobody', display_name => 'x');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.update_user('acme', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT external_id FROM userlife.delete_user('acme', 'p-2');
SELECT userlife.update_user('acme', 'p-2', display_name => 'Ghost');
\echo :LAST_ERROR_SQLSTATE
-- a deleted user's address is free again
SELECT email FROM userlife.update_user('acme', 'p-1', email => 'other@example.com');

-- verification, once per enrollment
SELECT verified_at IS NOT NULL AS verified, verified_attributes, version
  FROM userlife.mark_verified('acme', 'p-1', '{"document": "passport", "country": "NL"}');
SELECT userlife.mark_verified('acme', 'p-1', '{"document": "id"}');
\echo :LAST_ERROR_SQLSTATE
UPDATE userlife.users SET verified_attributes = '{}' WHERE external_id = 'p-1';
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.mark_verified('acme', 'p-2', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.mark_verified('acme', 'p-1', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.mark_verified('acme', 'p-1', '"passport"');
\echo :LAST_ERROR_SQLSTATE
SELECT action, changed_fields FROM userlife.audit WHERE external_id = 'p-1' ORDER BY audit_id DESC LIMIT 1;
