-- Roster import and user summary: every result and error of import_users
-- (per item and for the whole call) and of user_summary, with their
-- messages.
\set SHOW_CONTEXT never
SELECT partner FROM userlife.create_partner('imp');
SELECT external_id FROM userlife.register_user('imp', 'existing', 'Old Name', 'old@example.com');

-- one call, every per-item outcome of on_conflict => 'error'
SELECT item, external_id, result, user_id IS NOT NULL AS has_user_id, sqlstate, message
  FROM userlife.import_users('imp', $$[
	{"external_id": "i-1", "display_name": "Ada", "email": "ada@example.com",
	 "metadata": {"plan": "pro"}, "tags": ["beta", "vip"], "status": "inactive",
	 "created_at": "2021-03-04T05:06:07+02:00"},
	{"external_id": "i-2"},
	{"external_id": "existing"},
	{"external_id": "i-3", "email": "OLD@example.com"},
	{"external_id": "i-1"},
	{"external_id": "i-4", "email": "ADA@example.com"},
	{"external_id": "i-5", "email": "not an address"},
	{"external_id": ""},
	{"external_id": null},
	{"display_name": "no id"},
	null,
	"i-6",
	{"external_id": 7},
	{"external_id": "i-8", "display_name": 8},
	{"external_id": "i-9", "metadata": "text"},
	{"external_id": "i-10", "tags": "beta"},
	{"external_id": "i-11", "tags": ["a", 1]},
	{"external_id": "i-12", "tags": ["a", null]},
	{"external_id": "i-13", "status": "blocked"},
	{"external_id": "i-14", "status": "gone"},
	{"external_id": "i-15", "created_at": "2999-01-01T00:00:00Z"},
	{"external_id": "i-16", "created_at": "2021-03-04 05:06:07"},
	{"external_id": "i-17", "created_at": "2021-02-30T00:00:00Z"},
	{"external_id": "i-18", "created_at": 1614830767},
	{"external_id": "i-19", "nickname": "x"},
	{"external_id": "i-20", "display_name": null, "email": null, "metadata": null, "tags": null,
	 "status": null, "created_at": null}
  ]$$) ORDER BY item;

-- what the created users look like: the original registration time is
-- kept (in UTC whatever the offset given), the rest as register_user
SET TimeZone = 'UTC';
SELECT external_id, display_name, email, metadata, tags, status,
       CASE WHEN created_at < now() - interval '1 day' THEN created_at::text ELSE 'at the import' END AS created_at, version,
       enrollment_count, updated_at >= created_at AS updated_after
  FROM userlife.users WHERE partner = 'imp' AND external_id LIKE 'i-%' ORDER BY external_id;
RESET TimeZone;
SELECT external_id, action, reason, changed_fields FROM userlife.audit
 WHERE partner = 'imp' AND external_id LIKE 'i-%' ORDER BY external_id, audit_id;

-- on_conflict => 'skip': existing ids are skipped, a taken e-mail is still an error
SELECT item, external_id, result, user_id IS NOT NULL AS has_user_id, sqlstate, message
  FROM userlife.import_users('imp', $$[
	{"external_id": "existing", "display_name": "New Name"},
	{"external_id": "i-21", "email": "old@example.com"},
	{"external_id": "i-22"}
  ]$$, 'skip') ORDER BY item;

-- on_conflict => 'update': given fields replace the stored ones (audited
-- as update); an update that changes nothing is skipped; a deleted user
-- cannot be updated
SELECT external_id FROM userlife.register_user('imp', 'gone');
SELECT status FROM userlife.delete_user('imp', 'gone');
SELECT item, external_id, result, user_id IS NOT NULL AS has_user_id, sqlstate, message
  FROM userlife.import_users('imp', $$[
	{"external_id": "existing", "display_name": "New Name", "tags": ["moved"], "status": "flagged"},
	{"external_id": "i-2"},
	{"external_id": "i-1", "display_name": "Ada"},
	{"external_id": "gone", "display_name": "Back"},
	{"external_id": "i-22", "email": "ada@example.com"},
	{"external_id": "i-23", "display_name": "Fresh"}
  ]$$, 'update', 'roster from the old provider') ORDER BY item;
SELECT external_id, display_name, email, tags, status, version
  FROM userlife.users WHERE partner = 'imp' AND external_id IN ('existing', 'i-2', 'i-1') ORDER BY 1;
SELECT action, reason, changed_fields FROM userlife.user_history('imp', 'existing') ORDER BY audit_id;

-- a purged user's external_id is taken by its tombstone: never re-enrolled by an import
SELECT userlife.erase_user('imp', 'gone', 'test');
SELECT item, external_id, result, user_id IS NOT NULL AS has_user_id, sqlstate, message
  FROM userlife.import_users('imp', '[{"external_id": "gone"}]') ORDER BY item;
SELECT item, external_id, result, user_id IS NOT NULL AS has_user_id, sqlstate, message
  FROM userlife.import_users('imp', '[{"external_id": "gone"}]', 'skip') ORDER BY item;
SELECT item, external_id, result, user_id IS NOT NULL AS has_user_id, sqlstate, message
  FROM userlife.import_users('imp', '[{"external_id": "gone"}]', 'update') ORDER BY item;

-- an empty roster
SELECT count(*) FROM userlife.import_users('imp', '[]');

-- errors of the whole call: nothing is written
SELECT * FROM userlife.import_users(NULL, '[]');
SELECT * FROM userlife.import_users('imp', NULL);
SELECT * FROM userlife.import_users('imp', '[]', 'replace');
SELECT * FROM userlife.import_users('imp', '{"external_id": "x"}');
SELECT * FROM userlife.import_users('imp', '"x"');
SELECT count(*) FROM userlife.import_users('imp',
	(SELECT jsonb_agg(jsonb_build_object('external_id', 'many-' || i)) FROM generate_series(1, 10001) i));
SELECT * FROM userlife.import_users('bad partner', '[]');
SELECT * FROM userlife.import_users('nobody', '[{"external_id": "x"}]');
SELECT count(*) FROM userlife.users WHERE external_id LIKE 'many-%' OR partner = 'nobody';
CREATE ROLE imp_reader IN ROLE userlife_reader;
SET ROLE imp_reader;
SELECT * FROM userlife.import_users('imp', '[{"external_id": "x"}]');
RESET ROLE;
DROP ROLE imp_reader;

-- user_summary: the row and the counters
SELECT job_type, outcome FROM userlife.record_job('imp', 'i-1', 'document', 'passed');
SELECT job_type, outcome FROM userlife.record_job('imp', 'i-1', 'selfie', 'failed');
SELECT is_fraudulent FROM userlife.set_fraud_flag('imp', 'i-1', true, 'ring');
SELECT job_type, outcome, failure_reason FROM userlife.record_job('imp', 'i-1', 'document', 'passed');
SELECT s->'user'->>'external_id' AS external_id, s->'user'->>'status' AS status,
       (s->'jobs') - 'last_at' AS jobs, s->'jobs'->'last_at' <> 'null' AS jobs_last_at,
       (s->'changes') - 'last_at' AS changes, s->'changes'->'last_at' <> 'null' AS changes_last_at,
       s->'webhooks' AS webhooks
  FROM userlife.user_summary('imp', 'i-1') s;
SELECT s->'jobs' AS jobs, (s->'changes') - 'last_at' AS changes
  FROM userlife.user_summary('imp', 'i-2') s;
SELECT (s->'user') = to_jsonb(u) AS user_is_the_row
  FROM userlife.user_summary('imp', 'existing') s, userlife.users u
 WHERE u.partner = 'imp' AND u.external_id = 'existing';
SELECT userlife.user_summary('imp', 'nobody');
SELECT userlife.user_summary('nobody', 'i-1');
SELECT userlife.user_summary(NULL, 'i-1');
SELECT userlife.user_summary('imp', NULL);
SELECT userlife.user_summary('bad partner', 'i-1');
