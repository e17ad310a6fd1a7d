#!/usr/bin/env bash
# webhooks_failures.sh — issue 18 tests 3 to 7 with a real userlife_webhooks
# and receivers on 127.0.0.1 and ::1: failures retried on the (shortened)
# schedule, Retry-After, 410 disables, timeouts, redirects not followed, dead
# after the last delay, replay with the original webhook-id; per-user order
# while a user's event keeps failing; secret rotation with two signatures;
# the address check (loopback refused without --allow-network, a table of
# private/link-local/CGNAT/multicast addresses checked as a unit, never
# connected to); HTTPS with a test CA.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/test/webhooks/lib.sh"
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_wh_failures
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
q() { $PSQL -d $db -At -c "$1"; }
# add PARTNER URL: adds an endpoint, prints "id secret"
add() { q "SELECT e->>'endpoint_id', e->>'secret' FROM userlife.add_webhook_endpoint('$1', '$2') e" | tr '|' ' '; }
# program NAME ARGS...: starts userlife_webhooks, sets PROG
program() {
	local name=$1
	shift
	PGDATABASE=$db "$WH_PROGRAM" --poll-ms 200 "$@" 2>"$out/$name.err" &
	PROG=$!
	pids+=("$PROG")
}
stop() { kill -TERM "$1"; wait "$1"; }
# received PATH: how many requests the receivers logged for PATH
received() { cat "$out"/log* 2>/dev/null | grep -c "\"path\": \"$1\""; }

echo "1..26"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d postgres -c "ALTER DATABASE $db SET userlife.webhook_timeout = '1s'" \
	-c "ALTER DATABASE $db SET userlife.webhook_retry_schedule = '1 s, 1 s, 1 s'" >/dev/null
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" \
	-c "SELECT userlife.create_partner(p) FROM unnest(ARRAY['p3', 'p4', 'p5', 'p6', 'p7']) p" >/dev/null
port=$(wh_free_http_port)
base="http://127.0.0.1:$port"
echo '{}' >"$out/secrets.json"
wh_start_receiver "$port" "$out/secrets.json" "$out/log" || exit 1
pids+=("$WH_RECEIVER_PID")

# ---- test 3: failures, 410, timeout, redirect, dead, replay
read -r e_fail _ < <(add p3 "$base/fail/1")
read -r e_429 _ < <(add p3 "$base/retry-after/2")
read -r e_gone _ < <(add p3 "$base/gone")
read -r e_hang _ < <(add p3 "$base/hang/3")
read -r e_redir _ < <(add p3 "$base/redirect")
read -r e_dead _ < <(add p3 "$base/always500")
# ---- test 4: user a's events keep failing, user b's go out
read -r e_order _ < <(add p4 "$base/fail-user/a")
# ---- test 5: rotation
read -r e_rot s1 < <(add p5 "$base/ok/rot")
wh_secrets_json "s1=$s1" >"$out/secrets.json"

program main --allow-network 127.0.0.0/8
main=$PROG
q "SELECT userlife.register_user('p3', 'x') IS NOT NULL" >/dev/null
q "SELECT userlife.register_user('p4', 'a') IS NOT NULL" >/dev/null
q "SELECT userlife.update_user('p4', 'a', display_name => 'A2') IS NOT NULL" >/dev/null
q "SELECT userlife.register_user('p4', 'b') IS NOT NULL" >/dev/null
q "SELECT userlife.register_user('p5', 'r1') IS NOT NULL" >/dev/null
state() { q "SELECT state || '/' || attempts FROM userlife.webhook_deliveries WHERE endpoint_id = $1"; }
wh_wait_for "[ \"\$(state $e_dead)\" = dead/4 ]" 20
tap $? "always 500: dead after the last of three delays, four attempts ($(state $e_dead))"
[ "$(state $e_fail)" = delivered/2 ]
tap $? "500 then 200: delivered at the second attempt ($(state $e_fail))"
[ "$(state $e_429)" = delivered/2 ]
tap $? "429 then 200: delivered at the second attempt ($(state $e_429))"
gap=$(q "SELECT extract(epoch FROM max(at) - min(at)) FROM userlife.webhook_attempts WHERE endpoint_id = $e_429")
python3 -c "import sys; sys.exit(0 if $gap >= 1.9 else 1)"
tap $? "Retry-After: 2 lengthened the 1 s delay to 2 s (${gap}s)"
[ "$(q "SELECT NOT enabled AND disabled_reason LIKE '%410%' FROM userlife.webhook_endpoints WHERE endpoint_id = $e_gone")" = t ]
tap $? "410 Gone disabled the endpoint at once"
[ "$(q "SELECT count(*) FROM userlife.webhook_attempts WHERE endpoint_id = $e_gone")" = 1 ]
tap $? "no attempt after the 410"
[ "$(q "SELECT count(*) FROM userlife.webhook_attempts WHERE endpoint_id = $e_hang AND status IS NULL AND error LIKE 'timed out%'")" -ge 1 ]
tap $? "a receiver hanging past the timeout is a failure with the reason logged"
[ "$(q "SELECT count(*) FILTER (WHERE status = 301) = count(*) FROM userlife.webhook_attempts WHERE endpoint_id = $e_redir")" = t ] &&
	[ "$(received /ok)" = 0 ]
tap $? "301 recorded as a failure and never followed"
[ "$(q "SELECT response FROM userlife.webhook_attempts WHERE endpoint_id = $e_fail ORDER BY at LIMIT 1")" = ok ]
tap $? "the attempt log keeps the response body"
id_dead=$(q "SELECT event_id FROM userlife.webhook_deliveries WHERE endpoint_id = $e_dead")
before=$(received /fail/1)
[ "$(q "SELECT userlife.replay_webhooks('p3', $e_fail, now() - interval '1 hour')")" = 1 ] &&
	[ "$(q "SELECT userlife.replay_webhooks('p3', $e_dead, now() - interval '1 hour')")" = 1 ]
tap $? "replay_webhooks queues the delivered and the dead delivery again"
wh_wait_for "[ \"\$(state $e_fail)\" = delivered/1 ]" 10
tap $? "the replayed delivery is delivered again"
[ "$(grep '"path": "/fail/1"' "$out/log" | python3 -c 'import json,sys; print(len({json.loads(l)["id"] for l in sys.stdin}))')" = 1 ] &&
	[ "$(received /fail/1)" -gt "$before" ]
tap $? "with its original webhook-id"
dead_seen() { grep '"path": "/always500"' "$out/log" | grep -c "\"id\": \"$id_dead\""; }
wh_wait_for '[ "$(dead_seen)" -ge 5 ]' 10
tap $? "the replayed dead delivery is attempted again with its id"

# order (test 4): b's event went out while a's first kept failing; a's second only after a's first was dead
python3 - "$out/log" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"/fail-user/a"' in l]
a = sorted({int(r["id"]) for r in rows if r["external_id"] == "a"})
first_a = [r["at"] for r in rows if r["external_id"] == "a" and int(r["id"]) == a[0]]
second_a = [r["at"] for r in rows if r["external_id"] == "a" and int(r["id"]) == a[1]]
b = [r["at"] for r in rows if r["external_id"] == "b"]
ok = len(first_a) == 4 and b and b[0] < first_a[-1] and second_a and min(second_a) > max(first_a)
print("# a1 attempts %d, b first at +%.1fs, a2 first at +%.1fs after a1's first"
      % (len(first_a), b[0] - first_a[0] if b else -1, (min(second_a) - first_a[0]) if second_a else -1))
sys.exit(0 if ok else 1)
PY
tap $? "user a's second event waited until its first was dead; user b's went out meanwhile"

# ---- test 5: rotation
wh_wait_for "[ \"\$(received /ok/rot)\" = 1 ]" 10
last_valid() { grep '"path": "/ok/rot"' "$out/log" | tail -1 | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(",".join(r["valid"]) + "/" + str(r["sigs"]))'; }
[ "$(last_valid)" = s1/1 ]
tap $? "before rotation: one signature, valid with the first secret"
s2=$(q "SELECT userlife.rotate_webhook_secret('p5', $e_rot, '1 hour')")
wh_secrets_json "s1=$s1" "s2=$s2" >"$out/secrets.json"
q "SELECT userlife.update_user('p5', 'r1', display_name => 'R2') IS NOT NULL" >/dev/null
wh_wait_for "[ \"\$(received /ok/rot)\" = 2 ]" 10
[ "$(last_valid)" = s1,s2/2 ]
tap $? "during the grace: two signatures, each secret verifies"
s3=$(q "SELECT userlife.rotate_webhook_secret('p5', $e_rot, '0')")
wh_secrets_json "s1=$s1" "s2=$s2" "s3=$s3" >"$out/secrets.json"
q "SELECT userlife.update_user('p5', 'r1', display_name => 'R3') IS NOT NULL" >/dev/null
wh_wait_for "[ \"\$(received /ok/rot)\" = 3 ]" 10
[ "$(last_valid)" = s3/1 ]
tap $? "after the grace: only the new secret's signature"
stop $main
tap $? "the program exits 0 on SIGTERM"

# ---- test 6: the address check
RECEIVER_BIND=::1 wh_start_receiver "$port" "$out/secrets.json" "$out/log6" || exit 1
pids+=("$WH_RECEIVER_PID")
read -r e_v4 _ < <(add p6 "http://127.0.0.1:$port/ok/v4")
read -r e_v6 _ < <(add p6 "http://[::1]:$port/ok/v6")
read -r e_name _ < <(add p6 "http://localhost:$port/ok/name")
program ssrf --partner p6
q "SELECT userlife.register_user('p6', 's') IS NOT NULL" >/dev/null
refused() { q "SELECT count(*) FROM userlife.webhook_attempts WHERE endpoint_id = $1 AND error LIKE 'refused to connect to $2: loopback%'"; }
wh_wait_for "[ \"\$(refused $e_v4 127.0.0.1)\" -ge 1 ] && [ \"\$(refused $e_v6 ::1)\" -ge 1 ] && [ \"\$(q \"SELECT count(*) FROM userlife.webhook_attempts WHERE endpoint_id = $e_name AND error LIKE 'refused to connect to %: loopback%'\")\" -ge 1 ]" 10
tap $? "without --allow-network: 127.0.0.1, [::1] and localhost refused, the reason in the attempt log"
[ "$(received /ok/v4)" = 0 ] && [ "$(received /ok/v6)" = 0 ] && [ "$(received /ok/name)" = 0 ]
tap $? "no request reached the receivers"
stop $PROG
program allowed --partner p6 --allow-network 127.0.0.0/8 --allow-network ::1/128
wh_wait_for "[ \"\$(q \"SELECT count(*) FROM userlife.webhook_deliveries WHERE partner = 'p6' AND state = 'delivered'\")\" = 3 ]" 15
tap $? "with --allow-network 127.0.0.0/8 and ::1/128 all three are delivered"
stop $PROG
bad=0
for a in 10.0.0.1 172.16.5.4 192.168.1.1 169.254.169.254 100.64.0.1 224.0.0.251 0.0.0.0 \
	fd12::1 fe80::1 ff02::1 :: ::ffff:169.254.169.254 64:ff9b::a9fe:a9fe 2002:a9fe:a9fe::1; do
	"$WH_PROGRAM" --check-address "$a" >>"$out/check" || true
	grep -q "^$a refused: " "$out/check" || { bad=1; echo "# $a not refused"; }
done
tap $bad "private, link-local, CGNAT, multicast, unspecified and embedded-IPv4 addresses refused (unit check, no connection)"
"$WH_PROGRAM" --check-address 93.184.216.34 >/dev/null && "$WH_PROGRAM" --check-address 2606:2800::1 >/dev/null &&
	! "$WH_PROGRAM" --allow-network 10.0.0.0/8 --check-address 10.9.9.9 >/dev/null; r=$?
[ $r = 1 ]
tap $? "public addresses pass; --allow-network allows only its range"

# ---- test 7: HTTPS with a test CA
tls="$out/tls"
mkdir -p "$tls"
(
	cd "$tls" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=userlife-test-ca
	openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj /CN=other-ca
	openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1
	printf 'subjectAltName=IP:127.0.0.1\n' >ext
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext
) >"$out/openssl.log" 2>&1
tap $? "a test CA and a server certificate made with openssl"
tport=$(wh_free_http_port)
[ "$tport" = "$port" ] && tport=$((port + 1))
wh_start_receiver "$tport" "$out/secrets.json" "$out/logtls" "$tls/server.pem" "$tls/server.key" || exit 1
pids+=("$WH_RECEIVER_PID")
read -r e_tls _ < <(add p7 "https://127.0.0.1:$tport/ok/tls")
program wrongca --partner p7 --allow-network 127.0.0.0/8 --ca-file "$tls/other.pem"
q "SELECT userlife.register_user('p7', 't') IS NOT NULL" >/dev/null
wh_wait_for "[ \"\$(q \"SELECT count(*) FROM userlife.webhook_attempts WHERE endpoint_id = $e_tls AND status IS NULL\")\" -ge 1 ]" 10 &&
	[ "$(received /ok/tls)" = 0 ]
tap $? "a certificate from another CA is refused"
stop $PROG
program rightca --partner p7 --allow-network 127.0.0.0/8 --ca-file "$tls/ca.pem"
wh_wait_for "[ \"\$(state $e_tls)\" = delivered/2 ] || [ \"\$(state $e_tls)\" = delivered/3 ]" 10
tap $? "with --ca-file of the test CA it is delivered over HTTPS ($(state $e_tls))"
stop $PROG
grep -h "failed:" "$out"/*.err | head -3 | sed 's/^/# /'
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
