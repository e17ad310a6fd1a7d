#!/usr/bin/env bash
# summary_plans.sh — at 1,000,000 users of one partner (with 1,000,000
# audit rows and 200,000 jobs beside them) user_summary reads no table
# sequentially: every plan it runs, read through auto_explain, is an index
# scan (the counters are index scans of jobs_user_idx and audit_user_idx
# that run no plan at all), and its counters are right.  Prints TAP.
set -uo pipefail
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_summary

echo "1..4"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
$PSQL -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('big');
SELECT userlife.register_user('big', 'probe', 'Probe', 'probe@example.com');
SELECT userlife.record_job('big', 'probe', 'document', 'passed');
SELECT userlife.record_job('big', 'probe', 'selfie', 'failed');
SELECT userlife.update_user('big', 'probe', display_name => 'Probe 2');
-- bulk load: the rows are what is measured here, not the triggers
SET session_replication_role = replica;
SET maintenance_work_mem = '256MB';
INSERT INTO userlife.users (partner, external_id, created_at, updated_at, status_changed_at)
SELECT 'big', 'ext-' || i, timestamptz '2025-01-01' + i * interval '1 second', now(), now()
  FROM generate_series(1, 1000000) i;
INSERT INTO userlife.audit (at, partner, user_id, external_id, action, db_role, changed_fields,
                            old_values, new_values, txid, row_hash)
SELECT now(), 'big', user_id, external_id, 'register', 'loader', '{}', '{}', '{}', pg_current_xact_id(), '\x00'
  FROM userlife.users WHERE partner = 'big' AND external_id LIKE 'ext-%';
INSERT INTO userlife.jobs (partner, user_id, job_type, outcome)
SELECT 'big', user_id, 'document', 'passed' FROM userlife.users WHERE external_id LIKE 'ext-%' AND external_id LIKE '%0';
RESET session_replication_role;
VACUUM ANALYZE userlife.users, userlife.audit, userlife.jobs;
SQL

# plans_of SQL: every plan the statement ran, nested ones included
plans_of() {
	$PSQL -d $db 2>&1 >/dev/null <<SQL
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_timing = off;
SET client_min_messages = log;
$1;
SQL
}

out=$(plans_of "SELECT userlife.user_summary('big', 'probe')")
if grep -q "Seq Scan" <<<"$out"; then
	tap 1 "user_summary: a sequential scan"
	grep -B3 -A3 "Seq Scan" <<<"$out" | sed 's/^/# /'
else
	tap 0 "user_summary: no sequential scan at 1,000,000 users"
fi
grep -q "users_partner_external_id_key" <<<"$out"
tap $? "user_summary: the user is found through users_partner_external_id_key"
grep -Eq "on (jobs|audit) " <<<"$out"
[ $? -ne 0 ]
tap $? "user_summary: no query plan reads jobs or audit (the counters are index scans)"
got=$($PSQL -At -d $db -c "SELECT s->'jobs'->>'total', s->'jobs'->>'passed', s->'jobs'->>'failed', s->'changes'->>'total', s->'user'->>'display_name'
	FROM userlife.user_summary('big', 'probe') s" | tr '|' ' ')
[ "$got" = "2 1 1 2 Probe 2" ]
tap $? "user_summary counts the probe's 2 jobs (1 passed, 1 failed) and 2 changes ($got)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
