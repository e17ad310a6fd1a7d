#!/usr/bin/env bash
# preload.sh — the settings in a fresh session, with and without the
# library preloaded, and where the extension lives.
#
# test/run's cluster preloads userlife (session_preload_libraries, as the
# README recommends); a session started with PGOPTIONS='-c
# session_preload_libraries=' is one without it.  Without preload, SHOW
# userlife.* is unknown before the first userlife call and a misspelt
# setting is accepted: CREATE EXTENSION and ALTER EXTENSION UPDATE say so in
# a NOTICE whose ALTER SYSTEM / ALTER DATABASE commands work as printed.
# With preload, the settings exist from the start and a misspelt one is an
# error in SET and ALTER ROLE.  Then the README's placement: CREATE
# EXTENSION userlife SCHEMA extensions CASCADE puts the three extensions in
# schema extensions, and every userlife object still in schema userlife.
# Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -At -v VERBOSITY=verbose"
db=userlife_preload
db2=userlife_preload_update
db3=userlife_placement
out=$(mktemp -d)
chmod 755 "$out"
trap 'rm -rf "$out"; $BIN/psql -X -q -d postgres -c "DROP ROLE IF EXISTS userlife_preload_role" >/dev/null 2>&1' EXIT

echo "1..20"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# plain: a session without the library preloaded
plain() { PGOPTIONS='-c session_preload_libraries=' $PSQL "$@"; }

for d in $db $db2 $db3; do
	$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $d" -c "CREATE DATABASE $d" >/dev/null
done
$BIN/psql -X -q -d postgres -c "DROP ROLE IF EXISTS userlife_preload_role" \
	-c "CREATE ROLE userlife_preload_role" >/dev/null

# ---- without preload --------------------------------------------------------
plain -d $db -c "SHOW userlife.purge_rate_limit" >"$out/show.plain" 2>&1
grep -q "ERROR:  42704: unrecognized configuration parameter \"userlife.purge_rate_limit\"" "$out/show.plain"
tap $? "without preload, a fresh session does not know userlife.purge_rate_limit (42704)"

plain -d $db -c "SET userlife.purge_rate_limt = 1" -c "SHOW userlife.purge_rate_limt" >"$out/set.plain" 2>&1
[ "$(cat "$out/set.plain")" = "1" ]
tap $? "without preload, a misspelt SET userlife.purge_rate_limt is accepted as a placeholder"

plain -d $db -c "ALTER ROLE userlife_preload_role SET userlife.purge_rate_limt = 1" >"$out/role.plain" 2>&1
[ ! -s "$out/role.plain" ]
tap $? "without preload, ALTER ROLE ... SET userlife.purge_rate_limt is accepted"
$BIN/psql -X -q -d postgres -c "ALTER ROLE userlife_preload_role RESET ALL" >/dev/null

plain -d $db -c "CREATE EXTENSION userlife CASCADE" >"$out/create.plain" 2>&1
grep -q "NOTICE:  00000: library \"userlife\" is not preloaded" "$out/create.plain"
tap $? "CREATE EXTENSION without preload prints the NOTICE"
[ "$(grep -c 'is not preloaded' "$out/create.plain")" = 1 ]
tap $? "the NOTICE comes once, though CREATE EXTENSION runs every script"
grep -q "ALTER SYSTEM SET session_preload_libraries = 'userlife'; SELECT pg_reload_conf();" "$out/create.plain" &&
	grep -q "ALTER DATABASE $db SET session_preload_libraries = 'userlife';" "$out/create.plain"
tap $? "its hint gives the ALTER SYSTEM and ALTER DATABASE commands"

# the commands work as printed (ALTER SYSTEM is reset at once and never reloaded)
alter_db=$(grep -o "ALTER DATABASE [^;]*;" "$out/create.plain")
alter_sys=$(grep -o "ALTER SYSTEM SET [^;]*;" "$out/create.plain")
$PSQL -d postgres -v ON_ERROR_STOP=1 -c "$alter_db" \
	-c "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting
	     WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = '$db') AND setrole = 0" \
	>"$out/alterdb" 2>&1
[ "$(cat "$out/alterdb")" = "session_preload_libraries=userlife" ]
tap $? "the ALTER DATABASE command preloads it for the database"
$PSQL -d postgres -v ON_ERROR_STOP=1 -c "ALTER DATABASE $db RESET session_preload_libraries" >/dev/null
$PSQL -d postgres -v ON_ERROR_STOP=1 -c "$alter_sys" \
	-c "SELECT setting FROM pg_file_settings WHERE name = 'session_preload_libraries' AND sourcefile LIKE '%postgresql.auto.conf'" \
	-c "ALTER SYSTEM RESET session_preload_libraries" >"$out/altersys" 2>&1
[ "$(cat "$out/altersys")" = "userlife" ]
tap $? "the ALTER SYSTEM command is accepted and writes the setting"

plain -d $db -c "SELECT userlife.check_preload()" >"$out/check.plain" 2>&1
grep -q "^f$" "$out/check.plain"
tap $? "check_preload() is false in a session without preload"
$PSQL -d $db -c "SELECT userlife.check_preload()" >"$out/check.pre" 2>&1
[ "$(cat "$out/check.pre")" = "t" ]
tap $? "check_preload() is true, with no NOTICE, in a preloaded session"

# other preloaded libraries are kept in the command
PGOPTIONS='-c session_preload_libraries=auto_explain' $PSQL -d $db -c "SELECT userlife.check_preload()" \
	>"$out/check.other" 2>&1
grep -q "ALTER SYSTEM SET session_preload_libraries = 'auto_explain', 'userlife';" "$out/check.other"
tap $? "the command keeps the libraries already preloaded"

plain -d $db2 -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife VERSION '0.2.0' CASCADE" \
	>/dev/null 2>&1
plain -d $db2 -c "ALTER EXTENSION userlife UPDATE" >"$out/update.plain" 2>&1
grep -q "NOTICE:  00000: library \"userlife\" is not preloaded" "$out/update.plain" &&
	grep -q "ALTER DATABASE $db2 SET session_preload_libraries = 'userlife';" "$out/update.plain"
tap $? "ALTER EXTENSION UPDATE without preload prints the NOTICE"

# ---- with preload -----------------------------------------------------------
$PSQL -d $db -c "SHOW userlife.purge_rate_limit" >"$out/show.pre" 2>&1
[ "$(cat "$out/show.pre")" = "0" ]
tap $? "preloaded, SHOW userlife.purge_rate_limit works before any userlife call"

$PSQL -d $db -c "SET userlife.purge_rate_limt = 1" >"$out/set.pre" 2>&1
grep -q "ERROR:  42602: invalid configuration parameter name \"userlife.purge_rate_limt\"" "$out/set.pre"
tap $? "preloaded, SET userlife.purge_rate_limt is an error (42602, reserved prefix)"

$PSQL -d $db -c "ALTER ROLE userlife_preload_role SET userlife.purge_rate_limt = 1" >"$out/role.pre" 2>&1
grep -q "ERROR:  42602: invalid configuration parameter name \"userlife.purge_rate_limt\"" "$out/role.pre"
tap $? "preloaded, ALTER ROLE ... SET userlife.purge_rate_limt is an error"

$PSQL -d $db -c "ALTER ROLE userlife_preload_role SET userlife.purge_rate_limit = 500" \
	-c "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setrole = 'userlife_preload_role'::regrole" \
	>"$out/role.ok" 2>&1
[ "$(cat "$out/role.ok")" = "userlife.purge_rate_limit=500" ]
tap $? "preloaded, ALTER ROLE ... SET userlife.purge_rate_limit is stored"

$PSQL -d $db -c "DROP EXTENSION userlife" -c "CREATE EXTENSION userlife" >"$out/create.pre" 2>&1
! grep -q "not preloaded" "$out/create.pre"
tap $? "CREATE EXTENSION in a preloaded session prints no NOTICE"

# ---- the README's placement ---------------------------------------------------
$PSQL -d $db3 -v ON_ERROR_STOP=1 >"$out/placement" 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE SCHEMA extensions;
CREATE EXTENSION userlife SCHEMA extensions CASCADE;
SELECT string_agg(e.extname || ':' || n.nspname, ' ' ORDER BY e.extname)
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname IN ('userlife', 'pgcrypto', 'pg_trgm');
SELECT count(*) FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'userlife') AND d.deptype = 'e'
   AND p.pronamespace <> 'userlife'::regnamespace;
SET search_path = public;
SELECT partner FROM userlife.create_partner('acme');
SELECT status FROM userlife.register_user('acme', 'cust-1', 'Ada Lovelace', 'ada@example.com');
SELECT external_id FROM userlife.list_users('acme', search => 'lovel');
SELECT length(userlife.issue_api_key('acme')) > 0;
SELECT userlife.verify_signature('acme', s->>'signature', s->>'timestamp')
  FROM userlife.generate_signature('acme') AS s;
SQL
[ "$(sed -n 1p "$out/placement")" = "pg_trgm:extensions pgcrypto:extensions userlife:extensions" ]
tap $? "SCHEMA extensions CASCADE: \\dx shows userlife, pgcrypto and pg_trgm in schema extensions"
[ "$(sed -n 2p "$out/placement")" = "0" ]
tap $? "every userlife function is still in schema userlife"
[ "$(sed -n 3,7p "$out/placement" | tr '\n' ' ')" = "acme active cust-1 t t " ]
tap $? "search (pg_trgm) and signatures (pgcrypto) work from schema extensions, search_path public"

echo "# without preload, SHOW: $(cat "$out/show.plain")"
sed 's/^/# /' "$out/create.plain"
sed 's/^/# /' "$out/set.pre"

for d in $db $db2 $db3; do
	$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1
done
