#!/usr/bin/env bash
# house.sh — the house rules of issue 16 that a machine can check, read from
# the sources in src/ and from the objects test/run has just built there
# (built here, with the same PG_CONFIG, when they are missing):
#   1. no function is longer than 100 lines (pgindent layout: the body
#      opens with { and closes with } in column 1; counted from the line
#      with the function's name);
#   2. every global symbol an object defines is used by another object,
#      except the SQL-callable functions (those with a pg_finfo_ companion)
#      and what the server looks up by name (pg_finfo_*, Pg_magic_func,
#      _PG_init);
#   3. every setting is defined by its file's one XxxInit, which _PG_init
#      calls, and _PG_init reserves the prefix after the last of them.
# No server is needed.  Prints TAP.  HOUSE_SRC names another source folder
# (a scratch copy, to see the checks fail).
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SRC=${HOUSE_SRC:-$ROOT/src}
MAX_LINES=100

echo "1..5"
n=0
failed=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }

# ---- 1. function length ----------------------------------------------------
# functions FILE...: "file:line name length" for every function definition
functions() {
	awk '
	FNR == 1 { name = ""; body = 0 }
	# a name in column 1 and an open parenthesis, not a statement (PG_FUNCTION_INFO_V1)
	!body && /^[A-Za-z_][A-Za-z0-9_]*\(/ && !/;[ \t]*$/ { name = $0; sub(/\(.*/, "", name); start = FNR; next }
	!body && name != "" && /^\{/ { body = 1; next }
	# anything else in column 1 before the { ends the candidate (a typedef, a prototype)
	!body && /^[^ \t]/ { name = "" }
	body && /^\}/ { print FILENAME ":" start, name, FNR - start + 1; body = 0; name = "" }
	' "$@"
}
functions "$SRC"/*.c >/tmp/house.$$.fn
long=$(awk -v max=$MAX_LINES '$3 > max' /tmp/house.$$.fn)
[ -s /tmp/house.$$.fn ] && [ -z "$long" ]
tap $? "no function in src/*.c is longer than $MAX_LINES lines ($(wc -l </tmp/house.$$.fn) functions read, the longest $(sort -k3,3n /tmp/house.$$.fn | tail -1 | awk '{ print $2, $3 }'))"
[ -z "$long" ] || sed "s|^$SRC/||; s/^/# too long: /" <<<"$long"

# ---- 2. exported symbols ---------------------------------------------------
# The objects test/run built (with assertions: a function that other files
# call only in Assert()s is used) when they are newer than their sources;
# else every file compiled here, into a scratch folder, so that the tree's
# objects and build flags stay as they are.
objs=()
fresh=1
grep -q -- -DUSE_ASSERT_CHECKING "$ROOT/.build-flags" 2>/dev/null || fresh=0
[ "$SRC" = "$ROOT/src" ] || fresh=0
for c in "$SRC"/*.c; do [ "${c%.c}.o" -nt "$c" ] || fresh=0; done
for h in "$SRC"/*.h; do for c in "$SRC"/*.c; do [ "${c%.c}.o" -nt "$h" ] || fresh=0; done; done
if [ $fresh = 1 ]; then
	for c in "$SRC"/*.c; do objs+=("${c%.c}.o"); done
else
	mkdir -p /tmp/house.$$.obj
	for c in "$SRC"/*.c; do
		o="/tmp/house.$$.obj/$(basename "${c%.c}").o"
		cc -c -O0 -w -DUSE_ASSERT_CHECKING -I"$SRC" -I"$("$BIN/pg_config" --includedir-server)" \
			-o "$o" "$c" && objs+=("$o")
	done
fi
missing=0
[ ${#objs[@]} -eq "$(ls "$SRC"/*.c | wc -l)" ] || missing=1
: >/tmp/house.$$.def
: >/tmp/house.$$.use
for o in "${objs[@]}"; do
	[ -f "$o" ] || continue
	nm -P --defined-only --extern-only "$o" | awk -v f="${o##*/}" '{ print $1, f }' >>/tmp/house.$$.def
	nm -P --undefined-only "$o" | awk -v f="${o##*/}" '{ print $1, f }' >>/tmp/house.$$.use
done
# a symbol is used when an object other than its own has it undefined
unused=$(awk '
	FILENAME ~ /def$/ { def[$1] = $2; next }
	{ if (($1 in def) && def[$1] != $2) used[$1] = 1 }
	END {
		for (s in def) {
			if (s in used || s ~ /^pg_finfo_/ || s == "Pg_magic_func" || s == "_PG_init")
				continue
			if (("pg_finfo_" s) in def)
				continue
			print def[s], s
		}
	}' /tmp/house.$$.def /tmp/house.$$.use | sort)
[ $missing = 0 ] && [ -s /tmp/house.$$.def ] && [ -z "$unused" ]
tap $? "every symbol an object in src/ exports is used by another one, or is SQL-callable ($(wc -l </tmp/house.$$.def) exported)"
[ $missing = 0 ] || echo "# some file did not compile"
[ -z "$unused" ] || sed 's/^/# used only in its own file: /' <<<"$unused"

# ---- 3. settings -----------------------------------------------------------
# definers: "file function" for every DefineCustom*Variable call
awk '
	FNR == 1 { fn = "" }
	/^[A-Za-z_][A-Za-z0-9_]*\(/ && !/;[ \t]*$/ { fn = $0; sub(/\(.*/, "", fn) }
	/DefineCustom[A-Za-z]*Variable\(/ { f = FILENAME; sub(/.*\//, "", f); print f, fn }
	' "$SRC"/*.c | sort -u >/tmp/house.$$.guc
bad=$(awk '$2 !~ /Init$/' /tmp/house.$$.guc)
twice=$(awk '{ c[$1]++ } END { for (f in c) if (c[f] > 1) print f }' /tmp/house.$$.guc)
[ -s /tmp/house.$$.guc ] && [ -z "$bad" ] && [ -z "$twice" ]
tap $? "every setting is defined in its file's one XxxInit ($(awk '{ print $2 }' /tmp/house.$$.guc | tr '\n' ' '| sed 's/ $//'))"
[ -z "$bad" ] || sed 's/^/# defined outside an Init: /' <<<"$bad"
[ -z "$twice" ] || sed 's/^/# more than one function defines settings in /' <<<"$twice"

# _PG_init's body: each of those Inits called, then the prefix reserved
pginit=$(awk '/^_PG_init\(/ { s = 1 } s { print } s && /^\}/ { exit }' "$SRC"/*.c)
notcalled=""
for init in $(awk '{ print $2 }' /tmp/house.$$.guc); do
	grep -Eq "^[[:space:]]*$init\(\);" <<<"$pginit" || notcalled="$notcalled $init"
done
[ -n "$pginit" ] && [ -z "$notcalled" ]
tap $? "_PG_init calls every Init that defines settings"
[ -z "$notcalled" ] || echo "# not called by _PG_init:$notcalled"

last_init=$(grep -nE '^[[:space:]]*[A-Za-z]+Init\(\);' <<<"$pginit" | tail -1 | cut -d: -f1)
reserve=$(grep -nE '^[[:space:]]*MarkGUCPrefixReserved\("userlife"\);' <<<"$pginit" | tail -1 | cut -d: -f1)
[ -n "$reserve" ] && [ -n "$last_init" ] && [ "$reserve" -gt "$last_init" ]
tap $? "_PG_init reserves the prefix userlife after the last Init"

rm -rf /tmp/house.$$.*
exit $failed
