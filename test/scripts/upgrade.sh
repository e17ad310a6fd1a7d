#!/usr/bin/env bash
# upgrade.sh — every version that has an update path to the default version
# (pg_extension_update_paths) is installed with CREATE EXTENSION ... VERSION
# and brought up with ALTER EXTENSION userlife UPDATE; the result must define
# exactly what a fresh install does (test/upgrade/catalog.sql, compared with
# diff), and users registered before the update are found by search before
# and after it (0.2.0 moved the search documents into a table of their own,
# filled by the update; until then this library searches the columns).  Before the per-version checks, the comparison itself is checked:
# two fresh installs compare equal, and a changed object is noticed.
# Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
CATALOG="$USERLIFE_ROOT/test/upgrade/catalog.sql"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

# fresh DB [VERSION]: a new database with userlife installed (at VERSION)
fresh() {
	$PSQL -d postgres -c "DROP DATABASE IF EXISTS $1" >/dev/null 2>&1
	$PSQL -d postgres -c "CREATE DATABASE $1" >/dev/null &&
	$PSQL -d "$1" -c "SET client_min_messages = warning" \
		-c "CREATE EXTENSION userlife ${2:+VERSION '$2'} CASCADE" >/dev/null
}
describe() { $PSQL -d "$1" -At -f "$CATALOG" >"$out/$1.catalog"; }

default=$($PSQL -d postgres -At -c "SELECT default_version FROM pg_available_extensions WHERE name = 'userlife'")
fresh ul_upgrade_ref || { echo "1..1"; echo "not ok 1 - fresh install of $default"; exit 1; }
sources=$($PSQL -d ul_upgrade_ref -At -c "SELECT source FROM pg_extension_update_paths('userlife')
                                          WHERE target = '$default' AND path IS NOT NULL ORDER BY source")
echo "1..$((3 + 8 * $(grep -c . <<<"$sources")))"
echo "# default version $default; versions with an update path to it: ${sources:-none}"

describe ul_upgrade_ref
tap $([ "$(grep -c . "$out/ul_upgrade_ref.catalog")" -gt 100 ] && echo 0 || echo 1) \
	"the description of a fresh install lists its objects ($(wc -l <"$out/ul_upgrade_ref.catalog") lines)"
fresh ul_upgrade_again && describe ul_upgrade_again
diff -u "$out/ul_upgrade_ref.catalog" "$out/ul_upgrade_again.catalog" >"$out/again.diff"
tap $? "two fresh installs describe the same"
$PSQL -d ul_upgrade_again -c "ALTER INDEX userlife.audit_user_idx RENAME TO audit_user_idx_renamed" \
	-c "COMMENT ON FUNCTION userlife.get_user(text, text) IS 'changed'" >/dev/null
describe ul_upgrade_again
changed=$(diff "$out/ul_upgrade_ref.catalog" "$out/ul_upgrade_again.catalog" | grep -c '^[<>]')
tap $([ "$changed" -ge 4 ] && echo 0 || echo 1) "a renamed index and a changed comment are noticed ($changed lines differ)"

# search_finds_kept DB LABEL: list_users finds the three users registered
# before the update by a part of their names
search_finds_kept() {
	local found
	found=$($PSQL -d "$1" -At -c "SELECT string_agg(external_id, ',' ORDER BY external_id)
	                               FROM userlife.list_users('up', search => 'KEPT NAME')" 2>&1)
	tap $([ "$found" = "before-1,before-2,before-3" ] && echo 0 || echo 1) "$2 ($found)"
}

for v in $sources; do
	db="ul_upgrade_from_$(tr -c 'a-z0-9\n' '_' <<<"$v")"
	fresh "$db" "$v" &&
		$PSQL -d "$db" -c "SELECT userlife.create_partner('up')" \
			-c "SELECT userlife.register_user('up', 'before-' || i, 'Kept Name ' || i, 'kept' || i || '@example.com')
			      FROM generate_series(1, 3) i" >"$out/$db.err" 2>&1 &&
		$PSQL -d "$db" -c "SELECT userlife.set_status('up', 'before-1', 'suspended', 'check')" >>"$out/$db.err" 2>&1
	tap $? "CREATE EXTENSION userlife VERSION '$v': three users registered and one changed by this library"
	search_finds_kept "$db" "at $v, before the update, search finds them"
	$PSQL -d "$db" -c "ALTER EXTENSION userlife UPDATE" >>"$out/$db.err" 2>&1
	tap $? "ALTER EXTENSION userlife UPDATE from $v"
	search_finds_kept "$db" "from $v: the users registered before the update are found by search after it"
	# chains with rows from both sides of the update: before-1 changes again,
	# before-2 changes and is erased; no plain digest of its e-mail remains
	chains=$($PSQL -d "$db" -At \
		-c "SELECT userlife.update_user('up', 'before-1', email => 'kept1.new@example.com')" \
		-c "SELECT userlife.set_status('up', 'before-1', 'active', 'checked')" \
		-c "SELECT userlife.update_user('up', 'before-2', display_name => 'Kept Name 2b')" \
		-c "SELECT userlife.verify_audit('up', 'before-1') AND userlife.verify_audit('up', 'before-2')" \
		-c "SELECT userlife.erase_user('up', 'before-2', 'right to erasure')" \
		-c "SELECT userlife.verify_audit('up', 'before-2')" 2>&1 | grep -E '^(t|f)$' | tr -d '\n')
	tap $([ "$chains" = "ttt" ] && echo 0 || echo 1) "from $v: chains with rows from before and after the update verify, before and after erasure ($chains)"
	guessed=$($PSQL -d "$db" -At -c "SELECT count(*) FROM userlife.audit a,
	      LATERAL (SELECT value FROM jsonb_each(a.old_values) UNION ALL SELECT value FROM jsonb_each(a.new_values)) d(value)
	    WHERE d.value = to_jsonb(encode(sha256(convert_to('\"kept2@example.com\"', 'UTF8')), 'hex'))
	       OR d.value = to_jsonb(encode(sha256(convert_to('\"Kept Name 2\"', 'UTF8')), 'hex'))
	       OR d.value::text LIKE '%kept2@%'" 2>&1)
	tap $([ "$guessed" = "0" ] && echo 0 || echo 1) "from $v: the erased user's former e-mail and name can't be confirmed from their plain digests ($guessed matches)"
	versions=$($PSQL -d "$db" -At -c "SELECT string_agg(DISTINCT hash_version::text, ',') FROM userlife.audit a
	    JOIN userlife.users u USING (user_id) WHERE u.external_id = 'before-1'" 2>&1)
	tap $([ "$versions" = "1,2" ] && echo 0 || echo 1) "from $v: before-1's chain has rows of hash version 1 and 2 ($versions)"
	describe "$db"
	diff -u "$out/ul_upgrade_ref.catalog" "$out/$db.catalog" >"$out/$db.diff"
	rc=$?
	tap $rc "from $v: the same objects as a fresh install of $default"
	[ $rc = 0 ] || sed 's/^/# /' "$out/$db.diff" | head -40
	$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
done
for d in ul_upgrade_ref ul_upgrade_again; do $PSQL -d postgres -c "DROP DATABASE $d" >/dev/null 2>&1; done
