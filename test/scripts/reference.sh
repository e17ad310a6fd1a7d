#!/usr/bin/env bash
# reference.sh — doc/reference.md lists exactly what the extension defines:
# its functions (the "#### userlife.name(identity arguments)" headings
# between the functions:begin and functions:end markers) against pg_proc
# for schema userlife, both ways; the settings table against pg_settings;
# the tables and views against pg_class.  A function in one and not the
# other fails, and is printed.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DOC="$ROOT/doc/reference.md"
PSQL="$BIN/psql -X -q -At -v ON_ERROR_STOP=1"
db=userlife_reference
out=$(mktemp -d)
chmod 755 "$out"
trap 'rm -rf "$out"' EXIT

echo "1..7"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# same A B LABEL: sorted files A (documented) and B (defined) are equal; else print both sides
same() {
	local only_doc only_db
	only_doc=$(comm -23 "$1" "$2")
	only_db=$(comm -13 "$1" "$2")
	[ -z "$only_doc" ] && [ -z "$only_db" ]
	tap $? "$3"
	[ -n "$only_doc" ] && echo "$only_doc" | sed 's/^/# documented, not defined: /'
	[ -n "$only_db" ] && echo "$only_db" | sed 's/^/# defined, not documented: /'
	return 0
}

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" >/dev/null

# ---- functions -------------------------------------------------------------
sed -n '/<!-- functions:begin -->/,/<!-- functions:end -->/p' "$DOC" 2>/dev/null |
	sed -n 's/^#### \(userlife\..*)\) *$/\1/p' >"$out/doc.raw"
sort "$out/doc.raw" >"$out/doc"
# identity arguments as format_type writes them, with timestamptz spelt short
$PSQL -d $db >"$out/db.raw" <<'SQL'
SET search_path = pg_catalog;
SELECT 'userlife.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
  FROM pg_proc p WHERE p.pronamespace = 'userlife'::regnamespace;
SQL
sed 's/timestamp with time zone/timestamptz/g' "$out/db.raw" | sort >"$out/db"

[ "$(wc -l <"$out/doc")" -ge 40 ]
tap $? "doc/reference.md lists the functions between its markers ($(wc -l <"$out/doc") headings)"
comm -13 "$out/doc" "$out/db" >"$out/undocumented"
[ ! -s "$out/undocumented" ]
tap $? "every function of schema userlife in pg_proc is in doc/reference.md"
sed 's/^/# defined, not documented: /' "$out/undocumented"
comm -23 "$out/doc" "$out/db" >"$out/undefined"
[ ! -s "$out/undefined" ]
tap $? "every function in doc/reference.md is in pg_proc, with these arguments"
sed 's/^/# documented, not defined: /' "$out/undefined"
[ -z "$(uniq -d "$out/doc")" ]
tap $? "no function is listed twice"

# ---- settings, tables, views -------------------------------------------------
sed -n '/^## Settings/,/^## /p' "$DOC" | sed -n 's/^| `\(userlife\.[a-z_]*\)` |.*/\1/p' | sort >"$out/doc.settings"
$PSQL -d $db -c "SELECT name FROM pg_settings WHERE name LIKE 'userlife.%' ORDER BY 1" >"$out/db.settings"
sort -o "$out/db.settings" "$out/db.settings"
same "$out/doc.settings" "$out/db.settings" "the settings table lists every userlife.* setting, and only those"

sed -n '/^## Tables/,/^## /p' "$DOC" | sed -n 's/^| `\([a-z_]*\)` |.*/\1/p' | sort >"$out/doc.tables"
$PSQL -d $db -c "SELECT relname FROM pg_class WHERE relnamespace = 'userlife'::regnamespace AND relkind = 'r'" |
	sort >"$out/db.tables"
same "$out/doc.tables" "$out/db.tables" "the tables table lists every table of schema userlife, and only those"

sed -n '/^## Views/,/^## /p' "$DOC" | sed -n 's/^| `userlife\.\([a-z_]*\)` |.*/\1/p' | sort >"$out/doc.views"
$PSQL -d $db -c "SELECT relname FROM pg_class WHERE relnamespace = 'userlife'::regnamespace AND relkind = 'v'" |
	sort >"$out/db.views"
same "$out/doc.views" "$out/db.views" "the views table lists every view of schema userlife, and only those"

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
