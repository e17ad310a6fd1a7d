#!/usr/bin/env bash
# failover.sh — issue 20 test 2 (SPEC §11), three runs in a row: a primary
# with a synchronous standby (synchronous_standby_names = '*',
# synchronous_commit = on), the random lifecycle mix of test/load run by 4
# psql clients that print what they saw commit (user, version, audit row),
# a webhook endpoint served by userlife_webhooks against the primary; then
# kill -9 of every process of the primary mid-run and pg_ctl promote of the
# standby.  On the promoted server: every change a client saw commit is
# there, test/load/invariants.sql holds (every chain verifies, version
# equals the audit count, one event per audit row ...), and a
# userlife_webhooks started against it delivers every event of the
# endpoint, the ones queued before the crash included.  Prints TAP.
#
# FAILOVER_RUNS (default 3) and FAILOVER_LOAD_SECONDS (default 6) change
# the number of runs and how long the load runs before the kill;
# FAILOVER_SYNC_NAMES='' makes the standby asynchronous, and its WAL receiver
# stops halfway through the load: the test must then fail (changes lost).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export USERLIFE_ROOT=$ROOT
RUNS=${FAILOVER_RUNS:-3}
LOAD_SECONDS=${FAILOVER_LOAD_SECONDS:-6}
CLIENTS=4
# FAILOVER_SYNC_NAMES='' runs with an asynchronous standby: what the test
# catches then (commits the clients saw that the standby never got)
SYNC_NAMES=${FAILOVER_SYNC_NAMES-*}
db=userlife_failover
ninv=$(grep -c '^SELECT' "$ROOT/test/load/invariants.sql")
per_run=$((7 + ninv))
echo "1..$((RUNS * per_run))"

# the statements of one client: the operations of test/load/mix.sql on 200
# users, each through fo_try, which prints what committed
client_script_sql="
SELECT format('SELECT public.fo_try(%L, %L);', 'r' || u, CASE op
	WHEN 1 THEN format('SELECT userlife.register_user(%L, %L, %L, %L)', 'inv', 'r' || u, 'Name ' || u, 'r' || u || '@example.com')
	WHEN 2 THEN format('SELECT userlife.update_user(%L, %L, display_name => %L, metadata => %L)', 'inv', 'r' || u, 'N' || random(), jsonb_build_object('k' || s, random()))
	WHEN 3 THEN format('SELECT userlife.set_status(%L, %L, %L, %L)', 'inv', 'r' || u, (ARRAY['active', 'inactive', 'suspended', 'flagged', 'blocked'])[s], 'load')
	WHEN 4 THEN format('SELECT userlife.set_fraud_flag(%L, %L, %L, %L)', 'inv', 'r' || u, s > 3, 'load')
	WHEN 5 THEN format('SELECT userlife.delete_user(%L, %L, %L)', 'inv', 'r' || u, 'load')
	WHEN 6 THEN format('SELECT userlife.restore_user(%L, %L, %L)', 'inv', 'r' || u, 'load')
	WHEN 7 THEN format('SELECT userlife.allow_reenroll(%L, %L); SELECT userlife.register_user(%L, %L, %L)', 'inv', 'r' || u, 'inv', 'r' || u, 'Again ' || u)
	WHEN 8 THEN format('SELECT userlife.record_job(%L, %L, %L)', 'inv', 'r' || u, 'kyc')
	WHEN 9 THEN format('SELECT userlife.enrollee_request(jsonb_build_object(''partner_id'', ''inv'', ''user_id'', %L,'
		' ''environment'', ''production'', ''email'', ''ops@inv.test'', ''is_fraudulent'', %s) || userlife.generate_signature(''inv''))',
		'r' || u, (s > 3)::text)
	ELSE format('SELECT userlife.set_legal_hold(%L, %L, %L, %L)', 'inv', 'r' || u, s > 3, 'load')
	END)
  FROM (SELECT 1 + (random() * 199)::int AS u, 1 + (random() * 9)::int AS op, 1 + (random() * 4)::int AS s
		  FROM generate_series(1, 20000)) x"

# fo_receiver_start: test/webhooks/receiver.py on a random port in the background
fo_receiver_start() {
	port=$((18000 + RANDOM % 1000))
	python3 "$ROOT/test/webhooks/receiver.py" "$port" "$SB_TMP/secrets.json" "$SB_TMP/hooks.log" \
		>"$SB_TMP/receiver.ready" 2>"$SB_TMP/receiver.err" &
	WH_RECEIVER_PID=$!
}

# fo_receiver_ready: waits until it listens; on another port if the first was taken
fo_receiver_ready() {
	local try i
	for try in 1 2 3; do
		for i in $(seq 1 300); do
			grep -q ready "$SB_TMP/receiver.ready" 2>/dev/null && return 0
			kill -0 "$WH_RECEIVER_PID" 2>/dev/null || break
			sleep 0.2
		done
		kill "$WH_RECEIVER_PID" 2>/dev/null
		wait "$WH_RECEIVER_PID" 2>/dev/null
		fo_receiver_start
	done
	return 1
}

one_run() {
	local run=$1 n=$2
	. "$ROOT/test/standby/lib.sh"
	tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - run $run: $2"; else echo "not ok $n - run $run: $2"; fi; }
	. "$ROOT/test/webhooks/lib.sh"
	local started=$SECONDS i port
	# what this run started ends with it, however it ends
	pids=()
	WH_RECEIVER_PID=
	trap 'kill "${pids[@]}" $WH_RECEIVER_PID 2>/dev/null; wait 2>/dev/null; sb_cleanup' EXIT

	# the receiver starts (python takes seconds on a busy machine) while the primary does
	echo '{}' >"$SB_TMP/secrets.json"
	fo_receiver_start
	sb_start_primary synchronous_commit=on || { echo "# the primary did not start"; return 1; }
	$PP -d postgres -c "CREATE DATABASE $db" >/dev/null
	# what a delivery program held at the crash is handed on after timeout + 5 s
	$PP -d postgres -c "ALTER DATABASE $db SET userlife.webhook_timeout = '2s'" >/dev/null
	$PP -d $db -f "$ROOT/test/load/setup.sql" >/dev/null
	$PP -d $db >/dev/null <<-'EOF'
		SELECT count(userlife.register_user('inv', 'r' || i, 'Name ' || i, 'r' || i || '@example.com'))
		  FROM generate_series(1, 100) i;
		-- fo_try: load_try, then what committed: the user, its version and newest audit row
		-- (the row lock the operation took keeps every other writer of the user out until commit)
		CREATE FUNCTION public.fo_try(ext text, sql text) RETURNS text LANGUAGE plpgsql AS $$
		DECLARE
			r text := public.load_try(sql);
		BEGIN
			IF r <> 'ok' THEN
				RETURN r;
			END IF;
			SELECT 'ok ' || u.external_id || ' ' || u.user_id || ' ' || u.version || ' '
				   || (SELECT max(a.audit_id) FROM userlife.audit a WHERE a.user_id = u.user_id)
			  INTO r FROM userlife.users u WHERE u.partner = 'inv' AND u.external_id = ext;
			RETURN coalesce(r, 'gone');
		END
		$$;
		CREATE TABLE public.fo_seen (ext text, user_id uuid, version bigint, audit_id bigint);
	EOF
	local base ep secret
	fo_receiver_ready || { echo "# the webhook receiver did not start"; return 1; }
	pids+=("$WH_RECEIVER_PID")
	base="http://127.0.0.1:$port"
	ep=$($PP -d $db -At -c "SELECT userlife.add_webhook_endpoint('inv', '$base/ok')")
	secret=$(echo "$ep" | sed -E 's/.*"secret": "([^"]+)".*/\1/')
	# re-read on each request
	wh_secrets_json "inv=$secret" >"$SB_TMP/secrets.json"

	# the standby from a base backup, then synchronous
	sb_start_standby || { echo "# the standby did not start"; return 1; }
	$PP -d postgres -c "ALTER SYSTEM SET synchronous_standby_names = '$SYNC_NAMES'" -c "SELECT pg_reload_conf()" >/dev/null
	for i in $(seq 1 100); do
		[ "$($PP -d postgres -At -c "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ] && break
		sleep 0.1
	done
	[ "$($PP -d postgres -At -c "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")" = 1 ]
	tap $? "a primary with a synchronous hot standby"

	# the load: clients and the delivery program against the primary
	for i in $(seq 1 $CLIENTS); do
		$PP -d $db -At -c "$client_script_sql" >"$SB_TMP/client$i.sql"
	done
	PGHOST=$SB_TMP PGPORT=$SB_PRIMARY_PORT PGUSER=postgres PGDATABASE=$db \
		"$WH_PROGRAM" --allow-network 127.0.0.0/8 --concurrency 8 2>"$SB_TMP/wh1.err" &
	local wh1=$!
	local clients=()
	for i in $(seq 1 $CLIENTS); do
		$PP -d $db -At -f "$SB_TMP/client$i.sql" >"$SB_TMP/client$i.log" 2>"$SB_TMP/client$i.err" &
		clients+=($!)
	done
	echo "# run $run: load from $((SECONDS - started)) s"
	local walreceiver=
	if [ -z "$SYNC_NAMES" ]; then
		# asynchronous: the standby stops receiving halfway, the primary goes on committing
		sleep $((LOAD_SECONDS / 2))
		walreceiver=$(ps -o pid=,args= --ppid "$(head -1 "$SB_STANDBY/postmaster.pid")" | awk '/walreceiver/ {print $1}')
		[ -n "$walreceiver" ] && kill -STOP "$walreceiver"
		sleep $((LOAD_SECONDS - LOAD_SECONDS / 2))
	else
		sleep "$LOAD_SECONDS"
	fi
	# the primary dies: every process of it at once, as with the machine
	local pm kids
	pm=$(head -1 "$SB_PRIMARY/postmaster.pid")
	kids=$(ps -o pid= --ppid "$pm" | tr '\n' ' ')
	# shellcheck disable=SC2086
	kill -9 "$pm" $kids
	for i in "${clients[@]}"; do wait "$i"; done
	kill -TERM $wh1 2>/dev/null
	sleep 1
	kill -9 $wh1 2>/dev/null
	wait $wh1 2>/dev/null
	rm -f "$SB_PRIMARY/postmaster.pid"
	[ -n "$walreceiver" ] && kill -CONT "$walreceiver"
	cat "$SB_TMP"/client*.log | grep '^ok ' | cut -d' ' -f2- | tr ' ' '\t' >"$SB_TMP/seen.tsv"
	local seen unexpected
	seen=$(grep -c . "$SB_TMP/seen.tsv")
	unexpected=$(grep -h ERROR "$SB_TMP"/client*.err | grep -v "terminat\|server closed\|connection\|canceling" | head -3)
	[ "$seen" -gt 100 ] && [ -z "$unexpected" ]
	tap $? "kill -9 of the primary after $LOAD_SECONDS s of load; the clients saw $seen changes commit${unexpected:+ ($unexpected)}"

	sb_pg pg_ctl -D "$SB_STANDBY" -w -t 60 promote >/dev/null &&
		[ "$($PS -d $db -At -c "SELECT pg_is_in_recovery()")" = f ]
	tap $? "pg_ctl promote: the standby is the primary"

	$PS -d $db -c "\\copy public.fo_seen FROM '$SB_TMP/seen.tsv'" >/dev/null
	local missing behind
	missing=$($PS -d $db -At -c "SELECT count(*) FROM public.fo_seen s WHERE NOT EXISTS
		(SELECT 1 FROM userlife.audit a WHERE a.audit_id = s.audit_id AND a.user_id = s.user_id)")
	[ "$missing" = 0 ]
	tap $? "every change the clients saw commit has its audit row on the promoted server ($missing missing of $seen)"
	behind=$($PS -d $db -At -c "SELECT count(*) FROM public.fo_seen s LEFT JOIN userlife.users u USING (user_id)
		WHERE u.version IS NULL OR u.version < s.version")
	[ "$behind" = 0 ]
	tap $? "no user is behind a version a client saw commit ($behind)"
	while IFS='|' read -r name violations; do
		[ "$violations" = 0 ]
		tap $? "after the failover: $name ($violations violations)"
	done < <($PS -d $db -At -f "$ROOT/test/load/invariants.sql")

	# delivery goes on from the promoted server
	echo "# run $run: checked at $((SECONDS - started)) s"
	PGHOST=$SB_TMP PGPORT=$SB_STANDBY_PORT PGUSER=postgres PGDATABASE=$db \
		"$WH_PROGRAM" --allow-network 127.0.0.0/8 --concurrency 8 2>"$SB_TMP/wh2.err" &
	pids+=($!)
	local done_sql="SELECT count(*) = 0 FROM userlife.webhook_deliveries WHERE partner = 'inv' AND state <> 'delivered'"
	wh_wait_for "[ \"\$($PS -d $db -At -c \"$done_sql\")\" = t ]" 90
	tap $? "userlife_webhooks against the promoted server delivered every event of the endpoint"
	$PS -d $db -At -c "SELECT e.event_id FROM userlife.events e, userlife.webhook_endpoints w
		WHERE w.partner = 'inv' AND e.partner = 'inv' AND e.event_id > w.start_event_id" >"$SB_TMP/ids"
	# what the first program held at the crash (8 requests at most, and the
	# completions it had not committed yet) may arrive twice; nothing may be missing
	python3 "$ROOT/test/webhooks/check_log.py" "$SB_TMP/hooks.log" /ok inv "$SB_TMP/ids" 16 | head -3
	tap "${PIPESTATUS[0]}" "the receiver got each of the $(grep -c . "$SB_TMP/ids") events, signed, in order per user"
	kill -TERM "${pids[@]}" 2>/dev/null
	wait 2>/dev/null
	echo "# run $run took $((SECONDS - started)) s"
	return 0
}

n=0
for run in $(seq 1 "$RUNS"); do
	(one_run "$run" "$n")
	n=$((run * per_run))
done
