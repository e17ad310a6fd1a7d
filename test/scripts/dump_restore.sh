#!/usr/bin/env bash
# dump_restore.sh — a database with users, audit, events, jobs, tombstones,
# keys, custom transition rules and partner bindings goes through pg_dump
# and pg_restore (in replica mode, as the README says) into a fresh
# database with identical contents, and userlife works there.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
src=userlife_dump_src
dst=userlife_dump_dst
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "1..9"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

for d in $src $dst; do $PSQL -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1; done
$PSQL -d postgres -c "CREATE DATABASE $src" -c "DROP ROLE IF EXISTS dump_dev" -c "CREATE ROLE dump_dev IN ROLE userlife_developer" >/dev/null 2>&1
$PSQL -d $src >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
SELECT userlife.create_partner('d1', 'Dump One', '10 days');
SELECT userlife.create_partner('d2');
SELECT userlife.bind_partner('dump_dev', 'd1');
SELECT userlife.issue_api_key('d1');
SELECT userlife.register_user('d1', 'u' || i, 'User ' || i, 'u' || i || '@example.com', jsonb_build_object('i', i), '{x}')
  FROM generate_series(1, 50) i;
SELECT userlife.set_status('d1', 'u' || i, 'blocked', 'fraud') FROM generate_series(1, 10) i;
SELECT userlife.set_fraud_flag('d1', 'u' || i, true, 'ring') FROM generate_series(5, 15) i;
SELECT userlife.record_job('d1', 'u' || i, 'kyc') FROM generate_series(1, 20) i;
SELECT userlife.delete_user('d1', 'u' || i) FROM generate_series(40, 45) i;
SELECT userlife.erase_user('d1', 'u50', 'gdpr');
SELECT userlife.ack_events(ARRAY(SELECT event_id FROM userlife.claim_events(30)));
-- custom rules: a new one, a changed one
INSERT INTO userlife.transitions VALUES ('blocked', 'inactive', true);
UPDATE userlife.transitions SET requires_reason = true WHERE from_status = 'active' AND to_status = 'inactive';
SQL

"$BIN/pg_dump" -Fc -d $src -f "$out/dump" 2>"$out/dump.err"
tap $? "pg_dump"
$PSQL -d postgres -c "CREATE DATABASE $dst" >/dev/null
PGOPTIONS='-c session_replication_role=replica' "$BIN/pg_restore" -d $dst "$out/dump" 2>"$out/restore.err"
rc=$?
tap $rc "pg_restore in replica mode"
[ "$rc" = 0 ] || sed 's/^/# /' "$out/restore.err" | head -20

digest() {  # digest DB: one line per table, its rows' digest
	$PSQL -d "$1" -At <<'SQL'
SELECT c.relname || ' ' || (xpath('/row/d/text()',
        query_to_xml(format('SELECT md5(coalesce(string_agg(t::text, ''|'' ORDER BY t::text), '''')) AS d FROM userlife.%I t', c.relname),
                     false, true, '')))[1]::text
  FROM pg_class c WHERE c.relnamespace = 'userlife'::regnamespace AND c.relkind = 'r' ORDER BY 1;
SELECT s.relname || ' ' || pg_sequence_last_value(s.oid::regclass)
  FROM pg_class s WHERE s.relnamespace = 'userlife'::regnamespace AND s.relkind = 'S' ORDER BY 1;
SQL
}
digest $src >"$out/src.digest"
digest $dst >"$out/dst.digest"
diff "$out/src.digest" "$out/dst.digest" >"$out/diff" && [ "$(wc -l <"$out/src.digest")" -ge 13 ]
tap $? "every table and sequence of userlife is identical after the restore ($(wc -l <"$out/src.digest") compared)"
sed 's/^/# /' "$out/diff" | head -20

q() { $PSQL -d $dst -At -c "$1" 2>&1; }
[ "$(q "SELECT count(*) FROM userlife.transitions WHERE (from_status, to_status) = ('blocked', 'inactive')")" = 1 ] &&
[ "$(q "SELECT requires_reason FROM userlife.transitions WHERE from_status = 'active' AND to_status = 'inactive'")" = t ]
tap $? "custom transition rules came back"
[ "$(q "SELECT userlife.verify_audit('d1', 'u' || i) FROM generate_series(1, 49) i" | sort -u)" = t ]
tap $? "every audit chain verifies in the restored database"
[ "$(q "SELECT userlife.verify_audit('d1', 'u50')")" = t ]
tap $? "the erased user's redacted chain too"
got=$(q "SELECT userlife.disable_user('d1', 'u1')")
grep -q "reason is required" <<<"$got"
tap $? "the restored rules apply (blocked -> inactive needs a reason)"
[ "$(q "SELECT (userlife.register_user('d1', 'new-1')).version")" = 1 ] &&
[ "$(q "SELECT (userlife.set_status('d1', 'new-1', 'suspended')).version")" = 2 ]
tap $? "new users and changes work (identity sequences continue, no duplicate ids)"
[ "$(q "SET ROLE dump_dev; SELECT count(*) FROM userlife.users WHERE partner = 'd2'; SELECT count(*) > 0 FROM userlife.users" | paste -sd,)" = "0,t" ]
tap $? "partner bindings apply in the restored database"

[ -n "${KEEP_DBS:-}" ] || for d in $src $dst; do $PSQL -d postgres -c "DROP DATABASE $d" >/dev/null 2>&1; done
$PSQL -d postgres -c "DROP ROLE dump_dev" >/dev/null 2>&1
