#!/usr/bin/env bash
# webhooks_delivery.sh — issue 18 tests 1 and 2, with real processes: two
# userlife_webhooks programs deliver 10,000 changes of 500 users (made by 4
# concurrent connections while they run) to two endpoints of a receiver on
# 127.0.0.1 that checks signatures with hmac: each endpoint gets every event
# exactly once, each user's in order, every signature valid.  Then kill -9
# of one program in the middle of 2,000 more: nothing lost, duplicates only
# among what it held.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/webhooks/lib.sh"
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_wh_delivery
out=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${WH_KEEP:-}" ] || rm -rf "$out"
}
trap cleanup EXIT
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

echo "1..10"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d postgres -c "ALTER DATABASE $db SET userlife.webhook_timeout = '5s'" \
	-c "ALTER DATABASE $db SET userlife.webhook_retry_schedule = '1 s, 1 s, 1 s'" >/dev/null
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" \
	-c "SELECT userlife.create_partner('wh')" \
	-c "SELECT count(userlife.register_user('wh', 'u' || i)) FROM generate_series(1, 500) i" >/dev/null

port=$(wh_free_http_port)
base="http://127.0.0.1:$port"
a=$($PSQL -d $db -At -c "SELECT userlife.add_webhook_endpoint('wh', '$base/ok/a')")
b=$($PSQL -d $db -At -c "SELECT userlife.add_webhook_endpoint('wh', '$base/ok/b')")
sa=$(echo "$a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
sb=$(echo "$b" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
ea=$(echo "$a" | python3 -c 'import json,sys; print(json.load(sys.stdin)["endpoint_id"])')
wh_secrets_json "a=$sa" "b=$sb" >"$out/secrets.json"
wh_start_receiver "$port" "$out/secrets.json" "$out/log" || exit 1
pids+=("$WH_RECEIVER_PID")

# ---- test 1: 10,000 changes, two endpoints, two programs
PGDATABASE=$db "$WH_PROGRAM" --allow-network 127.0.0.0/8 --concurrency 32 2>"$out/p1.err" &
p1=$!
PGDATABASE=$db "$WH_PROGRAM" --allow-network 127.0.0.0/8 --concurrency 32 2>"$out/p2.err" &
p2=$!
pids+=("$p1" "$p2")
cat >"$out/change.sql" <<'SQL'
\set u random(1, 500)
SELECT userlife.update_user('wh', 'u' || :u, metadata => pg_catalog.jsonb_build_object('n', :client_id * 100000 + :scale * 0 + (random() * 1e9)::int8)) IS NOT NULL;
SQL
"$BIN/pgbench" -n -c 4 -j 2 -t 2500 -f "$out/change.sql" $db >"$out/pgbench.out" 2>&1
tap $? "4 connections made 10,000 changes while the programs ran"
$PSQL -d $db -At -c "SELECT event_id FROM userlife.events e, userlife.webhook_endpoints w
	WHERE w.endpoint_id = $ea AND e.event_id > w.start_event_id" >"$out/ids"
echo "# $(wc -l <"$out/ids") events after the endpoints were added"
done_sql="SELECT count(*) = 20000 FROM userlife.webhook_deliveries WHERE state = 'delivered'"
wh_wait_for "[ \"\$($PSQL -d $db -At -c \"$done_sql\")\" = t ]" 120
tap $? "every delivery delivered within 120 s"
python3 "$ROOT/test/webhooks/check_log.py" "$out/log" /ok/a a "$out/ids"
tap $? "endpoint a: every event exactly once, in order per user, every signature valid"
python3 "$ROOT/test/webhooks/check_log.py" "$out/log" /ok/b b "$out/ids"
tap $? "endpoint b: every event exactly once, in order per user, every signature valid"
kill -TERM $p1 $p2
wait $p1; r1=$?
wait $p2; r2=$?
[ "$r1" = 0 ] && [ "$r2" = 0 ]
tap $? "both programs exit 0 on SIGTERM ($r1, $r2)"
d1=$(sed -nE 's/.*stopped: ([0-9]+) delivered.*/\1/p' "$out/p1.err")
d2=$(sed -nE 's/.*stopped: ([0-9]+) delivered.*/\1/p' "$out/p2.err")
echo "# program 1 delivered ${d1:-?}, program 2 ${d2:-?}"
[ "${d1:-0}" -gt 0 ] && [ "${d2:-0}" -gt 0 ]
tap $? "both programs took part"
grep -v "started:\|stopped:\|last minute" "$out/p1.err" "$out/p2.err" | head -5 | sed 's/^/# /'
echo "# output in $out"

# ---- test 2: kill -9 of one program in the middle of a run
: >"$out/log"
PGDATABASE=$db "$WH_PROGRAM" --allow-network 127.0.0.0/8 --concurrency 16 2>"$out/k1.err" &
k1=$!
PGDATABASE=$db "$WH_PROGRAM" --allow-network 127.0.0.0/8 --concurrency 16 2>"$out/k2.err" &
k2=$!
pids+=("$k1" "$k2")
before=$($PSQL -d $db -At -c "SELECT max(event_id) FROM userlife.events")
"$BIN/pgbench" -n -c 4 -j 2 -t 500 -f "$out/change.sql" $db >"$out/pgbench2.out" 2>&1 &
load=$!
sleep 1
kill -9 $k1
wait $load
$PSQL -d $db -At -c "SELECT event_id FROM userlife.events WHERE event_id > $before" >"$out/ids2"
done_sql="SELECT count(*) = 0 FROM userlife.webhook_deliveries WHERE state <> 'delivered'"
wh_wait_for "[ \"\$($PSQL -d $db -At -c \"$done_sql\")\" = t ]" 60
tap $? "after kill -9 the other program delivered everything, including what the killed one held"
# the killed program held at most 16 requests at a time (its claims lapse after 5 + 5 s)
python3 "$ROOT/test/webhooks/check_log.py" "$out/log" /ok/a a "$out/ids2" 16
tap $? "endpoint a: nothing lost, at most 16 duplicates"
python3 "$ROOT/test/webhooks/check_log.py" "$out/log" /ok/b b "$out/ids2" 16
tap $? "endpoint b: nothing lost, at most 16 duplicates"
ids=$(python3 -c "
import json; ids = {}
for l in open('$out/log'):
    r = json.loads(l); ids.setdefault(r['path'], set()).add(r['id'])
print(sum(len(v) for v in ids.values()))")
[ "$ids" = $((2 * $(wc -l <"$out/ids2"))) ]
tap $? "the receiver saw each webhook-id at least once on each endpoint ($ids)"
kill -TERM $k2
wait $k2
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
