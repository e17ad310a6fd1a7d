#!/usr/bin/env bash
# router.sh — userlife_router over real shards: two shard clusters with two
# shard databases each (4 partitions of the PL/Proxy cluster userlife) and
# a router database.  Through the router: 1,000 users over 50 partners
# land on their partners' shards only; every partner function answers what
# the shard answers directly; SQLSTATEs arrive; tenancy holds; purge and
# maintenance totals are the shards' sums; a stopped shard cluster fails
# its partners' calls clearly and leaves the others working.  Also: the
# router offers every partner-first function of userlife with the same
# signature, and PL/Proxy's validators are not PUBLIC.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export USERLIFE_ROOT=$ROOT
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
. "$ROOT/test/lib.sh"
PG_BIN=$BIN

echo "1..33"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# same LABEL A B: A and B are equal text; else both are printed
same() {
	[ "$2" = "$3" ]
	tap $? "$1"
	[ "$2" = "$3" ] || { echo "# router: $2" | head -5; echo "# shard:  $3" | head -5; }
}

# PL/Proxy from Debian (copied into a private server tree)
userlife_plproxy >/dev/null 2>&1 || { echo "Bail out! PL/Proxy could not be installed"; exit 1; }

TMP=$(mktemp -d /tmp/userlife_router.XXXXXX)
chmod 755 "$TMP"
chown postgres: "$TMP"
# start_cluster NAME PORT: a cluster on a unix socket in $TMP/NAME
start_cluster() {
	runuser -u postgres -- "$BIN/initdb" -D "$TMP/$1" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null
	runuser -u postgres -- "$BIN/pg_ctl" -D "$TMP/$1" -l "$TMP/$1.log" -w -t 60 \
		-o "-k $TMP -p $2 -c listen_addresses='' -c log_min_messages=warning -c session_preload_libraries=userlife -c max_connections=60" \
		start >/dev/null
}
stop_cluster() { runuser -u postgres -- "$BIN/pg_ctl" -D "$TMP/$1" -m fast -w stop >/dev/null 2>&1; }
cleanup() {
	stop_cluster a
	stop_cluster b
	[ -z "${USERLIFE_KEEP_TMP:-}" ] && rm -rf "$TMP"
}
trap cleanup EXIT
base=$(userlife_free_port)
PA=$base
PB=$((base + 1))
start_cluster a "$PA"
start_cluster b "$PB"

PSQL="$BIN/psql -X -q -At -v ON_ERROR_STOP=1 -h $TMP -U postgres"
ra() { $PSQL -p "$PA" -d router "$@"; }         # the router, as postgres
port_of() { if [ $(($1 % 2)) = 0 ]; then echo "$PA"; else echo "$PB"; fi; }
sh() { local k=$1; shift; $PSQL -p "$(port_of "$k")" -d "shard$k" "$@"; } # shard k directly
# state: the SQLSTATE (or "ok") of a statement, run through the router as role $1
state() {
	local out
	out=$($BIN/psql -X -q -At -h "$TMP" -p "$PA" -d router -U "$1" -c '\set VERBOSITY sqlstate' -c "$2" 2>&1 >/dev/null)
	if [ -z "$out" ]; then echo ok; else echo "$out" | sed -n 's/^.*ERROR: *\([0-9A-Z]\{5\}\)$/\1/p' | head -1; fi
}

# ---- shards and router -----------------------------------------------------------
for k in 0 1 2 3; do
	$PSQL -p "$(port_of $k)" -d postgres -c "CREATE DATABASE shard$k" &&
		sh $k -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE"
done
# login roles, with their group roles, on every cluster (the router's too)
for p in "$PA" "$PB"; do
	$PSQL -p "$p" -d postgres -c "CREATE ROLE alice LOGIN IN ROLE userlife_admin" \
		-c "CREATE ROLE rita LOGIN IN ROLE userlife_reader"
done
$PSQL -p "$PA" -d postgres -c "CREATE DATABASE router"
conn() { # conn K: the connect string of partition K
	echo "host=$TMP port=$(port_of "$1") dbname=shard$1 connect_timeout=5 keepalives=1 keepalives_idle=30 keepalives_interval=10 keepalives_count=3 options=''-c DateStyle=ISO -c IntervalStyle=postgres -c statement_timeout=55s''"
}
ra -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife_router CASCADE" &&
	ra -c "CREATE SERVER userlife FOREIGN DATA WRAPPER plproxy OPTIONS (
			connection_lifetime '1800', query_timeout '60',
			p0 '$(conn 0)', p1 '$(conn 1)', p2 '$(conn 2)', p3 '$(conn 3)')" \
		-c "CREATE USER MAPPING FOR PUBLIC SERVER userlife" \
		-c "GRANT USAGE ON FOREIGN SERVER userlife TO userlife_reader, userlife_developer,
			userlife_compliance, userlife_admin, userlife_owner"
rc=$?
tap $rc "CREATE EXTENSION userlife_router CASCADE, CREATE SERVER userlife with 4 partitions over 2 clusters"
[ "$rc" = 0 ] || { echo "Bail out! no router to test"; exit 1; }

# ---- the router's functions against userlife's -------------------------------------
sigs() { # the partner functions, with argument defaults and result
	"$@" -c "SELECT p.proname || '(' || pg_catalog.pg_get_function_arguments(p.oid) || ') -> ' ||
			pg_catalog.pg_get_function_result(p.oid)
		FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'userlife'::regnamespace
		 AND (p.proargnames[1] = 'partner' OR p.proname IN ('bind_partner', 'unbind_partner', 'purge_expired', 'run_maintenance'))
		ORDER BY 1"
}
on_shard=$(sigs sh 0)
# the router's own: the hash, the partition, the per-shard functions
on_router=$(sigs ra | grep -v -e '^partner_hash(' -e '^shard_of(' -e '^[a-z_]*_per_shard(')
missing=$(comm -23 <(echo "$on_shard") <(echo "$on_router"))
[ -n "$on_shard" ] && [ -z "$missing" ]
tap $? "every partner-first function of userlife is on the router, same arguments, defaults and result ($(echo "$on_shard" | wc -l))"
[ -n "$missing" ] && echo "$missing" | sed 's/^/# not on the router: /'
extra=$(comm -13 <(echo "$on_shard") <(echo "$on_router"))
[ -z "$extra" ]
tap $? "and no other partner function (but partner_hash, shard_of and the *_per_shard ones)"
[ -n "$extra" ] && echo "$extra" | sed 's/^/# only on the router: /'
# a partner function added to userlife by a later update script (and one
# renamed, one dropped) is what the generated router script then has
gen=$TMP/gen
mkdir "$gen"
cp "$ROOT"/userlife.control "$ROOT"/userlife_router.control "$ROOT"/userlife--*.sql "$gen/"
last=$(ls "$gen"/userlife--*--*.sql | sort -V | tail -1)
cat >>"$last" <<'SQL'
CREATE FUNCTION userlife.added_later(partner text, n integer DEFAULT 3, since timestamptz DEFAULT pg_catalog.now())
	RETURNS SETOF userlife.users LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'userlife_added_later';
ALTER FUNCTION userlife.disable_user(text, text, text) RENAME TO deactivate_user;
DROP FUNCTION userlife.enable_user(text, text, text);
SQL
perl "$ROOT/router/generate.pl" "$gen" >"$gen/out.sql" &&
	grep -q "^CREATE FUNCTION userlife.added_later(partner text, n integer DEFAULT 3, since timestamptz DEFAULT pg_catalog.now())$" "$gen/out.sql" &&
	grep -q "^CREATE FUNCTION userlife.deactivate_user(partner text" "$gen/out.sql" &&
	! grep -q "userlife.enable_user(" "$gen/out.sql" && ! grep -q "userlife.disable_user(" "$gen/out.sql"
tap $? "router/generate.pl follows userlife's update scripts: a function added, renamed, dropped"
documented=$(sed -n '/<!-- router:begin -->/,/<!-- router:end -->/p' "$ROOT/doc/reference.md" |
	sed -n 's/^#### \(userlife\..*)\) *$/\1/p' | sort)
own=$(ra -c "SELECT 'userlife.' || p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')'
	FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'userlife'::regnamespace
	 AND (p.proname IN ('partner_hash', 'shard_of') OR p.proname LIKE '%\_per\_shard')" | sort)
same "doc/reference.md lists the router's own functions (between router:begin and router:end)" "$own" "$documented"
[ "$(ra -c "SELECT pg_catalog.has_function_privilege('alice', 'plproxy_fdw_validator(text[], oid)', 'EXECUTE'),
		pg_catalog.has_function_privilege('alice', 'plproxy_validator(oid)', 'EXECUTE')")" = "f|f" ]
tap $? "PL/Proxy's validators are not executable by PUBLIC"
[ "$(state alice "SELECT plproxy_fdw_validator(ARRAY['test'], 'pg_catalog.pg_foreign_server'::regclass)")" = 42501 ]
tap $? "calling plproxy_fdw_validator directly is refused (42501), no crash"

# ---- partners and 1,000 users ---------------------------------------------------------
t0=$(date +%s.%N)
ra -c "SELECT count(userlife.create_partner('partner' || i)) FROM pg_catalog.generate_series(1, 50) i" >/dev/null
counts=$(for k in 0 1 2 3; do sh $k -c "SELECT count(*) FROM userlife.partners"; done | tr '\n' ' ')
[ "$counts" = "50 50 50 50 " ]
tap $? "create_partner through the router reaches every shard ($counts)"
ra -c "SELECT count(userlife.register_user('partner' || (i % 50 + 1), 'user' || i,
		display_name => 'User ' || i, email => 'user' || i || '@example.com', tags => ARRAY['t' || (i % 3)]))
	FROM pg_catalog.generate_series(1, 1000) i" >/dev/null
t1=$(date +%s.%N)
echo "# 50 partners and 1,000 registrations through the router: $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s"
total=0
wrong=0
empty=0
for k in 0 1 2 3; do
	c=$(sh $k -c "SELECT count(*) FROM userlife.users")
	total=$((total + c))
	[ "$c" -gt 0 ] || empty=$((empty + 1))
	partners=$(sh $k -c "SELECT DISTINCT partner FROM userlife.users ORDER BY 1" | tr '\n' ' ')
	expected=$(ra -c "SELECT 'partner' || i FROM pg_catalog.generate_series(1, 50) i
		WHERE userlife.shard_of('partner' || i) = $k ORDER BY 1" | tr '\n' ' ')
	[ "$partners" = "$expected" ] || wrong=$((wrong + 1))
	echo "# shard$k: $c users of $(echo "$partners" | wc -w) partners"
done
[ "$total" = 1000 ] && [ "$empty" = 0 ]
tap $? "the 1,000 users are on the shards, every shard holds some ($total)"
[ "$wrong" = 0 ]
tap $? "every shard holds exactly the partners shard_of() gives it"

# ---- every partner function through the router, against the shard directly -------------
# partner1's partition, and an external_id of its users
P=partner1
K=$(ra -c "SELECT userlife.shard_of('$P')")
U=$(sh "$K" -c "SELECT external_id FROM userlife.users WHERE partner = '$P' ORDER BY external_id LIMIT 1")
U2=$(sh "$K" -c "SELECT external_id FROM userlife.users WHERE partner = '$P' ORDER BY external_id OFFSET 1 LIMIT 1")
# reads: the same text on both sides
reads=(
	"SELECT userlife.get_user('$P', '$U')"
	"SELECT array_agg(u ORDER BY u.created_at, u.user_id) FROM userlife.list_users('$P', search => 'user', page_size => 50) u"
	"SELECT userlife.count_users('$P', tag => 't1')"
	"SELECT userlife.users_page('$P', 5, 0)"
	"SELECT userlife.user_summary('$P', '$U')"
	"SELECT array_agg(h ORDER BY h.audit_id) FROM userlife.user_history('$P', '$U') h"
	"SELECT userlife.verify_audit('$P', '$U')"
	"SELECT count(*) FROM userlife.verify_partner_audit('$P')"
	"SELECT userlife.verify_signature('$P', 'bm90IGEgc2lnbmF0dXJl', '2026-01-01T00:00:00Z')"
)
bad=0
for q in "${reads[@]}"; do
	a=$(ra -c "$q" 2>&1)
	b=$(sh "$K" -c "$q" 2>&1)
	if [ "$a" != "$b" ]; then bad=$((bad + 1)); echo "# differs: $q"; fi
done
[ "$bad" = 0 ]
tap $? "${#reads[@]} reading functions return through the router what they return on the shard"

# writes: what the router returns is what the shard then holds
row() { sh "$K" -c "SELECT userlife.get_user('$P', '$1')"; }
bad=0
check_row() { # check_row ID CALL: the routed CALL returns the user's row as the shard has it
	local a b
	a=$(ra -c "SELECT $2" 2>&1)
	b=$(row "$1")
	if [ "$a" != "$b" ]; then bad=$((bad + 1)); echo "# differs: $2"; echo "#   router: $a"; echo "#   shard:  $b"; fi
}
check_row new1 "userlife.register_user('$P', 'new1', email => 'new1@example.com', metadata => '{\"a\": 1}')"
check_row new1 "userlife.update_user('$P', 'new1', display_name => 'New One', metadata => '{\"b\": 2}')"
check_row new1 "userlife.mark_verified('$P', 'new1', '{\"document\": \"passport\"}')"
check_row new1 "userlife.set_status('$P', 'new1', 'suspended', 'review', until => now() + interval '1 day 2 hours')"
check_row new1 "userlife.enable_user('$P', 'new1')"
check_row new1 "userlife.disable_user('$P', 'new1', 'paused')"
check_row new1 "userlife.set_fraud_flag('$P', 'new1', true, 'chargeback')"
check_row new1 "userlife.set_legal_hold('$P', 'new1', true, 'court order')"
check_row new1 "userlife.set_legal_hold('$P', 'new1', false, 'released')"
check_row new1 "userlife.delete_user('$P', 'new1', 'asked')"
check_row new1 "userlife.restore_user('$P', 'new1', 'mistake')"
[ "$bad" = 0 ]
tap $? "11 writing functions returning users return the row the shard then holds"

job=$(ra -c "SELECT (j).job_id || '|' || (j).outcome || '|' || (j).failure_reason FROM (SELECT userlife.record_job('$P', 'new1', 'document', 'passed', '{\"x\": 1}') j) s")
[ "$job" = "$(sh "$K" -c "SELECT job_id || '|' || outcome || '|' || failure_reason FROM userlife.jobs WHERE job_id = ${job%%|*}")" ] &&
	[ "${job#*|}" = "failed|fraud_suspected" ]
tap $? "record_job: the stored job, failed as the user is fraudulent ($job)"
same "delete_users: one row per id, in order" \
	"$(ra -c "SELECT string_agg(external_id || ':' || result, ',') FROM userlife.delete_users('$P', ARRAY['$U2', 'nobody', '$U2'])")" \
	"$U2:deleted,nobody:not_found,$U2:already_deleted"
same "allow_reenroll, then the shard's user allows re-enrollment" \
	"$(ra -c "SELECT userlife.allow_reenroll('$P', '$U2')")|$(sh "$K" -c "SELECT allow_new_enroll FROM userlife.users WHERE partner = '$P' AND external_id = '$U2'")" "t|t"
same "import_users: created and error rows, and the users on the shard" \
	"$(ra -c "SELECT string_agg(item || ':' || result || ':' || coalesce(sqlstate, ''), ',' ORDER BY item)
		FROM userlife.import_users('$P', '[{\"external_id\": \"imp1\"}, {\"external_id\": \"imp2\", \"email\": \"bad\"}]')")|$(sh "$K" -c "SELECT count(*) FROM userlife.users WHERE partner = '$P' AND external_id LIKE 'imp%'")" \
	"1:created:,2:error:22023|1"
same "erase_user, and the shard no longer has the user" \
	"$(ra -c "SELECT userlife.erase_user('$P', 'imp1', 'right to erasure')")|$(sh "$K" -c "SELECT count(*) FROM userlife.users WHERE partner = '$P' AND external_id = 'imp1'")" "t|0"
key=$(ra -c "SELECT userlife.issue_api_key('$P', 'test')")
sig=$(ra -c "SELECT userlife.generate_signature('$P', environment => 'test')")
same "issue_api_key and generate_signature through the router; the shard verifies the signature" \
	"$([ ${#key} -ge 40 ] && echo key)|$(sh "$K" -c "SELECT userlife.verify_signature('$P', '$sig'::jsonb ->> 'signature', '$sig'::jsonb ->> 'timestamp', 'test')")" "key|t"
ep=$(ra -c "SELECT userlife.add_webhook_endpoint('$P', 'https://hooks.example.com/u') ->> 'endpoint_id'")
same "the webhook functions: add, rotate, set, replay, remove reach the partner's shard" \
	"$(ra -c "SELECT left(userlife.rotate_webhook_secret('$P', $ep), 6)")|$(ra -c "SELECT userlife.replay_webhooks('$P', $ep, now() - interval '1 hour') >= 0")|$(ra -c "SELECT userlife.set_webhook_endpoint('$P', $ep, false) ->> 'enabled'")|$(sh "$K" -c "SELECT count(*) FROM userlife.webhook_endpoints WHERE endpoint_id = $ep AND NOT enabled")|$(ra -c "SELECT userlife.remove_webhook_endpoint('$P', $ep)")" \
	"whsec_|t|false|1|t"
# every routed function was called above (or in the SQLSTATE checks below)
routed=$(ra -c "SELECT DISTINCT proname FROM pg_catalog.pg_proc WHERE pronamespace = 'userlife'::regnamespace
	AND prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'plproxy') AND proname NOT LIKE '%\_per\_shard' ORDER BY 1")
unprobed=$(for f in $routed; do grep -q "userlife\.$f(" "$0" || echo "$f"; done)
[ -n "$routed" ] && [ -z "$unprobed" ]
tap $? "this test calls every routed function ($(echo "$routed" | wc -w))"
[ -n "$unprobed" ] && echo "$unprobed" | sed 's/^/# not called here: /'

# ---- SQLSTATEs, messages, tenancy --------------------------------------------------------
ra -c "SELECT userlife.set_status('$P', '$U', 'blocked', 'fraud')" >/dev/null
got="$(state postgres "SELECT userlife.set_status('$P', '$U', 'inactive')") $(state postgres "SELECT userlife.update_user('$P', '$U', display_name => 'x', expected_version => 999)") $(state postgres "SELECT userlife.get_user('$P', 'nobody')") $(state postgres "SELECT userlife.get_user('$P', NULL)") $(state postgres "SELECT userlife.get_user(NULL, '$U')") $(state postgres "SELECT userlife.register_user('$P', '$U')") $(state rita "SELECT userlife.register_user('$P', 'r1')")"
same "UL001 UL002 P0002 22004 22004 23505 42501 arrive through the router" "$got" "UL001 UL002 P0002 22004 22004 23505 42501"
msg=$(ra -c "SELECT userlife.get_user('$P', 'nobody')" 2>&1)
echo "$msg" | grep -q "REMOTE ERROR: .*nobody"
tap $? "the shard's message comes with PL/Proxy's prefix: $(echo "$msg" | head -1)"

Q=partner2
[ "$(ra -c "SELECT userlife.shard_of('$Q') <> userlife.shard_of('$P')")" = t ] || Q=partner3
ra -c "SELECT userlife.bind_partner('alice', '$P')" -c "SELECT userlife.bind_partner('rita', '$P')" >/dev/null
bound=$(for k in 0 1 2 3; do sh $k -c "SELECT count(*) FROM userlife.partner_bindings WHERE role_name IN ('alice', 'rita') AND partner = '$P'"; done | tr '\n' ' ')
[ "$bound" = "2 2 2 2 " ]
tap $? "bind_partner through the router binds on every shard ($bound)"
got="$(state alice "SELECT userlife.get_user('$P', '$U2')") $(state alice "SELECT userlife.get_user('$Q', 'user1')") $(state alice "SELECT userlife.count_users('$Q')") $(state alice "SELECT userlife.set_status('$Q', 'user2', 'inactive')")"
same "a role bound to $P reaches it, not $Q on another shard" "$got" "ok 42501 42501 42501"
ra -c "SELECT userlife.unbind_partner('rita', '$P')" >/dev/null
same "unbind_partner through the router unbinds on every shard" \
	"$(for k in 0 1 2 3; do sh $k -c "SELECT count(*) FROM userlife.partner_bindings WHERE role_name = 'rita'"; done | tr '\n' ' ')$(state rita "SELECT userlife.get_user('$P', '$U2')")" "0 0 0 0 42501"
same "session settings of the caller do not change what is sent (DateStyle SQL, DMY; IntervalStyle sql_standard)" \
	"$(ra -c "SET DateStyle = 'SQL, DMY'" -c "SET IntervalStyle = 'sql_standard'" \
		-c "SELECT (userlife.set_status('$P', 'new1', 'suspended', 'again', until => '2031-02-03 04:05:06+00')).suspended_until = '2031-02-03 04:05:06+00'::timestamptz")|$(sh "$K" -c "SELECT suspended_until = '2031-02-03 04:05:06+00' FROM userlife.users WHERE partner = '$P' AND external_id = 'new1'")" "t|t"

# ---- purge and maintenance totals -----------------------------------------------------------
# users of partners on every shard deleted with a retention of a second
# (user j belongs to partner j % 50 + 1)
ra -c "SELECT userlife.set_retention('partner' || i, '1 second') FROM pg_catalog.generate_series(1, 50) i" >/dev/null
tomb() { for k in 0 1 2 3; do sh $k -c "SELECT count(*) FROM userlife.tombstones"; done | awk '{ s += $1 } END { print s }'; }
before=$(tomb)
ra -c "SELECT count(userlife.delete_user('partner' || i, 'user' || (i + 149))) FROM pg_catalog.generate_series(1, 40) i" >/dev/null
sleep 1.2
purged=$(ra -c "SELECT userlife.purge_expired()")
after=$(tomb)
[ "$purged" -gt 0 ] && [ "$purged" = $((after - before)) ]
tap $? "purge_expired through the router returns the sum over the shards ($purged = $after - $before)"
ra -c "SELECT count(userlife.delete_user('partner' || i, 'user' || (i + 249))) FROM pg_catalog.generate_series(1, 30) i" >/dev/null
sleep 1.2
before=$(tomb)
counts=$(ra -c "SELECT userlife.run_maintenance()")
after=$(tomb)
users_purged=$(ra -c "SELECT '$counts'::jsonb ->> 'users_purged'")
[ "$users_purged" -gt 0 ] && [ "$users_purged" = $((after - before)) ] &&
	[ "$(ra -c "SELECT (SELECT count(*) FROM jsonb_object_keys('$counts')) >= 9")" = t ]
tap $? "run_maintenance through the router returns each count summed over the shards (users_purged $users_purged)"
[ "$(ra -c "SELECT count(*) FROM userlife.run_maintenance_per_shard(10)")" = 4 ]
tap $? "run_maintenance_per_shard: one row per shard database"

# ---- one shard cluster down -------------------------------------------------------------------
stop_cluster b
PB_PART=$(ra -c "SELECT 'partner' || i FROM pg_catalog.generate_series(1, 50) i WHERE userlife.shard_of('partner' || i) % 2 = 1 LIMIT 1")
PA_PART=$(ra -c "SELECT 'partner' || i FROM pg_catalog.generate_series(1, 50) i WHERE userlife.shard_of('partner' || i) % 2 = 0 LIMIT 1")
msg=$(ra -c "SELECT userlife.get_user('$PB_PART', 'user1')" 2>&1)
echo "$msg" | grep -q "PL/Proxy function userlife.get_user(2): \[shard[13]\] .*\(connect\|No such file\|closed\)"
tap $? "with cluster b stopped, a partner there gets a clear error: $(echo "$msg" | head -1 | cut -c1-160)"
ok=$(ra -c "SELECT userlife.count_users('$PA_PART') > 0" -c "SELECT (userlife.register_user('$PA_PART', 'during-outage')).status" 2>&1 | tr '\n' ' ')
[ "$ok" = "t active " ]
tap $? "partners on cluster a keep working ($ok)"
msg=$(ra -c "SELECT userlife.purge_expired()" 2>&1)
echo "$msg" | grep -q "PL/Proxy function userlife.purge_expired_per_shard(1): \[shard[13]\]"
tap $? "purge_expired fails naming the shard that is down"

crashes=$(grep -E "terminated by signal|TRAP:" "$TMP/a.log" "$TMP/b.log")
[ -z "$crashes" ]
tap $? "no backend crashed"
