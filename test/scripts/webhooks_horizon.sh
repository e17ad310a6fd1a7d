#!/usr/bin/env bash
# webhooks_horizon.sh — claim_webhook_deliveries moves the outbox cursors on
# while writers keep overlapping: writer 1 runs from 0 s to 3 s, writer 2
# from 2 s to 6 s, and one session claims at 1.5 s (writer 1 running) and
# at 4.5 s (writer 2 running, writer 1 committed).  The second claim queues
# writer 1's event: the position the first claim read is safe once writer
# 1 has ended, even though some writer is running at every claim.  Writer
# 2's event waits for its commit, and a claim after it queues it.  No
# request is sent.  Prints TAP.
set -uo pipefail
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_wh_horizon

echo "1..3"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { $PSQL -d $db -At -c "$1"; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('wh');
SELECT userlife.register_user('wh', 'w1');
SELECT userlife.register_user('wh', 'w2');
-- never connected to: nothing here runs the delivery program
SELECT userlife.add_webhook_endpoint('wh', 'http://127.0.0.1:9/never');
SQL
# queued SQL-CONDITION: queue rows of the writers' events
queued() { q "SELECT count(*) FROM userlife.webhook_queue q JOIN userlife.events e USING (event_id)
	WHERE e.payload->>'external_id' = '$1'"; }

$PSQL -d $db >/dev/null <<'SQL' &
BEGIN;
SELECT userlife.update_user('wh', 'w1', display_name => 'Writer 1');
SELECT pg_sleep(3);
COMMIT;
SQL
w1=$!
(sleep 2 && $PSQL -d $db >/dev/null <<'SQL') &
BEGIN;
SELECT userlife.update_user('wh', 'w2', display_name => 'Writer 2');
SELECT pg_sleep(4);
COMMIT;
SQL
w2=$!
sleep 1.5
$PSQL -d $db -At >/dev/null <<'SQL'
SELECT count(*) FROM userlife.claim_webhook_deliveries(10);
SELECT pg_sleep(3);
SELECT count(*) FROM userlife.claim_webhook_deliveries(10);
SQL
one=$(queued w1)
two=$(queued w2)
running=$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(4)%' AND state = 'active'")
[ "$one" = 1 ] && [ "$running" = 1 ]
tap $? "a claim while writer 2 runs queues the event of writer 1, who ended after the previous claim ($one queued; writer 2 running: $running)"
[ "$two" = 0 ]
tap $? "writer 2's event is not queued while it runs ($two)"
wait $w1 $w2
q "SELECT count(*) FROM userlife.claim_webhook_deliveries(10)" >/dev/null
two=$(queued w2)
[ "$two" = 1 ]
tap $? "after writer 2 commits, a claim queues its event ($two)"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
