#!/usr/bin/env bash
# purge_under_load.sh — purge_expired removes 100,000 expired users in
# batches of 1,000 while pgbench changes the status of other users of the
# same partner: the live traffic never waits longer than one batch takes,
# nothing of the live users is lost, and every purged user leaves a
# tombstone.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_purge
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "1..7"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('p', retention => '1 day');
SELECT count(userlife.register_user('p', 'live-' || i, 'Live ' || i)) FROM generate_series(1, 1000) i;
-- 100,000 users whose retention ended (loaded directly: the purge is under test)
SET session_replication_role = replica;
INSERT INTO userlife.users (partner, external_id, display_name, email, status, deleted_at, purge_after)
SELECT 'p', 'gone-' || i, 'Gone ' || i, 'gone' || i || '@example.com', 'deleted',
       now() - interval '2 days', now() - interval '1 day'
  FROM generate_series(1, 100000) i;
RESET session_replication_role;
VACUUM ANALYZE userlife.users;
SQL

cat >"$out/traffic.sql" <<'SQL'
\set i random(1, 1000)
\set s random(0, 1)
SELECT 1 FROM userlife.set_status('p', 'live-' || :i, (CASE :s::int WHEN 0 THEN 'active' ELSE 'inactive' END)::userlife.user_status, 'load');
SQL

# the purge: batches of 1,000, each its own transaction, each timed
$PSQL -d $db >"$out/purge.log" 2>&1 <<'SQL' &
DO $$
DECLARE
	purged bigint;
	started timestamptz;
BEGIN
	LOOP
		started := clock_timestamp();
		purged := userlife.purge_expired(1000);
		COMMIT;
		RAISE NOTICE 'batch % %', purged, round(extract(epoch FROM clock_timestamp() - started) * 1000000);
		EXIT WHEN purged = 0;
	END LOOP;
END
$$;
SQL
purge_pid=$!

# live traffic for as long as the purge runs, logged per transaction
k=0
while kill -0 "$purge_pid" 2>/dev/null; do
	k=$((k + 1))
	(cd "$out" && "$BIN/pgbench" -n -c 2 -j 2 -T 3 -M prepared -f traffic.sql --log --log-prefix="live$k" "$db" >"$out/pgbench$k.out" 2>&1)
done
wait "$purge_pid"
purge_rc=$?

batches=$(grep -c 'NOTICE:  batch [1-9]' "$out/purge.log")
purged=$(awk '/NOTICE:  batch/ { s += $3 } END { print s + 0 }' "$out/purge.log")
max_batch=$(awk '/NOTICE:  batch/ && $3 > 0 { if ($4 > m) m = $4 } END { print m + 0 }' "$out/purge.log")
max_live=$(cat "$out"/live[0-9]* 2>/dev/null | awk '{ if ($3 > m) m = $3 } END { print m + 0 }')
txns=$(cat "$out"/live[0-9]* 2>/dev/null | wc -l)
echo "# $purged users purged in $batches batches, longest batch ${max_batch} us; $txns live transactions in $k pgbench runs, longest ${max_live} us"

[ "$purge_rc" = 0 ] && [ "$purged" = 100000 ]
tap $? "100,000 users purged in batches ($purged, rc $purge_rc)"
[ "$txns" -gt 0 ] && [ "$max_live" -le "$max_batch" ]
tap $? "no live transaction waited longer than one batch (${max_live} us <= ${max_batch} us)"
! grep -qE "ERROR|aborted" "$out"/pgbench*.out
tap $? "the live traffic had no errors"
grep -E "ERROR|aborted" "$out"/pgbench*.out | head -3 | sed 's/^/# /'

check() { $PSQL -d $db -At -c "$1"; }
[ "$(check "SELECT count(*) FROM userlife.users WHERE partner = 'p'")" = 1000 ]
tap $? "the 1,000 live users are all there"
[ "$(check "SELECT count(*) FROM userlife.tombstones WHERE partner = 'p'")" = 100000 ]
tap $? "every purged user left a tombstone"
[ "$(check "SELECT count(*) FROM userlife.users u WHERE partner = 'p' AND version <> (SELECT count(*) FROM userlife.audit a WHERE a.user_id = u.user_id)")" = 0 ]
tap $? "every live user's version equals its number of audit rows"
[ "$(check "SELECT count(*) FROM userlife.users u WHERE partner = 'p' AND NOT userlife.verify_audit('p', u.external_id)")" = 0 ]
tap $? "every live user's audit chain verifies"

$PSQL -d postgres -c "DROP DATABASE $db" >/dev/null
