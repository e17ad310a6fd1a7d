# test/webhooks/lib.sh — shared by test/scripts/webhooks_*.sh, bench/run and
# demo/run: a webhook receiver on 127.0.0.1 (test/webhooks/receiver.py) and
# the delivery program.  Source it after setting ROOT; functions only.

WH_PROGRAM="$ROOT/worker/userlife_webhooks"

# wh_free_http_port: a TCP port on 127.0.0.1 nothing listens on
wh_free_http_port() {
	local port
	for port in $(seq 18080 18999); do
		if ! ss -ltn 2>/dev/null | grep -q "[:.]$port "; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# wh_start_receiver PORT SECRETS_FILE LOG_FILE [CERT KEY]: starts the receiver,
# sets WH_RECEIVER_PID, waits until it listens
wh_start_receiver() {
	local ready="$3.ready"
	python3 "$ROOT/test/webhooks/receiver.py" "$@" >"$ready" 2>"$3.err" &
	WH_RECEIVER_PID=$!
	for _ in $(seq 1 100); do
		grep -q ready "$ready" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "# the receiver did not start: $(cat "$3.err")"
	return 1
}

# wh_secrets_json NAME=SECRET...: the receiver's secrets file content
wh_secrets_json() {
	local first=1 kv
	printf '{'
	for kv in "$@"; do
		[ $first = 1 ] || printf ', '
		first=0
		printf '"%s": "%s"' "${kv%%=*}" "${kv#*=}"
	done
	printf '}\n'
}

# wh_wait_for COMMAND SECONDS: runs COMMAND every 0.2 s until it succeeds
wh_wait_for() {
	local deadline=$((SECONDS + $2))
	while [ $SECONDS -lt $deadline ]; do
		eval "$1" && return 0
		sleep 0.2
	done
	return 1
}

# wh_explain_claim PSQL DB: one claim_webhook_deliveries(64) in DB, run with
# auto_explain on every statement (analyze, buffers, nested statements); prints
# the server's log of it (the claim's plans) on standard output
wh_explain_claim() {
	$1 -d "$2" 2>&1 >/dev/null <<'SQL'
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_nested_statements = on;
SET auto_explain.log_timing = off;
SET client_min_messages = log;
CREATE TEMP TABLE claimed AS SELECT * FROM userlife.claim_webhook_deliveries(64);
SQL
}
