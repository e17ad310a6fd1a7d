#!/usr/bin/env bash
# list_plans.sh — at 1,000,000 users of one partner every list_users filter
# is served by an index (no sequential scan of users, or of the search
# documents in user_search, in any plan the function runs, read through
# auto_explain), and a keyset page deep in the
# list reads as few buffers as the first page.  Prints TAP.
set -uo pipefail
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_scale

echo "1..13"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
$PSQL -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('big');
SELECT userlife.create_partner('small');
SELECT userlife.register_user('small', 's-' || i) FROM generate_series(1, 100) i;
-- bulk load: the rows are what is measured here, not the triggers (the
-- search documents' triggers are enabled ALWAYS and still run)
SET session_replication_role = replica;
SET maintenance_work_mem = '256MB';
INSERT INTO userlife.users (partner, external_id, display_name, email, status, tags,
                            created_at, updated_at, status_changed_at)
SELECT 'big', 'ext-' || i, 'Name ' || md5(i::text), 'u' || i || '@example.com',
       (CASE WHEN i % 20 = 0 THEN 'inactive' WHEN i % 50 = 1 THEN 'suspended' ELSE 'active' END)::userlife.user_status,
       CASE WHEN i % 100 = 0 THEN '{gold}'::text[] ELSE '{}' END,
       timestamptz '2025-01-01' + i * interval '1 second', now(), now()
  FROM generate_series(1, 1000000) i;
RESET session_replication_role;
VACUUM ANALYZE userlife.users, userlife.user_search;
SQL

n=0
tap() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi
}

# plans_of SQL: every plan the statement ran, nested ones included
plans_of() {
	$PSQL -d $db 2>&1 >/dev/null <<SQL
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = off;
SET client_min_messages = log;
$1;
SQL
}

# expect_index LABEL INDEX SQL: no Seq Scan on users or user_search, and INDEX used
expect_index() {
	local out
	out=$(plans_of "$3")
	if grep -Eq "Seq Scan on (users|user_search) " <<<"$out"; then
		tap 1 "$1: sequential scan on $(grep -Eo "Seq Scan on (users|user_search)" <<<"$out" | head -1 | awk '{ print $4 }')"
		grep -E -B3 -A3 "Seq Scan on (users|user_search) " <<<"$out" | sed 's/^/# /'
	elif ! grep -q "$2" <<<"$out"; then
		tap 1 "$1: $2 not used"
		sed 's/^/# /' <<<"$out"
	else
		tap 0 "$1: served by $2"
	fi
}

expect_index "first page" users_partner_created_idx "SELECT count(*) FROM userlife.list_users('big')"
expect_index "status filter" users_partner_status_created_idx "SELECT count(*) FROM userlife.list_users('big', status => 'inactive')"
expect_index "search" user_search_document_idx "SELECT count(*) FROM userlife.list_users('big', search => 'NAME 00ff1')"
expect_index "search by e-mail" user_search_document_idx "SELECT count(*) FROM userlife.list_users('big', search => 'u123456@')"
expect_index "tag filter" "Index Scan" "SELECT count(*) FROM userlife.list_users('big', tag => 'gold')"
expect_index "created_after" users_partner_created_idx "SELECT count(*) FROM userlife.list_users('big', created_after => '2025-01-06')"
expect_index "created_before" users_partner_created_idx "SELECT count(*) FROM userlife.list_users('big', created_before => '2025-01-03')"
expect_index "filters combined" "Index" "SELECT count(*) FROM userlife.list_users('big', status => 'active', tag => 'gold', created_after => '2025-01-05')"
expect_index "count_users by status" users_partner_status_created_idx "SELECT userlife.count_users('big', status => 'inactive')"
expect_index "count_users by search" user_search_document_idx "SELECT userlife.count_users('big', search => 'u12345@')"

# buffers read by the page query itself (the statement that selects u)
page_buffers() {
	plans_of "$1" | awk '
		/Query Text: SELECT u FROM userlife.users u/ { want = 1; next }
		want && /Buffers: shared/ {
			total = 0
			for (i = 1; i <= NF; i++) if ($i ~ /^(hit|read)=/) { split($i, kv, "="); total += kv[2] }
			print total; exit
		}'
}
deep_id=$($PSQL -d $db -At -c "SELECT user_id FROM userlife.users WHERE partner = 'big' AND external_id = 'ext-900000'")
first=$(page_buffers "SELECT count(*) FROM userlife.list_users('big')")
deep=$(page_buffers "SELECT count(*) FROM userlife.list_users('big', after_user => '$deep_id')")
offset=$(page_buffers "SELECT count(*) FROM userlife.list_users('big', page_offset => 900000)")
echo "# buffers: first page $first, keyset page at depth 900,000 $deep, offset page at depth 900,000 $offset"
[ -n "$first" ] && [ -n "$deep" ] && [ "$deep" -le $((first + 8)) ]
tap $? "keyset page at depth 900,000 reads about as many buffers as the first page ($deep vs $first)"
[ -n "$offset" ] && [ -n "$deep" ] && [ "$offset" -gt $((deep * 100)) ]
tap $? "the same depth by offset reads far more ($offset), so the measure can tell them apart"

# the deep keyset page returns the right users
got=$($PSQL -d $db -At -c "SELECT string_agg(external_id, ',') FROM userlife.list_users('big', page_size => 3, after_user => '$deep_id')")
[ "$got" = "ext-900001,ext-900002,ext-900003" ]
tap $? "keyset page continues right after the given user ($got)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
