#!/usr/bin/env bash
# import_race.sh — concurrent imports and registrations of the same ids
# and e-mails serialize: an import of 400 users races, in one session,
# register_user of the same 400 ids (each its own transaction) in
# another, 5 rounds; and two imports of the same 400 ids, one in
# ascending and one in descending input order, 5 rounds.  Every round:
# no error of a whole call (no deadlock), each id registered exactly once
# (one user, one register audit row), every item the import lost reported
# as 23505 and every registration lost refused with 23505, and the
# winners' counts add up.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_import_race
rounds=5
users=400
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "1..6"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('p');
SQL

# barrier: both sessions wait for the advisory lock a holder releases
start_barrier() {
	mkfifo "$out/barrier"
	$PSQL -d $db <"$out/barrier" >/dev/null 2>&1 &
	holder=$!
	exec 3>"$out/barrier"
	echo "SELECT pg_advisory_lock(42);" >&3
	sleep 0.3
}
release_barrier() {
	sleep 0.5
	echo "SELECT pg_advisory_unlock(42);" >&3
	exec 3>&-
	wait "$holder"
	rm -f "$out/barrier"
}
wait_barrier="SELECT pg_advisory_lock_shared(42); SELECT pg_advisory_unlock_shared(42);"

# import PREFIX ORDER: the import's results, counted per result and SQLSTATE
import() {
	$PSQL -At -d $db <<SQL
$wait_barrier
SELECT result || ' ' || coalesce(sqlstate, '-') || ' ' || count(*) FROM userlife.import_users('p',
	(SELECT jsonb_agg(jsonb_build_object('external_id', '$1' || i, 'email', '$1' || i || '@example.com') ORDER BY i $2)
	   FROM generate_series(1, $users) i))
 GROUP BY result, sqlstate ORDER BY 1;
SQL
}
# register PREFIX: register_user of each id, each in its own transaction; prints the SQLSTATEs of the failures
register() {
	{
		echo "$wait_barrier"
		echo '\set ON_ERROR_STOP 0'
		echo '\set VERBOSITY sqlstate'
		for i in $(seq 1 "$users"); do
			echo "SELECT 1 FROM userlife.register_user('p', '$1$i', email => '$1$i@example.com');"
		done
	} | $PSQL -At -d $db 2>&1 | grep -Ev '^1$|^$|^t$' | sed -E 's/^.*ERROR: +//'
}
created() { awk '$1 == "created" { s += $3 } END { print s + 0 }' "$1"; }
lost() { awk '$1 == "error" && $2 == "23505" { s += $3 } END { print s + 0 }' "$1"; }
other() { awk 'NF > 0 && $1 != "t" && !($1 == "created") && !($1 == "error" && $2 == "23505") { print }' "$1"; }
# once PREFIX: users, register audit rows, of the round's ids; and whether each id has exactly one
once() {
	$PSQL -At -d $db -c "SELECT count(DISTINCT u.external_id) || ' ' || count(*) || ' ' ||
		(SELECT count(*) FROM userlife.audit a WHERE a.partner = 'p' AND a.external_id LIKE '$1%' AND a.action = 'register')
		FROM userlife.users u WHERE u.partner = 'p' AND u.external_id LIKE '$1%'"
}

bad_split=0; bad_once=0; bad_other=0
for r in $(seq 1 "$rounds"); do
	p="ir$r-"
	start_barrier
	import "$p" ASC >"$out/imp$r" 2>&1 &
	a=$!
	register "$p" >"$out/reg$r" 2>&1 &
	b=$!
	release_barrier
	wait $a; wait $b
	c=$(created "$out/imp$r"); l=$(lost "$out/imp$r")
	regs_lost=$(grep -c '^23505$' "$out/reg$r")
	others=$(other "$out/imp$r"; grep -v '^23505$' "$out/reg$r")
	[ -n "$others" ] && { bad_other=$((bad_other + 1)); echo "# round $r, import vs register: $others"; }
	# each id won once: import's created + registrations that succeeded = users
	[ $((c + l)) -eq "$users" ] && [ $((c + users - regs_lost)) -eq "$users" ] || {
		bad_split=$((bad_split + 1)); echo "# round $r: import created $c lost $l, registrations lost $regs_lost"; }
	[ "$(once "$p")" = "$users $users $users" ] || { bad_once=$((bad_once + 1)); echo "# round $r: $(once "$p")"; }
	echo "# round $r, import vs register: import created $c, lost $l with 23505; register_user lost $regs_lost"
done
tap $bad_other "import vs register_user: no other error than the losers' 23505 ($rounds rounds)"
tap $bad_split "import vs register_user: every id won by exactly one side"
tap $bad_once "import vs register_user: one user and one register audit row per id"

bad_split=0; bad_once=0; bad_other=0
for r in $(seq 1 "$rounds"); do
	p="ii$r-"
	start_barrier
	import "$p" ASC >"$out/a$r" 2>&1 &
	a=$!
	import "$p" DESC >"$out/b$r" 2>&1 &
	b=$!
	release_barrier
	wait $a; wait $b
	others=$(other "$out/a$r"; other "$out/b$r")
	[ -n "$others" ] && { bad_other=$((bad_other + 1)); echo "# round $r, two imports: $others"; }
	ca=$(created "$out/a$r"); cb=$(created "$out/b$r"); la=$(lost "$out/a$r"); lb=$(lost "$out/b$r")
	[ $((ca + cb)) -eq "$users" ] && [ $((la + lb)) -eq "$users" ] || {
		bad_split=$((bad_split + 1)); echo "# round $r: created $ca + $cb, lost $la + $lb"; }
	[ "$(once "$p")" = "$users $users $users" ] || { bad_once=$((bad_once + 1)); echo "# round $r: $(once "$p")"; }
	echo "# round $r, two imports: created $ca and $cb, lost $la and $lb with 23505"
done
tap $bad_other "two imports in opposite orders: no deadlock, no other error than 23505 ($rounds rounds)"
tap $bad_split "two imports: every id created by exactly one of them"
tap $bad_once "two imports: one user and one register audit row per id"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
