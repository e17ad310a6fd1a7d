-- Schema contract: the objects of SPEC §2, §5 and §9 exist with the SPEC's
-- names, argument types, return types and column types.
BEGIN;
SELECT plan(124);

SELECT has_schema('userlife');
SELECT has_extension('userlife');
SELECT has_type('userlife', 'user_status', 'user_status enum exists');
SELECT enum_has_labels('userlife', 'user_status',
       ARRAY['active', 'inactive', 'suspended', 'flagged', 'blocked', 'deleted']);

SELECT has_table('userlife', t, 'table userlife.' || t)
  FROM unnest(ARRAY['partners', 'partner_bindings', 'users', 'audit', 'events', 'jobs',
                    'tombstones', 'transitions']) t;
SELECT has_view('userlife', 'status_counts', 'view status_counts');
SELECT has_view('userlife', 'due_for_purge', 'view due_for_purge');
SELECT columns_are('userlife', 'due_for_purge', ARRAY['partner', 'external_id', 'purge_after', 'legal_hold'],
                   'due_for_purge columns');
SELECT columns_are('userlife', 'status_counts', ARRAY['partner', 'status', 'users'], 'status_counts columns');
SELECT columns_are('userlife', 'tombstones',
                   ARRAY['partner', 'external_id_digest', 'user_id', 'enrollment_count', 'allow_new_enroll',
                         'purged_at', 'audit_head'], 'tombstones hold no personal data');

-- users columns (SPEC §2)
SELECT col_type_is('userlife', 'users', c, t, 'users.' || c || ' is ' || t)
  FROM (VALUES ('user_id', 'uuid'), ('partner', 'text'), ('external_id', 'text'),
               ('display_name', 'text'), ('email', 'text'), ('status', 'userlife.user_status'),
               ('status_reason', 'text'), ('status_changed_at', 'timestamp with time zone'),
               ('suspended_until', 'timestamp with time zone'), ('is_fraudulent', 'boolean'),
               ('allow_new_enroll', 'boolean'), ('enrollment_count', 'integer'),
               ('legal_hold', 'boolean'), ('metadata', 'jsonb'), ('tags', 'text[]'),
               ('verified_at', 'timestamp with time zone'), ('verified_attributes', 'jsonb'),
               ('version', 'bigint'), ('created_at', 'timestamp with time zone'),
               ('updated_at', 'timestamp with time zone'), ('deleted_at', 'timestamp with time zone'),
               ('purge_after', 'timestamp with time zone')) AS v(c, t);
SELECT col_is_pk('userlife', 'users', 'user_id', 'users primary key is user_id');
SELECT col_default_is('userlife', 'users', 'status', 'active'::userlife.user_status, 'users.status defaults to active');

-- partners
SELECT col_type_is('userlife', 'partners', 'retention', 'interval', 'partners.retention is interval');
SELECT col_not_null('userlife', 'partners', 'retention', 'partners.retention is NOT NULL');
SELECT col_is_pk('userlife', 'partners', 'partner', 'partners primary key is partner');

-- audit columns (SPEC §7)
SELECT col_type_is('userlife', 'audit', c, t, 'audit.' || c || ' is ' || t)
  FROM (VALUES ('audit_id', 'bigint'), ('at', 'timestamp with time zone'), ('partner', 'text'),
               ('user_id', 'uuid'), ('external_id', 'text'), ('action', 'text'),
               ('db_role', 'text'), ('actor', 'text'), ('reason', 'text'),
               ('changed_fields', 'text[]'), ('old_values', 'jsonb'), ('new_values', 'jsonb'),
               ('txid', 'xid8'), ('prev_hash', 'bytea'), ('row_hash', 'bytea')) AS v(c, t);

-- jobs columns (SPEC §5.8)
SELECT col_type_is('userlife', 'jobs', c, t, 'jobs.' || c || ' is ' || t)
  FROM (VALUES ('job_id', 'bigint'), ('partner', 'text'), ('user_id', 'uuid'),
               ('job_type', 'text'), ('outcome', 'text'), ('failure_reason', 'text'),
               ('payload', 'jsonb'), ('at', 'timestamp with time zone')) AS v(c, t);

-- transitions
SELECT col_type_is('userlife', 'transitions', c, t, 'transitions.' || c || ' is ' || t)
  FROM (VALUES ('from_status', 'userlife.user_status'), ('to_status', 'userlife.user_status'),
               ('requires_reason', 'boolean')) AS v(c, t);

-- functions: name, argument types, return type (SPEC §5)
SELECT has_function('userlife', f, a, format('function userlife.%s(%s)', f, array_to_string(a, ', ')))
  FROM (VALUES
    ('create_partner', ARRAY['text', 'text', 'interval']),
    ('set_retention', ARRAY['text', 'interval']),
    ('bind_partner', ARRAY['regrole', 'text']),
    ('unbind_partner', ARRAY['regrole', 'text']),
    ('register_user', ARRAY['text', 'text', 'text', 'text', 'jsonb', 'text[]', 'userlife.user_status']),
    ('allow_reenroll', ARRAY['text', 'text', 'boolean', 'text']),
    ('get_user', ARRAY['text', 'text']),
    ('list_users', ARRAY['text', 'userlife.user_status', 'text', 'timestamp with time zone',
                         'timestamp with time zone', 'text', 'integer', 'uuid', 'integer']),
    ('count_users', ARRAY['text', 'userlife.user_status', 'text', 'timestamp with time zone',
                          'timestamp with time zone', 'text']),
    ('users_page', ARRAY['text', 'integer', 'integer', 'userlife.user_status', 'text']),
    ('update_user', ARRAY['text', 'text', 'text', 'text', 'jsonb', 'text[]', 'bigint']),
    ('mark_verified', ARRAY['text', 'text', 'jsonb']),
    ('set_status', ARRAY['text', 'text', 'userlife.user_status', 'text', 'timestamp with time zone']),
    ('set_fraud_flag', ARRAY['text', 'text', 'boolean', 'text']),
    ('enable_user', ARRAY['text', 'text', 'text']),
    ('disable_user', ARRAY['text', 'text', 'text']),
    ('delete_user', ARRAY['text', 'text', 'text']),
    ('delete_users', ARRAY['text', 'text[]', 'text']),
    ('restore_user', ARRAY['text', 'text', 'text']),
    ('record_job', ARRAY['text', 'text', 'text', 'text', 'jsonb']),
    ('user_history', ARRAY['text', 'text']),
    ('verify_audit', ARRAY['text', 'text']),
    ('set_legal_hold', ARRAY['text', 'text', 'boolean', 'text']),
    ('purge_expired', ARRAY['integer']),
    ('erase_user', ARRAY['text', 'text', 'text']),
    ('run_maintenance', ARRAY['integer']),
    ('schedule_maintenance', ARRAY['text']),
    ('claim_events', ARRAY['integer', 'text']),
    ('ack_events', ARRAY['bigint[]'])) AS v(f, a);

SELECT function_returns('userlife', f, a, r, format('userlife.%s returns %s', f, r))
  FROM (VALUES
    ('create_partner', ARRAY['text', 'text', 'interval'], 'userlife.partners'),
    ('register_user', ARRAY['text', 'text', 'text', 'text', 'jsonb', 'text[]', 'userlife.user_status'], 'userlife.users'),
    ('allow_reenroll', ARRAY['text', 'text', 'boolean', 'text'], 'boolean'),
    ('get_user', ARRAY['text', 'text'], 'userlife.users'),
    ('list_users', ARRAY['text', 'userlife.user_status', 'text', 'timestamp with time zone',
                         'timestamp with time zone', 'text', 'integer', 'uuid', 'integer'], 'setof userlife.users'),
    ('count_users', ARRAY['text', 'userlife.user_status', 'text', 'timestamp with time zone',
                          'timestamp with time zone', 'text'], 'bigint'),
    ('users_page', ARRAY['text', 'integer', 'integer', 'userlife.user_status', 'text'], 'jsonb'),
    ('update_user', ARRAY['text', 'text', 'text', 'text', 'jsonb', 'text[]', 'bigint'], 'userlife.users'),
    ('set_status', ARRAY['text', 'text', 'userlife.user_status', 'text', 'timestamp with time zone'], 'userlife.users'),
    ('delete_users', ARRAY['text', 'text[]', 'text'], 'setof record'),
    ('record_job', ARRAY['text', 'text', 'text', 'text', 'jsonb'], 'userlife.jobs'),
    ('user_history', ARRAY['text', 'text'], 'setof userlife.audit'),
    ('verify_audit', ARRAY['text', 'text'], 'boolean'),
    ('set_legal_hold', ARRAY['text', 'text', 'boolean', 'text'], 'userlife.users'),
    ('purge_expired', ARRAY['integer'], 'bigint'),
    ('erase_user', ARRAY['text', 'text', 'text'], 'boolean'),
    ('run_maintenance', ARRAY['integer'], 'jsonb'),
    ('schedule_maintenance', ARRAY['text'], 'bigint'),
    ('claim_events', ARRAY['integer', 'text'], 'setof userlife.events'),
    ('ack_events', ARRAY['bigint[]'], 'integer')) AS v(f, a, r);

-- argument names, so callers can use =>
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = 'userlife.list_users'::regproc),
          ARRAY['partner', 'status', 'search', 'created_after', 'created_before', 'tag',
                'page_size', 'after_user', 'page_offset'],
          'list_users argument names');
SELECT is((SELECT proargnames FROM pg_proc WHERE oid = 'userlife.register_user'::regproc),
          ARRAY['partner', 'external_id', 'display_name', 'email', 'metadata', 'tags', 'status'],
          'register_user argument names');

-- the lifecycle logic is C
SELECT is((SELECT count(*)::int FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
            WHERE p.pronamespace = 'userlife'::regnamespace AND l.lanname <> 'c'), 0,
          'every userlife function is written in C');
SELECT trigger_is('userlife', 'users', 'zz_users_guard', 'userlife', 'users_guard',
                  'users has the C guard trigger');
SELECT trigger_is('userlife', 'users', 'users_audit_insert', 'userlife', 'users_audit_insert',
                  'users has the C audit trigger for inserts');

SELECT * FROM finish();
ROLLBACK;
