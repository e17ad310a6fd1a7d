#!/usr/bin/env bash
# relcache_session.sh — what a backend read from a relation's definition
# and keeps (chain.c: the audit table's hash version; audit.c and search.c:
# the column numbers of users) is read again when that relation changes,
# in the session that changed it and in another one that had used userlife
# before (a dblink connection kept open throughout): ALTER EXTENSION
# userlife UPDATE from 0.2.0 to 0.3.0 (audit gains hash_version: new rows
# are version 2), then a tracked column of users dropped and added back
# (same relation, a new column number: the audit row and the search
# document must read the new one), then DROP EXTENSION and CREATE
# EXTENSION VERSION '0.1.0' (user_search is gone: no document is written).
# catalog.c's relcache callback resets them (CatalogForgetOnChange).
# Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
db=userlife_relcache_session
out=$(mktemp -d)
chmod 755 "$out"
trap 'rm -rf "$out"' EXIT

echo "1..11"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# is LABEL VALUE: the step LABEL printed "LABEL: ok VALUE"
is() { grep -qxF "$1: ok $2" "$out/log"; }

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$BIN/psql -X -q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION dblink" \
	-c "CREATE EXTENSION userlife VERSION '0.2.0' CASCADE" >/dev/null

# S1 is this psql session, S2 a dblink connection; try() reports each step
# as "label: ok result" or "label: SQLSTATE message" instead of stopping
$BIN/psql -X -q -At -d $db >"$out/log" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.try(label text, sql text) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE r text;
BEGIN
	EXECUTE sql INTO r;
	RETURN label || ': ok ' || coalesce(r, '<null>');
EXCEPTION WHEN OTHERS THEN
	RETURN label || ': ' || SQLSTATE || ' ' || SQLERRM;
END \$f\$;
CREATE FUNCTION pg_temp.s2(sql text) RETURNS text LANGUAGE sql AS
	\$f\$ SELECT string_agg(x, ',') FROM public.dblink('s2', sql) AS t(x text) \$f\$;
SELECT public.dblink_connect('s2', 'dbname=$db host=${PGHOST:-/var/run/postgresql} port=${PGPORT:-5432} user=postgres');
-- the last audit row of a user: its action, hash version and changed
-- fields (plpgsql: the column hash_version comes with 0.3.0)
CREATE FUNCTION pg_temp.last_audit(ext text) RETURNS text LANGUAGE plpgsql AS \$f\$
BEGIN
	RETURN (SELECT a.action || ' v' || a.hash_version || ' ' || a.changed_fields::text
	          FROM userlife.audit a WHERE a.partner = 'rc' AND a.external_id = ext
	         ORDER BY a.audit_id DESC LIMIT 1);
END \$f\$;

-- both sessions write at 0.2.0: each caches hash version 1 and the columns
SELECT pg_temp.try('setup', \$\$SELECT partner FROM userlife.create_partner('rc')\$\$);
SELECT pg_temp.try('s1 at 0.2.0', \$\$SELECT (userlife.register_user('rc', 'a', 'Alpha')).version::text\$\$);
SELECT pg_temp.try('s2 at 0.2.0', \$\$SELECT pg_temp.s2('SELECT (userlife.register_user(''rc'', ''b'', ''Beta'')).version::text')\$\$);

ALTER EXTENSION userlife UPDATE TO '0.3.0';

SELECT pg_temp.try('s1 update', \$\$SELECT (userlife.update_user('rc', 'a', 'Alpha 2')).version::text\$\$);
SELECT pg_temp.try('s1 audit', \$\$SELECT pg_temp.last_audit('a')\$\$);
SELECT pg_temp.try('s2 update', \$\$SELECT pg_temp.s2('SELECT (userlife.update_user(''rc'', ''b'', ''Beta 2'')).version::text')\$\$);
SELECT pg_temp.try('s2 audit', \$\$SELECT pg_temp.last_audit('b')\$\$);

-- display_name gets a new column number in the same relation
ALTER TABLE userlife.users DROP COLUMN display_name;
ALTER TABLE userlife.users ADD COLUMN display_name text;

SELECT pg_temp.try('s1 rename', \$\$SELECT (userlife.update_user('rc', 'a', 'Renamed One')).display_name\$\$);
SELECT pg_temp.try('s1 rename audit', \$\$SELECT pg_temp.last_audit('a')\$\$);
SELECT pg_temp.try('s1 search', \$\$SELECT string_agg(external_id, ',') FROM userlife.list_users('rc', search => 'renamed one')\$\$);
SELECT pg_temp.try('s2 rename', \$\$SELECT pg_temp.s2('SELECT (userlife.update_user(''rc'', ''b'', ''Renamed Two'')).display_name')\$\$);
SELECT pg_temp.try('s2 rename audit', \$\$SELECT pg_temp.last_audit('b')\$\$);
SELECT pg_temp.try('s2 search', \$\$SELECT pg_temp.s2('SELECT string_agg(external_id, '','') FROM userlife.list_users(''rc'', search => ''renamed two'')')\$\$);
SELECT pg_temp.try('chains', \$\$SELECT userlife.verify_audit('rc', 'a')::text || ',' || userlife.verify_audit('rc', 'b')::text\$\$);

-- reinstalled at 0.1.0, which has no search documents: user_search is gone
DROP EXTENSION userlife;
CREATE EXTENSION userlife VERSION '0.1.0';
SELECT pg_temp.try('setup 0.1.0', \$\$SELECT partner FROM userlife.create_partner('rc')\$\$);
SELECT pg_temp.try('s1 at 0.1.0', \$\$SELECT (userlife.register_user('rc', 'c', 'Gamma')).version::text\$\$);
SELECT pg_temp.try('s1 search at 0.1.0', \$\$SELECT string_agg(external_id, ',') FROM userlife.list_users('rc', search => 'gamma')\$\$);
SELECT pg_temp.try('s2 at 0.1.0', \$\$SELECT pg_temp.s2('SELECT (userlife.register_user(''rc'', ''d'', ''Delta'')).version::text')\$\$);
SQL
sed 's/^/# /' "$out/log"

is "s1 at 0.2.0" 1 && is "s2 at 0.2.0" 1
tap $? "both sessions wrote at 0.2.0"
is "s1 update" 2 && is "s1 audit" "update v2 {display_name}"
tap $? "after ALTER EXTENSION UPDATE to 0.3.0 in the same session, its audit rows are hash version 2"
is "s2 update" 2 && is "s2 audit" "update v2 {display_name}"
tap $? "another session that wrote at 0.2.0 writes hash version 2 after the update"
is "s1 rename" "Renamed One" && is "s1 rename audit" "update v2 {display_name}"
tap $? "display_name dropped and added back: the session's audit row records the change"
is "s1 search" a
tap $? "and its search document has the new name"
is "s2 rename" "Renamed Two" && is "s2 rename audit" "update v2 {display_name}"
tap $? "the other session's audit row records its change too"
is "s2 search" b
tap $? "and its search document has the new name"
is chains "true,true"
tap $? "both chains verify"
is "s1 at 0.1.0" 1 && is "s1 search at 0.1.0" c
tap $? "after DROP EXTENSION and CREATE EXTENSION VERSION '0.1.0' (no user_search), the session registers and finds a user"
is "s2 at 0.1.0" 1
tap $? "and so does the other session"
! grep -qE "XX000|: [0-9A-Z]{5} " "$out/log"
tap $? "no step failed"

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
