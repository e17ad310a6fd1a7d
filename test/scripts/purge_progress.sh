#!/usr/bin/env bash
# purge_progress.sh — a long purge_expired or run_maintenance call shows
# how far it got in pg_stat_activity.query of its backend, and the
# statement's own text again when it is done; run_maintenance logs its run
# with counts and duration in userlife.maintenance_runs (issue 17 point 9).
# userlife.purge_rate_limit slows the purge so that another session can
# watch it.  Prints TAP.
set -uo pipefail
PSQL="/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_purge_progress
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

echo "1..5"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" \
	-c "SELECT userlife.create_partner('pp')" \
	-c "SELECT userlife.register_user('pp', 'u' || i) FROM generate_series(1, 400) i" \
	-c "SELECT count(*) FROM userlife.delete_users('pp', ARRAY(SELECT 'u' || i FROM generate_series(1, 400) i))" \
	-c "SET session_replication_role = replica" \
	-c "UPDATE userlife.users SET purge_after = now() - interval '1 day' WHERE partner = 'pp'" >"$out/setup" 2>&1
tap $? "400 users due for purge"

# watch: the progress lines seen in pg_stat_activity while the call runs
watch() {
	local i
	for i in $(seq 1 60); do
		$PSQL -d $db -At -c "SELECT query FROM pg_stat_activity
		                     WHERE datname = current_database() AND query LIKE 'userlife.%'" >>"$out/$1"
		sleep 0.1
	done
}

watch seen_purge &
watcher=$!
# the same statement reads its backend's query text once the purge is done
$PSQL -d $db -At -c "SET userlife.purge_rate_limit = 100" \
	-c "SELECT s.p || ' ' || x.q FROM (SELECT userlife.purge_expired(200) AS p OFFSET 0) s,
	      LATERAL (SELECT a.query AS q FROM pg_stat_activity a WHERE a.pid = pg_backend_pid() AND s.p IS NOT NULL) x" \
	>"$out/purge" 2>&1
wait $watcher
grep -qE '^userlife\.purge_expired: purging users, [0-9]+ of 200 done, 0 failed$' "$out/seen_purge"
tap $? "purge_expired's progress is its backend's query text: $(sort -u "$out/seen_purge" | sed -n '2p')"
grep -q '^200 SELECT s.p' "$out/purge"
tap $? "once the purge is done, the statement's own text is back: $(head -c 60 "$out/purge")"

watch seen_maint &
watcher=$!
$PSQL -d $db -At -c "SET userlife.purge_rate_limit = 100" -c "SELECT userlife.run_maintenance(200)" >"$out/maint" 2>&1
wait $watcher
grep -qE '^userlife\.run_maintenance: purging users, [0-9]+ of 200 done, 0 failed$' "$out/seen_maint"
tap $? "run_maintenance reports its progress the same way"
logged=$($PSQL -d $db -At -c "SELECT users_purged, duration >= interval '1 second', db_role
                               FROM userlife.maintenance_runs ORDER BY run_id DESC LIMIT 1" 2>&1)
tap $([ "$logged" = "200|t|postgres" ] && echo 0 || echo 1) "the run is in maintenance_runs with its count and duration ($logged)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
