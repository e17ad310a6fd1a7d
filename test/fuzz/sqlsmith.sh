#!/usr/bin/env bash
# test/fuzz/sqlsmith.sh — random SQL from Debian's sqlsmith against a
# database with userlife installed and populated, on a throwaway cluster;
# fails if any backend crashed.  Not part of test/run (it is long).
#
#   test/fuzz/sqlsmith.sh                 20,000 queries (QUERIES=n to change)
#   SEED=42 test/fuzz/sqlsmith.sh         reproducible run
set -uo pipefail
USERLIFE_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export USERLIFE_ROOT
. "$USERLIFE_ROOT/test/lib.sh"

QUERIES=${QUERIES:-20000}
SEED=${SEED:-$$}
userlife_install_packages sqlsmith || exit 1
userlife_build || exit 1
trap userlife_stop_cluster EXIT
userlife_start_cluster
"$PG_BIN/psql" -X -q -d postgres -c "CREATE DATABASE userlife_fuzz"
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d userlife_fuzz >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('fz' || i) FROM generate_series(1, 3) i;
SELECT userlife.issue_api_key('fz1');
SELECT userlife.register_user('fz' || (i % 3 + 1), 'u' || i, 'User ' || i, 'u' || i || '@example.com',
                              jsonb_build_object('i', i), ARRAY['t' || (i % 5)])
  FROM generate_series(1, 300) i;
SELECT userlife.set_status('fz1', 'u' || i, 'suspended', 'fuzz') FROM generate_series(3, 300, 3) i;
SELECT userlife.delete_user('fz2', 'u' || i) FROM generate_series(1, 300, 3) i;
SELECT userlife.record_job('fz3', 'u' || i, 'kyc') FROM generate_series(2, 300, 3) i;
SQL

echo "== sqlsmith: $QUERIES queries, seed $SEED"
log="$USERLIFE_TMP/sqlsmith.log"
timeout 3600 sqlsmith --target="host=$PGHOST port=$PGPORT dbname=userlife_fuzz user=postgres" \
	--max-queries="$QUERIES" --seed="$SEED" --verbose >"$log" 2>&1
rc=$?
tail -25 "$log"
crashes=$(userlife_crashes_in_log)
userlife_errors=$(grep -c "userlife" "$USERLIFE_LOG")
echo "== sqlsmith exit $rc; server log lines mentioning userlife: $userlife_errors"
if [ -n "$crashes" ]; then
	echo "== crashed backends:"
	echo "$crashes"
	grep -B5 "terminated by signal" "$USERLIFE_LOG" | head -60
	echo "0 passed, 1 failed"
	exit 1
fi
echo "1 passed, 0 failed"
