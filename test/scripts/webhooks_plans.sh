#!/usr/bin/env bash
# webhooks_plans.sh — claim_webhook_deliveries stays cheap at a backlog,
# whatever ANALYZE last saw: 5,000 deliveries of 1,000 users (5 each) are
# delivered, webhook_queue is analyzed (its partial indexes of pending rows
# now count none), then replayed, and one claim of 64 is read through
# auto_explain: its buffers stay within a few thousand (the per-user order
# check once scanned every pending row for each candidate: 64 × 5,000), and
# it hands out each user's oldest delivery, 64 users.  No request is sent.
# Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/webhooks/lib.sh"
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_wh_plans

echo "1..3"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { $PSQL -d $db -At -c "$1"; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('wp');
-- never connected to: nothing here runs the delivery program
SELECT userlife.add_webhook_endpoint('wp', 'http://127.0.0.1:9/never');
SELECT count(userlife.register_user('wp', 'u' || i)) FROM generate_series(1, 1000) i;
SELECT count(userlife.update_user('wp', 'u' || i, metadata => pg_catalog.jsonb_build_object('n', r)))
  FROM generate_series(1, 1000) i, generate_series(1, 4) r;
-- queues the 5,000 events (a claim queues twice what it asks for), then
-- they are delivered, and ANALYZE sees none pending
DO $$
BEGIN
	LOOP
		PERFORM userlife.claim_webhook_deliveries(1000);
		UPDATE userlife.webhook_queue SET state = 'delivered', next_attempt_at = NULL, delivered_at = now();
		EXIT WHEN (SELECT min(cursor_event_id) FROM userlife.webhook_endpoints)
			>= (SELECT max(event_id) FROM userlife.events);
	END LOOP;
END $$;
ANALYZE userlife.webhook_queue;
SELECT userlife.replay_webhooks('wp', endpoint_id, now() - interval '1 hour') FROM userlife.webhook_endpoints;
SQL
pending=$(q "SELECT count(*) FROM userlife.webhook_queue WHERE state = 'pending'")
out=$(wh_explain_claim "$PSQL" $db)
# the top statement's buffers count those of the statements the function ran
hits=$(grep -A4 "Query Text: CREATE TEMP TABLE claimed" <<<"$out" | grep -m1 -oE "shared hit=[0-9]+" | grep -oE "[0-9]+")
[ "$pending" = 5000 ] && [ -n "$hits" ] && [ "$hits" -lt 5000 ]
tap $? "a claim of 64 at a backlog of $pending pending deliveries reads ${hits:-?} buffers (< 5,000)"
# the claimed deliveries are held: make them due again, and claim in one statement to count
got=$($PSQL -d $db -At <<'SQL'
UPDATE userlife.webhook_queue SET next_attempt_at = now() WHERE state = 'pending';
SELECT count(*) || ' ' || count(DISTINCT body::jsonb->'data'->>'external_id')
  FROM userlife.claim_webhook_deliveries(64);
SQL
)
[ "$got" = "64 64" ]
tap $? "the claim hands out 64 deliveries of 64 users ($got)"
older=$(q "SELECT count(*) FROM userlife.webhook_queue c WHERE c.attempts > 0 AND c.state = 'pending'
	AND EXISTS (SELECT 1 FROM userlife.webhook_queue p WHERE p.endpoint_id = c.endpoint_id
	  AND p.user_id = c.user_id AND p.state = 'pending' AND p.event_id < c.event_id)")
[ "$older" = 0 ]
tap $? "each claimed delivery is its user's oldest pending one ($older are not)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
