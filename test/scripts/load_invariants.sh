#!/usr/bin/env bash
# load_invariants.sh — pgbench, 4 clients, 60 s (LOAD_SECONDS), a random
# mix of every lifecycle call and signed requests over 200 shared users;
# then the invariants of test/load/invariants.sql hold and no client met
# an unexpected error.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_load
SECONDS_LOAD=${LOAD_SECONDS:-60}

echo "1..10"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db -f "$ROOT/test/load/setup.sql" >/dev/null
out=$("$BIN/pgbench" -n -c 4 -j 2 -T "$SECONDS_LOAD" -f "$ROOT/test/load/mix.sql" $db 2>&1)
rc=$?
txns=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' <<<"$out")
failed=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' <<<"$out")
echo "# $txns transactions in ${SECONDS_LOAD} s; $($PSQL -d $db -At -c "SELECT count(*) || ' audit rows, ' || count(DISTINCT user_id) || ' users' FROM userlife.audit")"
[ "$rc" = 0 ] && ! grep -q "aborted" <<<"$out"
tap $? "no client met an unexpected error (pgbench exit $rc)"
grep -E "error|aborted" <<<"$out" | head -5 | sed 's/^/# /'
[ "${failed:-0}" = 0 ] && [ "${txns:-0}" -gt 1000 ]
tap $? "the load ran (${txns:-0} transactions, ${failed:-0} failed)"
[ "$($PSQL -d $db -At -c "SELECT count(*) FROM userlife.users WHERE partner = 'inv'")" -gt 100 ]
tap $? "most of the 200 users exist"
while IFS='|' read -r name violations; do
	[ "$violations" = 0 ]
	tap $? "$name ($violations violations)"
done < <($PSQL -d $db -At -f "$ROOT/test/load/invariants.sql")
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
