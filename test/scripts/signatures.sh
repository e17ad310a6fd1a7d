#!/usr/bin/env bash
# signatures.sh — request signatures against vectors computed outside the
# extension with openssl (base64(HMAC-SHA256(key, timestamp || partner ||
# "sid_request"))): valid ones verify, one-character changes, stale and
# future timestamps, replays, the wrong environment and revoked keys fail,
# malformed input is 22023; the four enrollee request variants end to end;
# no role but the extension owner reads a key secret.  Prints TAP.
set -uo pipefail
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_signatures
P=acme-sig

echo "1..44"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { $PSQL -d $db -At -c "$1" 2>&1; }
is() { local got; got=$(q "$1"); [ "$got" = "$2" ]; tap $? "$3 (got: $got)"; }
# sqlstate_of SQL: the SQLSTATE the statement fails with, or "ok"
sqlstate_of() { $PSQL -d $db -At -v VERBOSITY=sqlstate -c "$1" 2>&1 >/dev/null | sed -nE 's/^ERROR:  ([0-9A-Z]{5}).*/\1/p' | head -1; }
# ts OFFSET_SECONDS: an ISO 8601 UTC timestamp that far from now
ts() { date -u -d "@$(awk -v o="$1" -v n="$(date +%s.%N)" 'BEGIN { printf "%.6f", n + o }')" +%Y-%m-%dT%H:%M:%S.%6NZ; }
# sign KEY TIMESTAMP PARTNER: the signature a partner's client library computes
sign() { printf '%s%s%s' "$2" "$3" sid_request | openssl dgst -sha256 -hmac "$1" -binary | base64; }
verify() { q "SELECT userlife.verify_signature('$1', '$2', '$3'${4:+, '$4'})"; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
q "SET client_min_messages = warning; CREATE EXTENSION userlife CASCADE" >/dev/null
q "SELECT userlife.create_partner('$P')" >/dev/null
q "SELECT userlife.create_partner('acme-sih')" >/dev/null
key=$(q "SELECT userlife.issue_api_key('$P')")
test_key=$(q "SELECT userlife.issue_api_key('$P', 'test')")
[ ${#key} -eq 44 ] && [ "$(printf '%s' "$key" | base64 -d | wc -c)" -eq 32 ]
tap $? "issue_api_key returns 32 random bytes in base64"

t=$(ts 0); s=$(sign "$key" "$t" "$P")
[ "$(verify $P "$s" "$t")" = t ]; tap $? "an openssl-computed signature verifies"
t=$(ts 1); gen=$(q "SELECT userlife.generate_signature('$P', '$t')->>'signature'")
[ "$gen" = "$(sign "$key" "$t" "$P")" ]; tap $? "generate_signature matches openssl"

# one-character changes
t=$(ts -2); s=$(sign "$key" "$t" "$P")
t2="${t%?Z}$(( (${t: -2:1} + 1) % 10 ))Z"
[ "$(verify $P "$s" "$t2")" = f ]; tap $? "one character changed in the timestamp fails ($t2)"
[ "$(verify acme-sih "$s" "$t")" = f ]; tap $? "one character changed in the partner fails"
first=${s:0:1}; [ "$first" = A ] && other=B || other=A
[ "$(verify $P "$other${s:1}" "$t")" = f ]; tap $? "one character changed in the signature fails"
[ "$(verify $P "$s" "$t")" = t ]; tap $? "the unchanged signature still verifies"

# time window, both directions
t=$(ts -360); [ "$(verify $P "$(sign "$key" "$t" "$P")" "$t")" = f ]; tap $? "6 minutes old: expired"
t=$(ts 360); [ "$(verify $P "$(sign "$key" "$t" "$P")" "$t")" = f ]; tap $? "6 minutes ahead: refused"
t=$(ts -240); [ "$(verify $P "$(sign "$key" "$t" "$P")" "$t")" = t ]; tap $? "4 minutes old: within userlife.signature_max_age"
t=$(ts 240); [ "$(verify $P "$(sign "$key" "$t" "$P")" "$t")" = t ]; tap $? "4 minutes ahead: within the window"
t=$(ts -100); s=$(sign "$key" "$t" "$P")
[ "$(q "SET userlife.signature_max_age = '1 min'; SELECT userlife.verify_signature('$P', '$s', '$t')" | tail -1)" = f ]
tap $? "a smaller userlife.signature_max_age shrinks the window"

# replays
t=$(ts -5); s=$(sign "$key" "$t" "$P")
[ "$(verify $P "$s" "$t")" = t ]; tap $? "first use accepted"
[ "$(verify $P "$s" "$t")" = f ]; tap $? "the same signature again: replay refused"
t=$(ts -6); s=$(sign "$key" "$t" "$P")
[ "$(q "SET userlife.reject_replayed_signatures = off; SELECT userlife.verify_signature('$P', '$s', '$t'); SELECT userlife.verify_signature('$P', '$s', '$t')" | paste -sd,)" = "t,t" ]
tap $? "with userlife.reject_replayed_signatures off, replays pass"

# environments and key rotation
t=$(ts -7); s=$(sign "$key" "$t" "$P")
[ "$(verify $P "$s" "$t" test)" = f ]; tap $? "a production signature fails in the test environment"
t=$(ts -8); [ "$(verify $P "$(sign "$test_key" "$t" "$P")" "$t" test)" = t ]; tap $? "a test-key signature verifies in test"
t=$(ts -9); [ "$(verify $P "$(sign "$test_key" "$t" "$P")" "$t")" = f ]; tap $? "a test-key signature fails in production"
key2=$(q "SELECT userlife.issue_api_key('$P', grace => '1 hour')")
t=$(ts -10); [ "$(verify $P "$(sign "$key" "$t" "$P")" "$t")" = t ]; tap $? "the old key still works during its grace"
t=$(ts -11); [ "$(verify $P "$(sign "$key2" "$t" "$P")" "$t")" = t ]; tap $? "the new key works at once"
key3=$(q "SELECT userlife.issue_api_key('$P', grace => '0 seconds')")
t=$(ts -12); [ "$(verify $P "$(sign "$key" "$t" "$P")" "$t")" = f ]; tap $? "after the grace the old key is revoked"
t=$(ts -13); [ "$(verify $P "$(sign "$key2" "$t" "$P")" "$t")" = f ]; tap $? "so is the second key"
t=$(ts -14); [ "$(verify $P "$(sign "$key3" "$t" "$P")" "$t")" = t ]; tap $? "the newest key verifies"
key=$key3

# malformed input
[ "$(sqlstate_of "SELECT userlife.verify_signature('$P', 'not*base64!', '$(ts 0)')")" = 22023 ]; tap $? "bad base64: 22023"
[ "$(sqlstate_of "SELECT userlife.verify_signature('$P', '$s', 'yesterday')")" = 22023 ]; tap $? "not an ISO 8601 timestamp: 22023"
[ "$(sqlstate_of "SELECT userlife.verify_signature('$P', '$s', '2026-13-45T99:00:00Z')")" = 22023 ]; tap $? "an impossible date: 22023"
[ "$(sqlstate_of "SELECT userlife.verify_signature('$P', '$s', '$(ts 0)', 'staging')")" = 22023 ]; tap $? "unknown environment: 22023"
[ "$(verify $P "c2hvcnQ=" "$(ts 0)")" = f ]; tap $? "valid base64 of the wrong length is just wrong"

# enrollee requests, signed with openssl
q "SELECT userlife.register_user('$P', 'enr-1', 'Eve', 'eve@example.com')" >/dev/null
body() {  # body FLAGS_JSON [TIMESTAMP] [SIGNATURE]
	local t=${2:-$(ts 0)}
	local s=${3:-$(sign "$key" "$t" "$P")}
	printf '{"partner_id": "%s", "user_id": "enr-1", "signature": "%s", "timestamp": "%s", "environment": "production", "email": "ops@partner.test", %s}' "$P" "$s" "$t" "$1"
}
last_audit() { q "SELECT a.action || '/' || a.actor || '/' || e.event_type FROM userlife.audit a JOIN userlife.events e USING (audit_id) WHERE a.partner = '$P' AND a.external_id = 'enr-1' ORDER BY a.audit_id DESC LIMIT 1"; }
is "SELECT userlife.enrollee_request('$(body '"active": false')') - 'user_id'" \
	'{"status": "inactive", "success": true, "is_fraudulent": false, "allow_new_enroll": false}' "active: false disables the user"
[ "$(last_audit)" = "status/ops@partner.test/user.status.updated" ]; tap $? "audited as status by the body's email, with its event"
is "SELECT userlife.enrollee_request('$(body '"is_fraudulent": true')')->>'is_fraudulent'" true "is_fraudulent: true flags"
is "SELECT userlife.enrollee_request('$(body '"is_fraudulent": false')') - 'user_id'" \
	'{"status": "inactive", "success": true, "is_fraudulent": false, "allow_new_enroll": false}' "is_fraudulent: false clears the flag"
[ "$(last_audit)" = "fraud_flag/ops@partner.test/user.status.updated" ]; tap $? "audited as fraud_flag, with its event"
is "SELECT userlife.enrollee_request('$(body '"delete": true')')->>'status'" deleted "delete: true soft-deletes"
[ "$(last_audit)" = "delete/ops@partner.test/user.data.updated" ]; tap $? "audited as delete, with its event"
is "SELECT userlife.enrollee_request('$(body '"allow_new_enroll": true')')->>'allow_new_enroll'" true "allow_new_enroll: true allows re-enrollment"
[ "$(last_audit)" = "update/ops@partner.test/user.data.updated" ]; tap $? "audited as update, with its event"
is "SELECT status || '/' || enrollment_count FROM userlife.register_user('$P', 'enr-1', 'Eve Again')" "active/2" "and the user can enroll again"

# rejected requests change nothing
v=$(q "SELECT version FROM userlife.get_user('$P', 'enr-1')")
t=$(ts -400)
[ "$(sqlstate_of "SELECT userlife.enrollee_request('$(body '"active": false' "$t")')")" = UL003 ]; tap $? "expired request: UL003"
t=$(ts 0)
[ "$(sqlstate_of "SELECT userlife.enrollee_request('$(body '"active": false' "$t" "$(sign "$key" "$t" acme-sih)")')")" = UL003 ]; tap $? "wrong signature: UL003"
good=$(body '"is_fraudulent": false')
q "SELECT userlife.enrollee_request('$good')" >/dev/null
[ "$(sqlstate_of "SELECT userlife.enrollee_request('$(sed 's/"is_fraudulent": false/"active": false/' <<<"$good")')")" = UL003 ]; tap $? "replayed signature: UL003"
[ "$(q "SELECT version FROM userlife.get_user('$P', 'enr-1')")" = "$v" ]; tap $? "nothing changed by the rejected requests"
[ "$(sqlstate_of "SELECT userlife.enrollee_request('$(body '"activ": false')')")" = 22023 ]; tap $? "unknown key: 22023"

# only the extension owner reads a secret
roles=""
for r in reader developer compliance admin owner; do
	q "CREATE ROLE sig_$r LOGIN IN ROLE userlife_$r" >/dev/null
	q "SELECT userlife.bind_partner('sig_$r', '$P')" >/dev/null
	roles="$roles sig_$r"
done
leaks=0
for r in $roles; do
	for rel in $(q "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'userlife'::regnamespace AND c.relkind IN ('r', 'v', 'm')"); do
		out=$($PSQL -d $db -At -c "SET ROLE $r; SELECT x::text FROM userlife.$rel x" 2>/dev/null)
		if grep -qF -e "$key" -e "$test_key" -e "$key2" <<<"$out"; then
			echo "# $r reads a secret in userlife.$rel"
			leaks=$((leaks + 1))
		fi
	done
done
owner_reads=$(q "SELECT count(*) FROM userlife.partner_keys WHERE secret = '$key'")
[ "$leaks" = 0 ] && [ "$owner_reads" = 1 ]
tap $? "no role but the extension owner reads a key secret, in any table or view ($leaks leaks)"

q "DROP OWNED BY $(echo $roles | tr ' ' ',')" >/dev/null 2>&1
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
for r in $roles; do $PSQL -d postgres -c "DROP ROLE $r" >/dev/null 2>&1; done
