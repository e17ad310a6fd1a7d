#!/usr/bin/env bash
# crash_recovery.sh — the load of load_invariants.sh on a cluster of its
# own, kill -9 of the postmaster in the middle, restart (crash recovery),
# then the same invariants: every committed change has its audit row and
# event, nothing uncommitted left a trace.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export USERLIFE_ROOT=$ROOT
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
SECONDS_LOAD=${LOAD_SECONDS:-40}

echo "1..11"
(
	# a cluster of our own: the harness's one must not be killed
	. "$ROOT/test/lib.sh"
	trap userlife_stop_cluster EXIT
	userlife_start_cluster >/dev/null
	PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
	db=userlife_crash
	n=0
	tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

	$PSQL -d postgres -c "CREATE DATABASE $db" >/dev/null
	$PSQL -d $db -f "$ROOT/test/load/setup.sql" >/dev/null
	"$BIN/pgbench" -n -c 4 -j 2 -T "$SECONDS_LOAD" -f "$ROOT/test/load/mix.sql" $db >"$USERLIFE_TMP/pgbench.out" 2>&1 &
	load=$!
	sleep $((SECONDS_LOAD / 3))
	before=$($PSQL -d $db -At -c "SELECT count(*) FROM userlife.audit")
	postmaster=$(head -1 "$USERLIFE_PGDATA/postmaster.pid")
	kill -9 "$postmaster"
	wait $load
	[ "$before" -gt 0 ]
	tap $? "kill -9 of the postmaster under load, after $before audit rows"
	# the backends and helpers notice the postmaster is gone and exit; a
	# killed postmaster nobody reaps stays a zombie, whose stale lock file an
	# administrator removes; PostgreSQL itself refuses to start while an old
	# backend still holds the shared memory, so try for a while
	started=1
	for _ in $(seq 1 30); do
		sleep 1
		if ps -o stat= -p "$postmaster" 2>/dev/null | grep -q Z || ! kill -0 "$postmaster" 2>/dev/null; then
			rm -f "$USERLIFE_PGDATA/postmaster.pid"
		fi
		if runuser -u postgres -- "$BIN/pg_ctl" -D "$USERLIFE_PGDATA" -l "$USERLIFE_LOG" -w -t 120 \
			-o "-k $USERLIFE_TMP -p $PGPORT -c listen_addresses=''" start >/dev/null 2>&1; then
			started=0
			break
		fi
	done
	[ "$started" = 0 ]
	tap $? "the cluster restarts"
	grep -q "database system was interrupted\|was not properly shut down" "$USERLIFE_LOG"
	tap $? "it went through crash recovery"
	after=$($PSQL -d $db -At -c "SELECT count(*) FROM userlife.audit")
	[ "$after" -ge "$before" ]
	tap $? "no committed audit row was lost ($after >= $before)"
	while IFS='|' read -r name violations; do
		[ "$violations" = 0 ]
		tap $? "after the crash: $name ($violations violations)"
	done < <($PSQL -d $db -At -f "$ROOT/test/load/invariants.sql")
)
