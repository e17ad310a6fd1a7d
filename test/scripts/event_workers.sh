#!/usr/bin/env bash
# event_workers.sh — two reference workers (worker/userlife_worker) deliver
# 10,000 events produced while they run: every event once, none twice,
# none lost.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
WORKER="$ROOT/worker/userlife_worker"
db=userlife_workers
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "1..6"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" \
	-c "SELECT userlife.create_partner('w')" >/dev/null

PGDATABASE=$db "$WORKER" --batch 50 --poll-ms 200 --idle-exit 4 >"$out/w1" 2>"$out/w1.err" &
w1=$!
PGDATABASE=$db "$WORKER" --batch 50 --poll-ms 200 --idle-exit 4 >"$out/w2" 2>"$out/w2.err" &
w2=$!

# 10,000 changes in 40 transactions, while the workers run
for b in $(seq 0 39); do
	$PSQL -d $db -c "SELECT count(*) FROM (SELECT userlife.register_user('w', 'u-' || ($b * 250 + i)) FROM generate_series(1, 250) i) s" >/dev/null
done
wait $w1; rc1=$?
wait $w2; rc2=$?

n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

[ "$rc1" = 0 ] && [ "$rc2" = 0 ]
tap $? "both workers ran and stopped cleanly ($rc1, $rc2)"
cat "$out/w1.err" "$out/w2.err" | sed 's/^/# /'
ids() { sed -nE 's/^\{"payload": .*"event_id": ([0-9]+).*$/\1/p; s/^\{"event_id": ([0-9]+),.*$/\1/p' "$@"; }
c1=$(ids "$out/w1" | wc -l)
c2=$(ids "$out/w2" | wc -l)
total=$(ids "$out/w1" "$out/w2" | wc -l)
unique=$(ids "$out/w1" "$out/w2" | sort -u | wc -l)
echo "# worker 1 delivered $c1, worker 2 delivered $c2"
[ "$total" -eq 10000 ]
tap $? "10,000 deliveries in all ($total)"
[ "$unique" -eq 10000 ]
tap $? "every event delivered, none twice ($unique distinct)"
[ "$c1" -gt 0 ] && [ "$c2" -gt 0 ]
tap $? "both workers took part"
left=$($PSQL -d $db -At -c "SELECT count(*) FROM userlife.events WHERE delivered_at IS NULL")
[ "$left" = 0 ]
tap $? "no event left undelivered ($left)"
match=$($PSQL -d $db -At -c "SELECT count(*) FROM userlife.events WHERE event_id IN ($(ids "$out/w1" "$out/w2" | paste -sd,))")
[ "$match" = 10000 ]
tap $? "the delivered ids are the table's events ($match)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
