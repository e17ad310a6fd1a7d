#!/usr/bin/env bash
# webhooks_latency.sh — a change goes out within about one
# userlife.notify_interval (100 ms) of the moment it can, even when the
# writer that held it back commits without a notification.  Each round:
# session H commits a change (which notifies), then within the interval
# writes another in a transaction that stays open 400 ms (its backend
# notified less than an interval ago, so that commit sends none); session
# B, 150 ms in, commits a burst of 5 changes (the first notifies).  The
# program's claims after B's notification hold everything back behind H,
# and so does the extra poll one interval later; then H commits silently.
# Every event must reach the receiver within 600 ms of H's commit (the
# program's own poll comes only every second: slack for a loaded machine,
# far from what waiting for that poll costs).  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/webhooks/lib.sh"
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_wh_latency
rounds=5
limit_ms=600
out=$(mktemp -d)
receiver=
program=
# at exit, also after a failure: the receiver and the program stopped, their files removed
trap 'kill $receiver $program 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

echo "1..$((rounds + 1))"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" \
	-c "SELECT userlife.create_partner('wl')" \
	-c "SELECT count(userlife.register_user('wl', u)) FROM unnest(ARRAY['h', 'h2', 'b']) u" >/dev/null
port=$(wh_free_http_port)
secret=$($PSQL -d $db -At -c "SELECT s->>'secret' FROM userlife.add_webhook_endpoint('wl', 'http://127.0.0.1:$port/a') s")
wh_secrets_json "a=$secret" >"$out/secrets.json"
# bench/receiver.py keeps each request's receipt time (microseconds) and writes them on SIGTERM
python3 "$ROOT/bench/receiver.py" "$port" "$out/secrets.json" "$out/received" >"$out/ready" 2>"$out/receiver.err" &
receiver=$!
wh_wait_for "grep -q ready '$out/ready'" 10 || echo "# the receiver did not start: $(cat "$out/receiver.err")"
PGDATABASE=$db "$WH_PROGRAM" --allow-network 127.0.0.0/8 2>"$out/program.err" &
program=$!
sleep 1.5

first=$($PSQL -d $db -At -c "SELECT max(event_id) FROM userlife.events")
for r in $(seq 1 $rounds); do
	$PSQL -d $db -At >"$out/h$r" <<SQL &
SELECT 1 FROM userlife.update_user('wl', 'h', display_name => 'H $r');
BEGIN;
SELECT 1 FROM userlife.update_user('wl', 'h2', display_name => 'H2 $r');
SELECT pg_catalog.pg_sleep(0.4);
COMMIT;
SELECT 'committed ' || pg_catalog.date_part('epoch', pg_catalog.clock_timestamp());
SQL
	h=$!
	{
		echo "SELECT pg_catalog.pg_sleep(0.15);"
		for i in 1 2 3 4 5; do echo "SELECT 1 FROM userlife.update_user('wl', 'b', display_name => 'B $r $i');"; done
	} | $PSQL -d $db -At >/dev/null
	wait $h
	# the next round once the program is quiet again (its extra poll done)
	sleep 1.5
done
kill -TERM $receiver $program
wait $receiver $program 2>/dev/null
receiver=
program=
$PSQL -d $db -At -F ' ' -c "SELECT e.event_id, u.external_id FROM userlife.events e
	JOIN userlife.users u USING (user_id) WHERE e.event_id > $first ORDER BY 1" >"$out/events"

expected=$(wc -l <"$out/events")
got=$(awk -v f="$first" '$1 > f' "$out/received" | awk '{ print $1 }' | sort -u | wc -l)
[ "$expected" = $((rounds * 7)) ] && [ "$got" = "$expected" ]
tap $? "every event of the $rounds rounds was delivered ($got of $expected, $((rounds * 7)) written)"
# round r's events: the r-th group of 7 in event id order (H, H2, then B's 5,
# which got their ids after H2's); each against that round's commit of H
for r in $(seq 1 $rounds); do
	commit=$(sed -n 's/^committed //p' "$out/h$r")
	late=$(awk -v r="$r" 'NR > (r - 1) * 7 && NR <= r * 7 { print $1 }' "$out/events" |
		while read -r id; do awk -v id="$id" '$1 == id { print $2; exit }' "$out/received"; done |
		awk -v c="$commit" '{ d = 1000 * ($1 - c); if (d > m) m = d } END { printf "%.0f", m }')
	[ -n "$commit" ] && [ -n "$late" ] && [ "$late" -le $limit_ms ]
	tap $? "round $r: the last of its 7 events arrived ${late:-?} ms after the writer that held them back committed (at most $limit_ms)"
done
grep -q "terminated\|FATAL" "$out/program.err" && cat "$out/program.err" | sed 's/^/# /'
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
