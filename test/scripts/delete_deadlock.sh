#!/usr/bin/env bash
# delete_deadlock.sh — two sessions call delete_users over the same 300
# users at the same moment, one in ascending order and one in descending
# order, 20 rounds (the users are made active again between rounds).
# Locking row by row in input order, the two met halfway and one died with
# 40P01; delete_users locks the batch in user_id order first, so one waits
# for the other.  Every round: no error in either session, each user
# deleted by exactly one of them and reported already_deleted by the other,
# one delete audit row per user.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_deadlock
rounds=20
users=300
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "1..4"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('p');
SELECT count(userlife.register_user('p', 'd-' || i)) FROM generate_series(1, $users) i;
SQL

# one session's call: both start together (a barrier through an advisory
# lock the driver holds), then each prints its counts per result
call() {
	local order=$1
	$PSQL -At -d $db <<SQL
SELECT pg_advisory_lock_shared(42);
SELECT pg_advisory_unlock_shared(42);
SELECT result || ' ' || count(*) FROM userlife.delete_users('p',
	(SELECT array_agg('d-' || i ORDER BY i $order) FROM generate_series(1, $users) i), 'race')
 GROUP BY result ORDER BY result;
SQL
}

errors=0
bad_rounds=0
for r in $(seq 1 "$rounds"); do
	# every user active again (the lifecycle guard is off in replica mode)
	$PSQL -d $db -c "SET session_replication_role = replica;
		UPDATE userlife.users SET status = 'active', deleted_at = NULL, purge_after = NULL WHERE partner = 'p'" >/dev/null
	# the barrier: the two sessions queue behind this exclusive lock
	mkfifo "$out/barrier"
	$PSQL -d $db <"$out/barrier" >/dev/null 2>&1 &
	holder=$!
	exec 3>"$out/barrier"
	echo "SELECT pg_advisory_lock(42);" >&3
	sleep 0.2
	call ASC >"$out/a$r.out" 2>&1 &
	a=$!
	call DESC >"$out/b$r.out" 2>&1 &
	b=$!
	sleep 0.3
	echo "SELECT pg_advisory_unlock(42);" >&3
	exec 3>&-
	wait "$holder"
	rm -f "$out/barrier"
	wait "$a"; rc_a=$?
	wait "$b"; rc_b=$?
	if [ "$rc_a" -ne 0 ] || [ "$rc_b" -ne 0 ] || grep -q ERROR "$out/a$r.out" "$out/b$r.out"; then
		errors=$((errors + 1))
		grep -h ERROR "$out/a$r.out" "$out/b$r.out" | head -2 | sed "s/^/# round $r: /"
	fi
	deleted=$(cat "$out/a$r.out" "$out/b$r.out" | awk '$1 == "deleted" { s += $2 } END { print s + 0 }')
	already=$(cat "$out/a$r.out" "$out/b$r.out" | awk '$1 == "already_deleted" { s += $2 } END { print s + 0 }')
	if [ "$deleted" != "$users" ] || [ "$already" != "$users" ]; then
		bad_rounds=$((bad_rounds + 1))
		echo "# round $r: $deleted deleted, $already already_deleted"
	fi
done

[ "$errors" = 0 ]
tap $? "no call failed in $rounds rounds (no 40P01)"
! grep -q "40P01\|deadlock detected" "$out"/*.out
tap $? "no deadlock was detected"
[ "$bad_rounds" = 0 ]
tap $? "every round: each user deleted by one call and already_deleted for the other"
[ "$($PSQL -At -d $db -c "SELECT count(*) FROM userlife.audit WHERE partner = 'p' AND action = 'delete'")" = $((rounds * users)) ]
tap $? "one delete audit row per user and round"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
