#!/usr/bin/env bash
# status_snapshot.sh — set_status called by a statement whose snapshot is
# older than the user's last version: another session commits a change to
# the user after the statement began (through dblink, in the same
# statement, just before set_status runs).  set_status checks the
# transition rule before it writes; its verdict must be on the row's last
# version, as the users trigger's was, and come at once: a refused change
# raises UL001 naming the status the user has now, an allowed one is made.
# A statement_timeout turns a hang into a failure.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
db=userlife_snapshot
conn="dbname=$db host=${PGHOST:-/var/run/postgresql} port=${PGPORT:-5432} user=${PGUSER:-postgres}"

echo "1..5"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$PSQL -d $db >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION dblink;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('p');
SELECT userlife.register_user('p', u) FROM unnest(ARRAY['a1', 'a2', 'a3']) u;
SQL

# run: the other session's statement, then set_status, in one statement
run() {
	$PSQL -At -d $db 2>&1 <<SQL
SET statement_timeout = '10s';
\set VERBOSITY sqlstate
SELECT (SELECT count(*) FROM dblink('$conn', \$q\$$1\$q\$) AS t(x text)) = 1 AS other,
       (userlife.set_status('p', '$2', '$3', 'snapshot test')).status;
SQL
}

out=$(run "SELECT userlife.delete_user('p', 'a1', 'gone')::text" a1 inactive)
[ "$out" = "ERROR:  UL001" ]
tap $? "deleted by another session meanwhile: UL001 at once ($out)"
$PSQL -At -d $db -c "SELECT status FROM userlife.users WHERE external_id = 'a1'" | grep -qx deleted
tap $? "the user stays deleted"

out=$(run "SELECT userlife.set_status('p', 'a2', 'blocked', 'fraud')::text" a2 flagged)
[ "$out" = "ERROR:  UL001" ]
tap $? "blocked by another session meanwhile, no rule from blocked to flagged: UL001 at once ($out)"

out=$(run "SELECT userlife.set_status('p', 'a3', 'suspended')::text" a3 inactive)
[ "$out" = "t|inactive" ]
tap $? "suspended by another session meanwhile, suspended to inactive allowed: made ($out)"
$PSQL -At -d $db -c "SELECT count(*) FROM userlife.audit WHERE external_id = 'a3' AND action = 'status'" | grep -qx 2
tap $? "two status audit rows for a3"

$PSQL -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
exit 0
