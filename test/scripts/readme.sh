#!/usr/bin/env bash
# readme.sh — the SQL the README tells a DBA to run works as written: the
# quick start (in a fresh database), the monitoring queries, the upgrade
# statements and the archive check.  Each block or query is taken from
# README.md itself, so an edit that breaks one fails here.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
README="$ROOT/README.md"
PSQL="$BIN/psql -X -q -At -v ON_ERROR_STOP=1"
db=userlife_readme
out=$(mktemp -d)
chmod 755 "$out"
trap 'rm -rf "$out"' EXIT

echo "1..4"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# block SECTION: the first ```sql block after the heading SECTION
block() {
	awk -v h="$1" '$0 == h { s = 1; next } s && /^```sql$/ { b = 1; next } b && /^```$/ { exit } b { print }' "$README"
}

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null

block "## Quick start" >"$out/quick.sql"
$PSQL -d $db -f "$out/quick.sql" >"$out/quick.out" 2>&1
rc=$?
[ $rc = 0 ] && [ "$(tail -1 "$out/quick.out")" = "t" ]
tap $? "the quick start runs in a fresh database and its chain verifies"
[ $rc = 0 ] || sed 's/^/# /' "$out/quick.out"

# the monitoring table: one query per row, between backquotes after "| what |"
sed -n '/^### Monitoring/,/^### /p' "$README" | grep -o '`SELECT [^`]*`' | tr -d '`' |
	grep -v "cron\." >"$out/monitor.sql"
$PSQL -d $db -f "$out/monitor.sql" >"$out/monitor.out" 2>&1
tap $? "the monitoring queries run ($(wc -l <"$out/monitor.sql") of them; the pg_cron one needs the cron database)"
sed 's/^/# /' "$out/monitor.out" | grep ERROR

block "### Upgrade" >"$out/upgrade.sql"
$PSQL -d $db -f "$out/upgrade.sql" >"$out/upgrade.out" 2>&1
[ "$(tail -1 "$out/upgrade.out")" = "0.3.0" ]
tap $? "the upgrade statements run (nothing to update) and report the version"

block "### Dropping the extension and archiving the audit" >"$out/archive.sql"
$PSQL -d $db -f "$out/archive.sql" >"$out/archive.out" 2>&1
[ $? = 0 ] && [ ! -s "$out/archive.out" ]
tap $? "the archive check finds no chain that fails"

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
