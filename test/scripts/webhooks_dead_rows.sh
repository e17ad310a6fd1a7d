#!/usr/bin/env bash
# webhooks_dead_rows.sh — a user's dead deliveries do not slow the claim:
# the claim hands out a user's oldest pending delivery, found in
# webhook_queue_user_id_idx, which also holds the dead ones (user_summary
# counts them).  Keyed on event_id after the user and endpoint alone, the
# claim walked every dead entry of the user (a heap visit each) before the
# pending one: 20,000 dead deliveries cost 20,000+ buffers at each claim
# while that user had one due.  Here the user's 20,000 dead deliveries sit
# below its one pending delivery, and one claim is read through
# auto_explain: it passes over fewer than 1,000 rows, and it hands out that
# delivery.  No request is sent.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/webhooks/lib.sh"
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_wh_dead

echo "1..2"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('wd');
-- never connected to: nothing here runs the delivery program
SELECT userlife.add_webhook_endpoint('wd', 'http://127.0.0.1:9/never');
SELECT userlife.register_user('wd', 'victim');
-- queues (and claims) its one delivery, made due again
SELECT count(*) FROM userlife.claim_webhook_deliveries(10);
UPDATE userlife.webhook_queue SET next_attempt_at = now(), attempts = 0;
-- the user's older deliveries, dead (as after a long failing spell)
INSERT INTO userlife.webhook_queue (endpoint_id, event_id, partner, user_id, event_type, state,
                                    attempts, next_attempt_at, last_error)
SELECT q.endpoint_id, -i, q.partner, q.user_id, q.event_type, 'dead', 8, NULL, 'HTTP status 500'
  FROM userlife.webhook_queue q, generate_series(1, 20000) i;
-- and 5 dead deliveries of each of 1,000 other users
INSERT INTO userlife.webhook_queue (endpoint_id, event_id, partner, user_id, event_type, state,
                                    attempts, next_attempt_at, last_error)
SELECT q.endpoint_id, -100000 - 5 * u - i, q.partner, u.id, q.event_type, 'dead', 8, NULL, 'HTTP status 500'
  FROM (SELECT * FROM userlife.webhook_queue WHERE state = 'pending') q,
       (SELECT g AS u, gen_random_uuid() AS id FROM generate_series(1, 1000) g) u, generate_series(1, 5) i;
ANALYZE userlife.webhook_queue;
SQL
out=$(wh_explain_claim "$PSQL" $db)
# the index entries the claim's statement that picks due deliveries read and threw away
pick=$(awk '/Query Text: SELECT q.endpoint_id, q.event_id FROM userlife.webhook_queue q/ {on = 1; next}
	on && /^LOG:/ {exit} on' <<<"$out")
removed=$(grep -oE "Rows Removed by Filter: [0-9]+" <<<"$pick" | grep -oE "[0-9]+" | awk '{s += $1} END {print s + 0}')
[ -n "$pick" ] && [ "$removed" -lt 1000 ]
tap $? "a claim beside a user's 20,000 dead deliveries passes over $removed of them (< 1,000)"
got=$($PSQL -d $db -At -c "UPDATE userlife.webhook_queue SET next_attempt_at = now() WHERE state = 'pending'" \
	-c "SELECT count(*) FROM userlife.claim_webhook_deliveries(64) WHERE event_id > 0")
[ "$got" = 1 ]
tap $? "and it hands out the user's pending delivery ($got)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
