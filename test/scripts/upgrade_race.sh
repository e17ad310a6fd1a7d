#!/usr/bin/env bash
# upgrade_race.sh — ALTER EXTENSION userlife UPDATE from 0.1.0 while other
# sessions keep committing registrations (issue 17 point 4).  One
# registration is open when the update starts and commits while it runs;
# pgbench clients register users throughout.  Afterwards every user that
# was committed has its search document and is found by search, and the
# pgbench clients saw no error.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_upgrade_race
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

echo "1..6"
$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife VERSION '0.1.0' CASCADE" \
	-c "SELECT userlife.create_partner('race')" \
	-c "SELECT userlife.register_user('race', 'before-' || i, 'Racer Before ' || i) FROM generate_series(1, 50) i" \
	>"$out/setup.log" 2>&1
tap $? "userlife 0.1.0 installed with 50 users"

# registrations with generated external_ids: no two clients collide
cat >"$out/register.sql" <<'EOF'
SELECT userlife.register_user('race', NULL, 'Racer During');
EOF

# a registration left open across the start of the update
( $PSQL -d $db -c "BEGIN" -c "SELECT userlife.register_user('race', 'open-1', 'Racer Open')" \
	-c "SELECT pg_sleep(3)" -c "COMMIT" >"$out/open.log" 2>&1; echo $? >"$out/open.rc" ) &
open_pid=$!
# registrations committing all along
"$BIN/pgbench" -n -c 4 -j 2 -T 8 -f "$out/register.sql" $db >"$out/pgbench.log" 2>&1 &
bench_pid=$!
sleep 1
$PSQL -d $db -c "ALTER EXTENSION userlife UPDATE" >"$out/alter.log" 2>&1
alter_rc=$?
wait $open_pid
wait $bench_pid
bench_rc=$?

[ "$alter_rc" = 0 ] && [ "$(cat "$out/open.rc")" = 0 ]
tap $? "ALTER EXTENSION UPDATE ran while a registration was open, and that one committed"
sed 's/^/# /' "$out/alter.log" "$out/open.log"
failed_tx=$(sed -nE 's/^number of failed transactions: ([0-9]+).*/\1/p' "$out/pgbench.log")
processed=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$out/pgbench.log")
[ "$bench_rc" = 0 ] && [ "${failed_tx:-0}" = 0 ] && [ "${processed:-0}" -gt 0 ]
tap $? "pgbench registered users throughout without an error (${processed:-?} registrations, ${failed_tx:-0} failed)"
[ "$bench_rc" = 0 ] || tail -5 "$out/pgbench.log" | sed 's/^/# /'

missing=$($PSQL -d $db -At -c "SELECT count(*) FROM userlife.users u
	WHERE NOT EXISTS (SELECT 1 FROM userlife.user_search s WHERE s.user_id = u.user_id)" 2>&1)
tap $([ "$missing" = 0 ] && echo 0 || echo 1) "every committed user has a search document ($missing missing)"
counts=$($PSQL -d $db -At -c "SELECT (SELECT count(*) FROM userlife.users WHERE partner = 'race')
	= (SELECT userlife.count_users('race', search => 'racer')),
	(SELECT count(*) FROM userlife.list_users('race', search => 'racer open'))" 2>&1 | tr '|\n' ' ')
tap $([ "$counts" = "t 1 " ] && echo 0 || echo 1) "search finds every user, the one open during the update too ($counts)"
version=$($PSQL -d $db -At -c "SELECT extversion FROM pg_extension WHERE extname = 'userlife'" 2>&1)
repaired=$($PSQL -d $db -At -c "SELECT userlife.rebuild_search() = count(*) FROM userlife.users" 2>&1)
tap $([ "$repaired" = t ] && echo 0 || echo 1) "at $version, rebuild_search() answers the number of users ($repaired)"

# for the README: the relation locks each update path holds until it commits
for v in 0.1.0 0.2.0; do
	$PSQL -d postgres -c "DROP DATABASE IF EXISTS ${db}_locks" -c "CREATE DATABASE ${db}_locks" >/dev/null 2>&1
	$PSQL -d ${db}_locks -c "SET client_min_messages = warning" \
		-c "CREATE EXTENSION userlife VERSION '$v' CASCADE" >/dev/null 2>&1
	echo "# locks held by ALTER EXTENSION userlife UPDATE from $v:"
	$PSQL -d ${db}_locks -At -c "BEGIN" -c "ALTER EXTENSION userlife UPDATE" \
		-c "SELECT l.relation::regclass || ' ' || string_agg(l.mode, ', ' ORDER BY l.mode)
		      FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		     WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND c.relkind IN ('r', 'p')
		       AND c.relnamespace = 'userlife'::regnamespace
		     GROUP BY l.relation ORDER BY 1" -c "ROLLBACK" 2>&1 | sed 's/^/#   /'
	$PSQL -d postgres -c "DROP DATABASE ${db}_locks" >/dev/null 2>&1
done
$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1
