#!/usr/bin/env bash
# worker_reconnect.sh — the reference worker (worker/userlife_worker) shows
# itself as application_name userlife_worker, survives pg_terminate_backend
# of its backend by connecting again and delivering what comes after, stops
# with exit code 0 on SIGTERM and 2 on a bad command line (issue 17 point 8).
# Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PSQL="/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1"
WORKER="$ROOT/worker/userlife_worker"
db=userlife_worker_reconnect
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# wait_for CMD...: up to 10 s for the command to succeed
wait_for() { local i; for i in $(seq 1 50); do "$@" && return 0; sleep 0.2; done; return 1; }
delivered() { grep -q "\"external_id\": \"$1\"" "$out/w"; }
worker_pid_in_db() { $PSQL -d $db -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'userlife_worker' AND datname = current_database()"; }

has_worker() { test -n "$(worker_pid_in_db)"; }

echo "1..7"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" \
	-c "SELECT userlife.create_partner('wr')" >/dev/null

PGDATABASE=$db "$WORKER" --poll-ms 200 >"$out/w" 2>"$out/w.err" &
worker=$!
wait_for has_worker
first=$(worker_pid_in_db)
tap $([ -n "$first" ] && echo 0 || echo 1) "the worker's session has application_name userlife_worker (pid ${first:-none})"

$PSQL -d $db -c "SELECT userlife.register_user('wr', 'before-kill')" >/dev/null
wait_for delivered before-kill
tap $? "an event before the kill is delivered"

$PSQL -d $db -c "SELECT pg_terminate_backend($first)" >/dev/null
sleep 0.5
$PSQL -d $db -c "SELECT userlife.register_user('wr', 'after-kill')" >/dev/null
wait_for delivered after-kill
tap $? "after pg_terminate_backend of its backend, the worker delivers the next event"
second=$(worker_pid_in_db)
tap $([ -n "$second" ] && [ "$second" != "$first" ] && kill -0 $worker 2>/dev/null && echo 0 || echo 1) \
	"the same worker process runs on a new connection (pid $first, then ${second:-none})"
grep -q "connection lost" "$out/w.err"
tap $? "it said on stderr that the connection was lost"
sed 's/^/# /' "$out/w.err"

kill -TERM $worker
wait $worker
rc=$?
tap $([ "$rc" = 0 ] && echo 0 || echo 1) "SIGTERM stops it with exit code 0 ($rc)"
"$WORKER" --no-such-option >/dev/null 2>"$out/usage"
rc=$?
tap $([ "$rc" = 2 ] && grep -q "Exit codes" "$out/usage" && echo 0 || echo 1) \
	"a bad option: exit code 2 and a usage text that lists the exit codes ($rc)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
