#!/usr/bin/env bash
# priv_upgrade.sh — what ALTER EXTENSION userlife UPDATE from 0.2.0 does to
# partners and bindings written before it (by 0.2.0's library: they are
# inserted directly, the library of this tree would refuse them): a
# retention over 100 years (which 0.2.0 accepted, and under which every
# deletion failed) is brought
# down to 100 years and deletion works; a binding gets the name of its role
# and keeps working, a binding of a role already dropped is removed; the
# partners rows become visible per binding.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=ul_priv_upgrade
cleanup() {
	$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
	$PSQL -d postgres -c "DROP ROLE IF EXISTS ul_pu_kept" -c "DROP ROLE IF EXISTS ul_pu_gone" >/dev/null 2>&1
}
trap cleanup EXIT

n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
q() { $PSQL -d $db -At -c "$1" 2>&1; }
echo "1..11"

cleanup
$PSQL -d postgres -c "CREATE DATABASE $db" -c "CREATE ROLE ul_pu_kept LOGIN" -c "CREATE ROLE ul_pu_gone LOGIN" >/dev/null &&
	$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife VERSION '0.2.0' CASCADE" \
		-c "GRANT userlife_developer TO ul_pu_kept" \
		-c "INSERT INTO userlife.partners (partner, retention) VALUES ('forever', '300000 years'), ('normal', '10 days')" \
		-c "INSERT INTO userlife.partner_bindings (role, partner) VALUES ('ul_pu_kept', 'normal'), ('ul_pu_gone', 'forever')" \
		-c "SELECT userlife.register_user('forever', 'f-' || i) FROM generate_series(1, 3) i" >/dev/null &&
	$PSQL -d postgres -c "DROP ROLE ul_pu_gone" >/dev/null
tap $? "at 0.2.0: a partner with a 300000-year retention, two bindings, the role of one dropped"
# this library on the 0.2.0 schema, before the update: the cap applies
r=$(q "SELECT (userlife.delete_user('forever', 'f-1')).purge_after = ((now() AT TIME ZONE 'UTC') + interval '100 years') AT TIME ZONE 'UTC'")
tap $([ "$r" = t ] && echo 0 || echo 1) "before the update, deletion under the stored 300000 years is capped at 100 years ($r)"

$PSQL -d $db -c "ALTER EXTENSION userlife UPDATE" >/dev/null
tap $? "ALTER EXTENSION userlife UPDATE"
r=$(q "SELECT partner || '=' || retention FROM userlife.partners ORDER BY 1")
tap $([ "$r" = $'forever=100 years\nnormal=10 days' ] && echo 0 || echo 1) "the retention is brought down to 100 years, the other kept (${r//$'\n'/, })"
r=$(q "SELECT (userlife.delete_user('forever', 'f-3')).purge_after = ((now() AT TIME ZONE 'UTC') + interval '100 years') AT TIME ZONE 'UTC'")
tap $([ "$r" = t ] && echo 0 || echo 1) "deletion works: purge_after 100 years ahead ($r)"
r=$(q "SELECT string_agg(result, ',') FROM userlife.delete_users('forever', ARRAY['f-2'])")
tap $([ "$r" = deleted ] && echo 0 || echo 1) "delete_users too ($r)"
r=$(q "SELECT userlife.set_retention('forever', '100 years 1 day')")
tap $([[ "$r" == *"longer than 100 years"* ]] && echo 0 || echo 1) "a longer one is refused from now on"
r=$(q "SELECT string_agg(role::text || ':' || role_name || ':' || partner, ',') FROM userlife.partner_bindings")
tap $([ "$r" = "ul_pu_kept:ul_pu_kept:normal" ] && echo 0 || echo 1) "the binding of the dropped role is gone, the other carries its role's name ($r)"
r=$($PSQL -d $db -At -c "SET ROLE ul_pu_kept" -c "SELECT (userlife.register_user('normal', 'n-1')).external_id" 2>&1)
tap $([ "$r" = n-1 ] && echo 0 || echo 1) "the kept binding still works ($r)"
r=$($PSQL -d $db -At -c "SET ROLE ul_pu_kept" -c "SELECT string_agg(partner, ',') FROM userlife.partners" 2>&1)
tap $([ "$r" = normal ] && echo 0 || echo 1) "the bound role sees its partner only ($r)"
r=$(q "SELECT count(*) FROM pg_constraint WHERE conname = 'partners_retention_at_most_100_years' AND convalidated")
tap $([ "$r" = 1 ] && echo 0 || echo 1) "the 100-year constraint holds, validated ($r)"
