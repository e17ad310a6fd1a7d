#!/usr/bin/env bash
# memory.sh — the batch functions keep a backend's private memory bounded:
# delete_users with 10,000 ids, purge_expired(10000) over 10,000 expired
# users (each with its audit rows to redact) and, once it exists,
# import_users with 10,000 items each grow the backend's anonymous memory
# (RssAnon in /proc/<pid>/status: palloc'd memory, not shared buffers) by
# at most 64 MB at its peak.  The peak is what would bring a server down,
# and a memory context freed when the call ends hides it from any
# measurement taken afterwards, so the backend is sampled from outside
# while the call runs.  Every measured call follows a small call of the
# same function, so the library, the plans and the catalog caches are
# already loaded.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_memory
limit_kb=$((64 * 1024))
out=$(mktemp -d)
chmod 777 "$out"
session_pid=
cleanup() {
	exec 3>&- 2>/dev/null
	[ -n "$session_pid" ] && wait "$session_pid" 2>/dev/null
	rm -rf "$out"
}
trap cleanup EXIT

echo "1..6"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('p', retention => '1 day');
-- registered through the function, so each has its audit rows and events
SELECT count(userlife.register_user('p', 'u-' || i, 'User ' || i, 'u' || i || '@example.com'))
  FROM generate_series(1, 10020) i;
VACUUM ANALYZE userlife.users, userlife.audit;
SQL

# one session, fed through a fifo; its backend is the one measured
mkfifo "$out/in"
$PSQL -At -d $db <"$out/in" >"$out/session.log" 2>&1 &
session_pid=$!
exec 3>"$out/in"
echo "SELECT 'pid ' || pg_backend_pid();" >&3
for _ in $(seq 1 100); do grep -q '^pid ' "$out/session.log" && break; sleep 0.1; done
pid=$(sed -n 's/^pid //p' "$out/session.log")

rss_anon() { awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null; }

# measure LABEL SQL: runs SQL in the session and sets grow to the peak
# growth of RssAnon in kB over its value before the call
k=0
grow=
measure() {
	local base peak r marker
	k=$((k + 1))
	marker="done-$k"
	base=$(rss_anon)
	peak=$base
	printf '%s\nSELECT %s;\n' "$2" "'$marker'" >&3
	while ! grep -q "^$marker\$" "$out/session.log"; do
		kill -0 "$session_pid" 2>/dev/null || break
		r=$(rss_anon)
		[ -n "$r" ] && [ "$r" -gt "$peak" ] && peak=$r
		sleep 0.01
	done
	grow=
	grep -q "^$marker\$" "$out/session.log" && [ -n "$base" ] && grow=$((peak - base))
	echo "# $1: RssAnon $base kB before, $peak kB at the peak: +${grow:-?} kB"
}
under_limit() { [ -n "$grow" ] && [ "$grow" -le "$limit_kb" ]; }

# warm-up: the library, the plans, the caches
measure "warm-up" "SELECT count(*) FROM userlife.delete_users('p', ARRAY['u-10001', 'u-10002', 'nobody']);"
measure "delete_users, 10,000 ids" \
	"SELECT 'deleted ' || count(*) FILTER (WHERE result = 'deleted') FROM userlife.delete_users('p', (SELECT array_agg('u-' || i ORDER BY i) FROM generate_series(1, 10000) i));"
under_limit
tap $? "delete_users with 10,000 ids grows the backend by at most 64 MB (${grow:-?} kB)"
grep -q '^deleted 10000$' "$out/session.log"
tap $? "delete_users deleted the 10,000 users"

# their retention ends (and the warm-up's two users')
$PSQL -d $db -c "SET session_replication_role = replica;
	UPDATE userlife.users SET purge_after = now() - interval '1 hour' WHERE status = 'deleted'" >/dev/null
measure "warm-up" "SELECT userlife.purge_expired(2);"
measure "purge_expired(10000)" "SELECT 'purged ' || userlife.purge_expired(10000);"
under_limit
tap $? "purge_expired(10000) grows the backend by at most 64 MB (${grow:-?} kB)"
grep -q '^purged 10000$' "$out/session.log"
tap $? "purge_expired purged the 10,000 users"

# import_users: measured once the function exists (SPEC 5.2)
has_import=$($PSQL -At -d $db -c "SELECT to_regprocedure('userlife.import_users(text, jsonb, text, text)') IS NOT NULL")
if [ "$has_import" = t ]; then
	measure "warm-up" "SELECT count(*) FROM userlife.import_users('p', '[{\"external_id\": \"w-1\"}, {\"external_id\": \"w-2\"}]');"
	measure "import_users, 10,000 items" \
		"SELECT 'imported ' || count(*) FILTER (WHERE result = 'created') FROM userlife.import_users('p', (SELECT jsonb_agg(jsonb_build_object('external_id', 'i-' || i, 'display_name', 'Imported ' || i, 'email', 'i' || i || '@example.com', 'metadata', jsonb_build_object('n', i))) FROM generate_series(1, 10000) i));"
	under_limit
	tap $? "import_users with 10,000 items grows the backend by at most 64 MB (${grow:-?} kB)"
	grep -q '^imported 10000$' "$out/session.log"
	tap $? "import_users created the 10,000 users"
else
	n=$((n + 1)); echo "ok $n # skip userlife.import_users does not exist"
	n=$((n + 1)); echo "ok $n # skip userlife.import_users does not exist"
fi

grep -E 'ERROR|FATAL' "$out/session.log" | head -5 | sed 's/^/# /'
exec 3>&-
wait "$session_pid"
session_pid=
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
