#!/usr/bin/env bash
# signature_v2.sh — the body-bound signature of SPEC §5.7 against vectors
# computed outside the extension: the canonical body by Python's
# json.dumps(body, sort_keys=True, separators=(',', ':'),
# ensure_ascii=False), the HMAC by openssl (and by Python's hmac, which
# must agree).  userlife.canonical_body matches Python byte for byte on
# bodies with non-ASCII text, nested objects, escapes and numbers, under any
# session settings; enrollee_request accepts a valid signature_v2, refuses a
# tampered body, a wrong or foreign-key signature_v2 and (with
# userlife.require_body_signature on) a request without one, and changes
# nothing when it refuses.  Prints TAP.
set -uo pipefail
PSQL="${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}/psql -X -q -v ON_ERROR_STOP=1"
export PGCLIENTENCODING=UTF8
db=userlife_signature_v2
P=acme-v2
PY=python3

echo "1..28"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { $PSQL -d $db -At -c "$1" 2>&1; }
# qb BODY SQL: runs SQL (from stdin, so that :'body' is interpolated) with the psql variable body
qb() { printf '%s\n' "$2" | $PSQL -d $db -At -v body="$1" 2>&1; }
# state_of BODY SQL: the SQLSTATE SQL fails with (empty when it succeeds)
state_of() { printf '%s\n' "$2" | $PSQL -d $db -At -v VERBOSITY=sqlstate -v body="$1" 2>&1 >/dev/null | sed -nE 's/^ERROR:  ([0-9A-Z]{5}).*/\1/p' | head -1; }
ts() { date -u -d "@$(awk -v o="$1" -v n="$(date +%s.%N)" 'BEGIN { printf "%.6f", n + o }')" +%Y-%m-%dT%H:%M:%S.%6N; }
# canon BODY: Python's canonical text of a body, less signature and signature_v2
canon() {
	$PY -c '
import json, sys
body = json.loads(sys.argv[1])
body.pop("signature", None)
body.pop("signature_v2", None)
sys.stdout.write(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False))' "$1"
}
hexof() { $PY -c 'import sys; sys.stdout.write(sys.stdin.buffer.read().hex())'; }
# sign_v1 KEY TIMESTAMP / sign_v2 KEY TIMESTAMP BODY, by openssl
sign_v1() { printf '%s%s%s' "$2" "$P" sid_request | openssl dgst -sha256 -hmac "$1" -binary | base64; }
sign_v2() { printf '%s.%s' "$2" "$(canon "$3")" | openssl dgst -sha256 -hmac "$1" -binary | base64; }
py_sign_v2() {
	$PY -c '
import base64, hashlib, hmac, json, sys
key, t, body = sys.argv[1:4]
body = json.loads(body)
body.pop("signature", None)
body.pop("signature_v2", None)
msg = t + "." + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
print(base64.b64encode(hmac.new(key.encode(), msg.encode(), hashlib.sha256).digest()).decode())' "$1" "$2" "$3"
}
# with_sigs BODY KEY TIMESTAMP [V2KEY]: the body with timestamp, signature and signature_v2 set
with_sigs() {
	local b
	b=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); b["timestamp"] = sys.argv[2]; print(json.dumps(b, ensure_ascii=False))' "$1" "$3")
	$PY -c 'import json, sys; b = json.loads(sys.argv[1]); b["signature"] = sys.argv[2]; b["signature_v2"] = sys.argv[3]; print(json.dumps(b, ensure_ascii=False))' \
		"$b" "$(sign_v1 "$2" "$3")" "$(sign_v2 "${4:-$2}" "$3" "$b")"
}
# same_canon NAME BODY [SETTINGS]: canonical_body equals Python's, byte for byte
same_canon() {
	local mine theirs
	mine=$(qb "$2" "${3:-} SELECT encode(convert_to(userlife.canonical_body(:'body'), 'UTF8'), 'hex');" | tail -1)
	theirs=$(canon "$2" | hexof)
	[ -n "$mine" ] && [ "$mine" = "$theirs" ]
	tap $? "$1"
	[ "$mine" = "$theirs" ] || echo "# userlife: $mine"$'\n'"# python:   $theirs"
}

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
q "SET client_min_messages = warning; CREATE EXTENSION userlife CASCADE" >/dev/null
q "SELECT userlife.create_partner('$P')" >/dev/null
key=$(q "SELECT userlife.issue_api_key('$P')")
test_key=$(q "SELECT userlife.issue_api_key('$P', 'test')")

# ---- the canonical body against Python ----------------------------------
nested='{"profile": {"name": "Zoë Ünïcödé", "city": "東京", "emoji": "😀", "tags": ["a", {"z": null, "a": true, "m": false}, []], "empty": {}},
  "signature": "left out", "signature_v2": "left out too", "sig": {"signature": "kept: only the top level is left out"}}'
same_canon "nested objects and arrays, non-ASCII text: as Python writes them" "$nested"
keys='{"b": 1, "aa": 2, "é": 3, "z": 4, "Z": 5, "ä": 6, "日本": 7, "～": 8, "😀": 9, "a b": 10, "": 11, "A": 12, "e\u0301": 13, "ab": 14, "a": 15}'
same_canon "keys in code point order (astral after U+FF5E, short before long, empty first)" "$keys"
escapes='{"q": "quote\" backslash\\ slash/ nl\n tab\t cr\r bs\b ff\f", "c": "\u0001\u001f\u007f\u2028\u2029 \u00e9 raw é", "k\"ey\n": "\"\\\\"}'
same_canon "escapes: quote, backslash, \\n \\r \\t \\b \\f, \\u00XX below 0x20; / DEL U+2028 left alone" "$escapes"
numbers='{"ints": [0, -0, 7, -17, 123456789012345678901234567890, -98765432109876543210],
  "floats": [2.5, 2.50, -0.001, 1.0, 3.14159265358979323846, 1.5e-7, 12345.678e-2, -1.5e-10, 0.0001, 0.00001,
             1234567890123456.5, 12345678901234567.5, 0.1, 100.25, 1e-400, 5e-324, 2.2250738585072014e-308]}'
same_canon "numbers: integers as written, fractions as Python's float repr" "$numbers"
is_doc=$(qb '{"a": 1e2, "b": 1.5E3, "c": 2e-1}' "SELECT userlife.canonical_body(:'body');")
[ "$is_doc" = '{"a":100,"b":1500,"c":0.2}' ]; tap $? "an integral number in exponent notation is an integer (the documented difference; got $is_doc)"
settings="SET TimeZone = 'Pacific/Kiritimati'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
  SET extra_float_digits = -15; SET bytea_output = 'escape'; SET standard_conforming_strings = off;
  SET search_path = pg_temp, public; SET lc_monetary = 'C'; SET lc_messages = 'C';"
same_canon "the same under other TimeZone, DateStyle, IntervalStyle, extra_float_digits, bytea_output, standard_conforming_strings, search_path" \
	"$numbers" "$settings"
[ "$(state_of '[1, 2]' "SELECT userlife.canonical_body(:'body');")" = 22023 ]; tap $? "canonical_body of an array: 22023"
[ "$(state_of '{}' "SELECT userlife.canonical_body(NULL);")" = 22004 ]; tap $? "canonical_body(NULL): 22004"

t=$(ts 0)
[ "$(sign_v2 "$key" "$t" "$nested")" = "$(py_sign_v2 "$key" "$t" "$nested")" ]
tap $? "openssl and Python's hmac agree on the vectors"

# ---- enrollee_request with signature_v2 ---------------------------------
uid=$'ünï"q\\/\t-1'
q "CREATE ROLE v2_dev LOGIN IN ROLE userlife_developer" >/dev/null 2>&1
q "SELECT userlife.bind_partner('v2_dev', '$P')" >/dev/null
qb "$uid" "SELECT userlife.register_user('$P', :'body', 'Ünï')" >/dev/null
req() {  # req FLAGS_JSON: a request body (without signatures) for the user above
	$PY -c 'import json, sys; b = {"partner_id": sys.argv[1], "user_id": sys.argv[2], "environment": "production", "email": "öps@partner.test"}; b.update(json.loads(sys.argv[3])); print(json.dumps(b, ensure_ascii=False))' "$P" "$uid" "$1"
}
version() { qb "$uid" "SELECT version FROM userlife.get_user('$P', :'body');"; }
call() { printf '%s\n' "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body')->>'status';" | $PSQL -d $db -At -v body="$1" 2>&1; }
detail_of() { printf '%s\n' "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');" | $PSQL -d $db -At -v VERBOSITY=verbose -v body="$1" 2>&1 | sed -nE 's/^DETAIL:  //p'; }

good=$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)")
[ "$(call "$good")" = inactive ]; tap $? "a request with an openssl-signed signature_v2 is applied"
[ "$(qb "$uid" "SELECT actor || '/' || action FROM userlife.audit WHERE partner = '$P' AND external_id = :'body' ORDER BY audit_id DESC LIMIT 1;")" = "öps@partner.test/status" ]
tap $? "audited with the body's non-ASCII email as actor"
[ "$(call "$good")" != inactive ] && [ "$(detail_of "$good")" = "The signature was already used." ]
tap $? "the same request again: replayed"

v=$(version)
orig=$(with_sigs "$(req '{"active": true}')" "$key" "$(ts 0)")
tampered=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); b["active"] = False; b["delete"] = True; print(json.dumps(b, ensure_ascii=False))' "$orig")
[ "$(state_of "$tampered" "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');")" = UL003 ]
tap $? "tampered body (flags changed, signature and signature_v2 kept): UL003"
[[ "$(detail_of "$tampered")" == *"signature_v2 is wrong"* ]]; tap $? "its errdetail says the signature_v2 is wrong"
[ "$(call "$orig")" = active ]; tap $? "the refused attempts did not burn the signature: the untampered body still passes"
other_user=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); b["user_id"] = "someone-else"; print(json.dumps(b, ensure_ascii=False))' \
	"$(with_sigs "$(req '{"delete": true}')" "$key" "$(ts 0)")")
[ "$(state_of "$other_user" "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');")" = UL003 ]
tap $? "the signed body pointed at another user: UL003"
foreign=$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)" "$test_key")
[ "$(state_of "$foreign" "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');")" = UL003 ]
tap $? "signature_v2 made with the test key on a production request: UL003"
badb64=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); b["signature_v2"] = "not*base64!"; print(json.dumps(b))' "$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)")")
[ "$(state_of "$badb64" "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');")" = 22023 ]; tap $? "signature_v2 not base64: 22023"
short=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); b["signature_v2"] = "c2hvcnQ="; print(json.dumps(b))' "$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)")")
[ "$(state_of "$short" "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');")" = UL003 ]; tap $? "signature_v2 of the wrong length: UL003"
notstr=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); b["signature_v2"] = 42; print(json.dumps(b))' "$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)")")
[ "$(state_of "$notstr" "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');")" = 22023 ]; tap $? "signature_v2 not a string: 22023"
[ "$(version)" = "$((v + 1))" ]; tap $? "the refused requests changed nothing (only the one accepted did)"

# the body as sent may order keys, space and escape as it likes
signed=$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)")
respelled=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); print(json.dumps(dict(reversed(list(b.items()))), indent=3, ensure_ascii=True))' "$signed")
[ "$(call "$respelled")" = inactive ]; tap $? "keys reordered, indented, non-ASCII sent as \\u escapes: same canonical body, accepted"

# ---- userlife.require_body_signature ------------------------------------
v1only=$($PY -c 'import json, sys; b = json.loads(sys.argv[1]); del b["signature_v2"]; print(json.dumps(b, ensure_ascii=False))' "$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)")")
# (a call loads the library, which defines the setting)
[ "$(q "SELECT userlife.canonical_body('{}'); SHOW userlife.require_body_signature" | tail -1)" = off ]
tap $? "userlife.require_body_signature is off by default"
[ "$(state_of "" "SET ROLE v2_dev; SELECT userlife.canonical_body('{}'); SET userlife.require_body_signature = off;")" = 42501 ]
tap $? "only a superuser sets it (42501)"
q "ALTER DATABASE $db SET userlife.require_body_signature = on" >/dev/null
[ "$(state_of "$v1only" "SET ROLE v2_dev; SELECT userlife.enrollee_request(:'body');")" = UL003 ]; tap $? "when on, a v1-only request: UL003"
[[ "$(detail_of "$v1only")" == *"no signature_v2"* ]]; tap $? "its errdetail says signature_v2 is missing"
[ "$(call "$(with_sigs "$(req '{"active": false}')" "$key" "$(ts 0)")")" = inactive ]; tap $? "when on, a request with a valid signature_v2 is applied"
q "ALTER DATABASE $db RESET userlife.require_body_signature" >/dev/null
[ "$(call "$v1only")" = inactive ]; tap $? "when off again, the v1-only request is accepted (it was never used)"

q "DROP OWNED BY v2_dev" >/dev/null 2>&1
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
$PSQL -d postgres -c "DROP ROLE v2_dev" >/dev/null 2>&1
