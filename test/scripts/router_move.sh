#!/usr/bin/env bash
# router_move.sh — from 2 shard databases to 4 with userlife_router: four
# partitions, p0 and p2 in shard_a, p1 and p3 in shard_b; partition 2 moves
# to a clone shard_c and partition 3 to shard_d, with the commands the
# README gives.  After the move every partner's users, audit and events are
# in one database only, every audit chain verifies, ids keep increasing and
# the router reaches every partner.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export USERLIFE_ROOT=$ROOT
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}

echo "1..7"
(
	. "$ROOT/test/lib.sh"
	PG_BIN=$BIN
	userlife_plproxy >/dev/null 2>&1 || { echo "Bail out! PL/Proxy could not be installed"; exit 1; }
	trap userlife_stop_cluster EXIT
	userlife_start_cluster >/dev/null
	export PGUSER=postgres
	PSQL="$BIN/psql -X -q -At -v ON_ERROR_STOP=1"
	n=0
	tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
	conn() { echo "host=$PGHOST port=$PGPORT dbname=$1"; }

	for db in shard_a shard_b; do
		$PSQL -d postgres -c "CREATE DATABASE $db"
		$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE"
	done
	$PSQL -d postgres -c "CREATE DATABASE router"
	$PSQL -d router -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife_router CASCADE" \
		-c "CREATE SERVER userlife FOREIGN DATA WRAPPER plproxy OPTIONS (connection_lifetime '1800',
			query_timeout '60', p0 '$(conn shard_a)', p1 '$(conn shard_b)', p2 '$(conn shard_a)', p3 '$(conn shard_b)')" \
		-c "CREATE USER MAPPING FOR PUBLIC SERVER userlife"
	# 20 partners, 400 users with some history, keys and a webhook endpoint
	$PSQL -d router >/dev/null <<'SQL'
SELECT count(userlife.create_partner('m' || i)) FROM generate_series(1, 20) i;
SELECT count(userlife.register_user('m' || (i % 20 + 1), 'u' || i, email => 'u' || i || '@example.com'))
  FROM generate_series(1, 400) i;
SELECT count(userlife.set_status('m' || (i % 20 + 1), 'u' || i, 'suspended', 'review')) FROM generate_series(1, 400, 3) i;
SELECT count(userlife.update_user('m' || (i % 20 + 1), 'u' || i, display_name => 'U' || i)) FROM generate_series(1, 400, 2) i;
SELECT count(userlife.issue_api_key('m' || i)) FROM generate_series(1, 20) i;
SELECT count(userlife.add_webhook_endpoint('m' || i, 'https://hooks.example.com/' || i)) FROM generate_series(1, 20) i;
SQL
	before=$($PSQL -d router -c "SELECT sum(userlife.count_users('m' || i)) FROM generate_series(1, 20) i")

	# ---- the README's commands ------------------------------------------------
	# move PARTITION FROM TO: partition PARTITION of database FROM moves to the new database TO
	move() {
		local part=$1 from=$2 to=$3 moving
		# 1. the partners that move: their hash (userlife.partner_hash on the router) & 3
		moving=$($PSQL -d "$from" -c "SELECT pg_catalog.string_agg(pg_catalog.quote_literal(partner), ',')
			FROM userlife.partners
			WHERE ((('x' || pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(pg_catalog.convert_to(partner, 'UTF8')), 1, 4),
					'hex'))::bit(32))::int4 & 3) = $part")
		# 2. close the partition: its calls fail at once, the others go on
		$PSQL -d router -c "ALTER SERVER userlife OPTIONS (SET p$part '$(conn "${from}_closed")')"
		# 3. clone the database (a superuser, replica mode, as for any restore), with the
		#    replay memory of the moving partners, which pg_dump leaves out
		"$BIN/pg_dump" -Fc -d "$from" -f "$USERLIFE_TMP/$from.dump"
		$PSQL -d postgres -c "CREATE DATABASE $to"
		PGOPTIONS='-c session_replication_role=replica' "$BIN/pg_restore" -d "$to" "$USERLIFE_TMP/$from.dump"
		$PSQL -d "$from" -c "\copy (SELECT * FROM userlife.accepted_signatures WHERE partner IN ($moving)) TO stdout" |
			$PSQL -d "$to" -c "\copy userlife.accepted_signatures FROM stdin"
		# 4. each database keeps the rows of its own partitions' partners: the
		#    moving ones leave the old database, the others the clone
		forget "$to" "NOT IN ($moving)"
		forget "$from" "IN ($moving)"
		# 5. open the partition on its new database
		$PSQL -d router -c "ALTER SERVER userlife OPTIONS (SET p$part '$(conn "$to")')"
	}
	# forget DB CONDITION: deletes the rows of the partners matching CONDITION
	# (not partners and partner_bindings: every shard keeps every partner)
	forget() {
		$PSQL -d "$1" <<SQL
BEGIN;
SET LOCAL session_replication_role = replica;
ALTER TABLE userlife.audit DISABLE TRIGGER audit_append_only, DISABLE TRIGGER audit_append_only_row;
ALTER TABLE userlife.users DISABLE TRIGGER users_hold_guard;
DELETE FROM userlife.webhook_endpoints WHERE partner $2;
DELETE FROM userlife.events WHERE partner $2;
DELETE FROM userlife.audit WHERE partner $2;
DELETE FROM userlife.jobs WHERE partner $2;
DELETE FROM userlife.users WHERE partner $2;
DELETE FROM userlife.tombstones WHERE partner $2;
DELETE FROM userlife.partner_keys WHERE partner $2;
DELETE FROM userlife.accepted_signatures WHERE partner $2;
DELETE FROM userlife.audit_keys k WHERE NOT EXISTS (SELECT FROM userlife.users u WHERE u.user_id = k.user_id);
ALTER TABLE userlife.audit ENABLE ALWAYS TRIGGER audit_append_only, ENABLE ALWAYS TRIGGER audit_append_only_row;
ALTER TABLE userlife.users ENABLE ALWAYS TRIGGER users_hold_guard;
COMMIT;
SQL
	}
	move 2 shard_a shard_c
	move 3 shard_b shard_d
	tap $? "partitions 2 and 3 moved to clones shard_c and shard_d"

	# every table with a partner column: each partner's rows in one database only
	stray=0
	for db in shard_a shard_b shard_c shard_d; do
		parts=$($PSQL -d router -c "SELECT string_agg(substr(option_name, 2), ',') FROM pg_options_to_table(
			(SELECT srvoptions FROM pg_foreign_server WHERE srvname = 'userlife')) WHERE option_value LIKE '%dbname=$db'")
		s=$($PSQL -d "$db" -c "SELECT count(*) FROM (
			SELECT partner FROM userlife.users UNION ALL SELECT partner FROM userlife.audit
			UNION ALL SELECT partner FROM userlife.events UNION ALL SELECT partner FROM userlife.webhook_endpoints) r
			WHERE ((('x' || encode(substr(sha256(convert_to(partner, 'UTF8')), 1, 4), 'hex'))::bit(32))::int4 & 3) NOT IN ($parts)")
		echo "# $db: partitions $parts, $s rows of other partitions"
		stray=$((stray + s))
	done
	[ "$stray" = 0 ]
	tap $? "users, audit, events and endpoints of each partner are in its partition's database only"
	after=$($PSQL -d router -c "SELECT sum(userlife.count_users('m' || i)) FROM generate_series(1, 20) i")
	[ "$after" = "$before" ] && [ "$after" = 400 ]
	tap $? "the router reaches every partner after the move: $after users, as before ($before)"
	bad=$($PSQL -d router -c "SELECT count(*) FROM generate_series(1, 20) i, userlife.verify_partner_audit('m' || i)")
	[ "$bad" = 0 ]
	tap $? "every partner's audit chains verify on its new database"
	counts=$(for db in shard_a shard_b shard_c shard_d; do $PSQL -d $db -c "SELECT count(*) FROM userlife.users"; done | tr '\n' ' ')
	[ "$(echo "$counts" | awk '{ print ($1 > 0 && $2 > 0 && $3 > 0 && $4 > 0 && $1 + $2 + $3 + $4 == 400) }')" = 1 ]
	tap $? "the users are spread over the 4 databases ($counts)"
	# a moved partner goes on: a new change is audited and chained after its history
	m=$($PSQL -d router -c "SELECT 'm' || i FROM generate_series(1, 20) i WHERE userlife.shard_of('m' || i) = 2 LIMIT 1")
	u=$($PSQL -d shard_c -c "SELECT external_id FROM userlife.users WHERE partner = '$m' LIMIT 1")
	n_before=$($PSQL -d shard_c -c "SELECT count(*) FROM userlife.audit WHERE partner = '$m'")
	$PSQL -d router -c "SELECT userlife.set_status('$m', '$u', 'flagged')" >/dev/null
	[ "$($PSQL -d router -c "SELECT userlife.verify_audit('$m', '$u')")" = t ] &&
		[ "$($PSQL -d shard_c -c "SELECT count(*) FROM userlife.audit WHERE partner = '$m'")" = $((n_before + 1)) ]
	tap $? "a moved partner's next change is audited on shard_c, chained after its history"
	[ -z "$(userlife_crashes_in_log)" ]
	tap $? "no backend crashed"
)
