#!/usr/bin/env bash
# reinstall.sh — after DROP EXTENSION userlife; CREATE EXTENSION userlife,
# and after pg_restore --clean (which does the same), backends that used
# userlife before keep working with no XX000: the session that reinstalled
# and a second, pooled one (a dblink connection kept open throughout).
# Every cached OID, kept plan, type id and direct-append target is looked
# up again.  Then DROP SCHEMA public CASCADE, which would take the
# extension, is refused under legal hold.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
db=userlife_reinstall
out=$(mktemp -d)
chmod 755 "$out"
trap 'rm -rf "$out"' EXIT

echo "1..17"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# ok LABEL: the step LABEL printed "LABEL: ok"
ok() { grep -q "^$1: ok" "$out/log"; }

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
$BIN/psql -X -q -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION dblink" \
	-c "CREATE EXTENSION userlife CASCADE" >/dev/null

# pg_restore --clean in replica mode (as the README says), run from inside the session
cat >"$out/restore.sh" <<EOF
"$BIN/pg_dump" -Fc -d $db -f "$out/dump" 2>"$out/dump.err" &&
PGOPTIONS='-c session_replication_role=replica' "$BIN/pg_restore" --clean --if-exists -d $db "$out/dump" 2>"$out/restore.err"
echo "restore: rc \$?"
EOF

# One session (S1) throughout; S2 is a dblink connection, opened before the
# reinstall and used after it.  try() reports each step as "label: ok" or
# "label: SQLSTATE message" instead of stopping.
$BIN/psql -X -q -At -d $db >"$out/log" 2>&1 <<SQL
SET client_min_messages = warning;
CREATE FUNCTION pg_temp.try(label text, sql text) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE r text;
BEGIN
	EXECUTE sql INTO r;
	RETURN label || ': ok ' || coalesce(r, '');
EXCEPTION WHEN OTHERS THEN
	RETURN label || ': ' || SQLSTATE || ' ' || SQLERRM;
END \$f\$;
-- S2: what it runs, as one text value
CREATE FUNCTION pg_temp.s2(sql text) RETURNS text LANGUAGE sql AS
	\$f\$ SELECT string_agg(x, ',') FROM public.dblink('s2', sql) AS t(x text) \$f\$;
SELECT public.dblink_connect('s2', 'dbname=$db host=${PGHOST:-/var/run/postgresql} port=${PGPORT:-5432} user=postgres');

-- the work both sessions do: registration (direct append, search document,
-- tombstone probe), a status change (rules, chain head), a custom rule
-- (its merge binds user_status by OID), a signature (pgcrypto's hmac)
CREATE FUNCTION pg_temp.work(tag text) RETURNS text LANGUAGE sql AS \$f\$
	SELECT userlife.create_partner('p-' || tag);
	SELECT userlife.register_user('p-' || tag, 'u-1', 'Name ' || tag, tag || '@example.com');
	SELECT userlife.set_status('p-' || tag, 'u-1', 'suspended', 'check');
	INSERT INTO userlife.transitions VALUES ('blocked', 'inactive', true);
	SELECT userlife.issue_api_key('p-' || tag);
	SELECT userlife.verify_signature('p-' || tag, s ->> 'signature', s ->> 'timestamp')::text
	  FROM userlife.generate_signature('p-' || tag) s;
\$f\$;

SELECT public.dblink_exec('s2', pg_catalog.pg_get_functiondef('pg_temp.work'::regproc));
SELECT pg_temp.try('warm s1', \$\$SELECT pg_temp.work('a')\$\$);
SELECT pg_temp.try('warm s2', \$\$SELECT pg_temp.s2('SET client_min_messages = warning; SELECT pg_temp.work(''c'')')\$\$);

DROP EXTENSION userlife;
CREATE EXTENSION userlife;

SELECT pg_temp.try('s1 after reinstall', \$\$SELECT pg_temp.work('b')\$\$);
SELECT pg_temp.try('s1 list', \$\$SELECT string_agg(external_id, ',') FROM userlife.list_users('p-b', search => 'name b')\$\$);
SELECT pg_temp.try('s1 verify', \$\$SELECT userlife.verify_audit('p-b', 'u-1')::text\$\$);
SELECT pg_temp.try('s2 register', \$\$SELECT pg_temp.s2('SELECT (userlife.register_user(''p-b'', ''u-2'')).status::text')\$\$);
SELECT pg_temp.try('s2 status', \$\$SELECT pg_temp.s2('SELECT (userlife.set_status(''p-b'', ''u-2'', ''blocked'', ''x'')).status::text')\$\$);
SELECT pg_temp.try('s2 rule', \$\$SELECT pg_temp.s2('INSERT INTO userlife.transitions VALUES (''blocked'', ''inactive'', false) RETURNING 1')\$\$);
SELECT pg_temp.try('s2 signature', \$\$SELECT pg_temp.s2('SELECT userlife.verify_signature(''p-b'', s ->> ''signature'', s ->> ''timestamp'')::text FROM userlife.generate_signature(''p-b'') s')\$\$);

\! bash $out/restore.sh

SELECT pg_temp.try('s1 after restore', \$\$SELECT (userlife.set_status('p-b', 'u-1', 'active', 'ok')).status::text\$\$);
SELECT pg_temp.try('s1 register after restore', \$\$SELECT (userlife.register_user('p-b', 'u-3')).version::text\$\$);
SELECT pg_temp.try('s2 after restore', \$\$SELECT pg_temp.s2('SELECT (userlife.register_user(''p-b'', ''u-4'')).status::text')\$\$);
SELECT pg_temp.try('s2 status after restore', \$\$SELECT pg_temp.s2('SELECT (userlife.set_status(''p-b'', ''u-2'', ''active'', ''x'')).status::text')\$\$);
SELECT pg_temp.try('s1 signature after restore', \$\$SELECT userlife.verify_signature('p-b', s ->> 'signature', s ->> 'timestamp')::text FROM userlife.generate_signature('p-b') s\$\$);
SELECT pg_temp.try('chains', \$\$SELECT string_agg(userlife.verify_audit('p-b', e)::text, ',' ORDER BY e) FROM unnest(ARRAY['u-1', 'u-2', 'u-3', 'u-4']) e\$\$);

SELECT pg_temp.try('hold', \$\$SELECT (userlife.set_legal_hold('p-b', 'u-1', true, 'case 9')).legal_hold::text\$\$);
SELECT pg_temp.try('drop public', 'DROP SCHEMA public CASCADE');
SELECT pg_temp.try('still there', \$\$SELECT count(*)::text FROM pg_extension WHERE extname IN ('userlife', 'pgcrypto', 'pg_trgm', 'dblink')\$\$);
SQL
sed 's/^/# /' "$out/log"

ok "warm s1" && ok "warm s2"
tap $? "both sessions used userlife before the reinstall"
ok "s1 after reinstall"
tap $? "the reinstalling session registers, changes status, adds a rule, verifies a signature"
ok "s1 list" && grep -q "^s1 list: ok u-1" "$out/log"
tap $? "and finds the user by its search document"
grep -q "^s1 verify: ok true" "$out/log"
tap $? "and its audit chain verifies"
grep -q "^s2 register: ok active" "$out/log"
tap $? "the pooled session registers a user"
grep -q "^s2 status: ok blocked" "$out/log"
tap $? "the pooled session changes a status"
ok "s2 rule"
tap $? "the pooled session adds a transition rule (its kept plan bound the old user_status)"
grep -q "^s2 signature: ok true" "$out/log"
tap $? "the pooled session verifies a signature"
grep -q "^restore: rc 0" "$out/log"
tap $? "pg_restore --clean over the database"
[ -s "$out/restore.err" ] && sed 's/^/# restore: /' "$out/restore.err" | head -10
grep -q "^s1 after restore: ok active" "$out/log" && grep -q "^s1 register after restore: ok 1" "$out/log"
tap $? "the session that ran it keeps working on the restored data"
grep -q "^s2 after restore: ok active" "$out/log" && grep -q "^s2 status after restore: ok active" "$out/log"
tap $? "the pooled session too"
grep -q "^s1 signature after restore: ok true" "$out/log"
tap $? "signatures verify after pgcrypto was dropped and restored with it"
grep -q "^chains: ok true,true,true,true" "$out/log"
tap $? "every audit chain verifies"
grep -q "^hold: ok true" "$out/log" && grep -q "^drop public: UL004 " "$out/log"
tap $? "DROP SCHEMA public CASCADE, which would take userlife, is refused under legal hold (UL004)"
grep -q "^still there: ok 4" "$out/log"
tap $? "and dropped nothing"
! grep -q "XX000" "$out/log"
tap $? "no XX000 anywhere"
[ "$(grep -c ': ok' "$out/log")" -eq 17 ]
tap $? "every step ran ($(grep -c ': ok' "$out/log") ok)"

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
