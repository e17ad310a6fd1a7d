#!/usr/bin/env bash
# default_privileges.sh — privileges are SPEC §3's whatever ALTER DEFAULT
# PRIVILEGES the installing role had.  One database gets userlife with no
# default privileges; others first give a role (and a userlife group role)
# every privilege on every table, sequence, function, type and schema
# postgres creates, or take privileges away from PUBLIC and from postgres
# itself; userlife is installed fresh there, or at 0.1.0 and updated.
# Every ACL of the extension's objects (tables, columns, sequences,
# functions, types, the schema, and the initial privileges pg_dump
# compares with) must be identical to the plain install's, and the role
# must not read partner_keys.secret, user_search or tombstones, write any
# table, or execute the owner's functions.  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
out=$(mktemp -d)
dbs="ul_dp_plain ul_dp_grants ul_dp_revokes ul_dp_upgrade"
cleanup() {
	for d in $dbs; do $PSQL -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1; done
	$PSQL -d postgres -c "DROP ROLE IF EXISTS ul_dp_some" >/dev/null 2>&1
	rm -rf "$out"
}
trap cleanup EXIT

n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
echo "1..16"

for d in $dbs; do $PSQL -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1; done
$PSQL -d postgres -c "DROP ROLE IF EXISTS ul_dp_some" -c "CREATE ROLE ul_dp_some LOGIN" >/dev/null 2>&1
# the group roles exist once any database has the extension
$PSQL -d postgres -c "CREATE DATABASE ul_dp_plain" &&
	$PSQL -d ul_dp_plain -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" >/dev/null
tap $? "plain install"

GRANTS="
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON TABLES TO ul_dp_some WITH GRANT OPTION;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON SEQUENCES TO ul_dp_some;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON FUNCTIONS TO ul_dp_some;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON TYPES TO ul_dp_some;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON SCHEMAS TO ul_dp_some;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON TABLES TO userlife_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT ALL ON FUNCTIONS TO userlife_developer;"
REVOKES="
ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE USAGE ON TYPES FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE ALL ON TABLES FROM postgres;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres REVOKE ALL ON SEQUENCES FROM postgres;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres GRANT SELECT ON TABLES TO ul_dp_some;"

# install DB DEFAULTS [VERSION]: a new database with those default
# privileges, userlife installed (at VERSION, then updated)
install() {
	$PSQL -d postgres -c "CREATE DATABASE $1" >/dev/null &&
		$PSQL -d "$1" -c "$2" >/dev/null &&
		$PSQL -d "$1" -c "SET client_min_messages = warning" \
			-c "CREATE EXTENSION userlife ${3:+VERSION '$3'} CASCADE" >/dev/null &&
		if [ -n "${3:-}" ]; then $PSQL -d "$1" -c "ALTER EXTENSION userlife UPDATE" >/dev/null; fi
}
install ul_dp_grants "$GRANTS"
tap $? "install under default privileges that grant everything to a role"
install ul_dp_revokes "$REVOKES"
tap $? "install under default privileges that take privileges from PUBLIC and from postgres"
install ul_dp_upgrade "$GRANTS" 0.1.0
tap $? "install 0.1.0 under the granting default privileges, then ALTER EXTENSION UPDATE"

# acls DB: every ACL of the extension's objects, by name, sorted
acls() {
	$PSQL -d "$1" -At >"$out/$1.acl" <<'SQL'
WITH nsp AS (SELECT 'userlife'::regnamespace AS oid)
SELECT line FROM (
	SELECT format('schema %s acl %s', n.nspname, n.nspacl) AS line FROM pg_namespace n, nsp WHERE n.oid = nsp.oid
	UNION ALL
	SELECT format('relation %s kind %s acl %s', c.relname, c.relkind, c.relacl)
	  FROM pg_class c, nsp WHERE c.relnamespace = nsp.oid
	UNION ALL
	SELECT format('column %s.%s acl %s', c.relname, a.attname, a.attacl)
	  FROM pg_class c JOIN nsp ON c.relnamespace = nsp.oid JOIN pg_attribute a ON a.attrelid = c.oid
	 WHERE a.attnum > 0 AND NOT a.attisdropped
	UNION ALL
	SELECT format('function %s acl %s', p.oid::regprocedure, p.proacl) FROM pg_proc p, nsp WHERE p.pronamespace = nsp.oid
	UNION ALL
	SELECT format('type %s acl %s', t.typname, t.typacl) FROM pg_type t, nsp WHERE t.typnamespace = nsp.oid
	UNION ALL
	SELECT format('initial privileges %s %s', pg_describe_object(i.classoid, i.objoid, i.objsubid), i.initprivs)
	  FROM pg_init_privs i JOIN pg_depend d ON d.classid = i.classoid AND d.objid = i.objoid AND d.deptype = 'e'
	  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'userlife'
) l ORDER BY line COLLATE "C";
SQL
}
for d in $dbs; do acls "$d"; done
tap $([ "$(grep -c . "$out/ul_dp_plain.acl")" -gt 100 ] && echo 0 || echo 1) \
	"the ACL listing covers the extension's objects ($(wc -l <"$out/ul_dp_plain.acl") lines)"
for d in ul_dp_grants ul_dp_revokes ul_dp_upgrade; do
	diff -u "$out/ul_dp_plain.acl" "$out/$d.acl" >"$out/$d.diff"
	rc=$?
	tap $rc "$d: every ACL is the plain install's"
	[ $rc = 0 ] || sed 's/^/# /' "$out/$d.diff" | head -30
done

# as_role DB SQL: the SQLSTATE of running SQL as ul_dp_some, or "ok"
as_role() {
	local r
	r=$($PSQL -d "$1" -At -v VERBOSITY=sqlstate -c "SET ROLE ul_dp_some" -c "$2" 2>&1 >/dev/null)
	if [ -z "$r" ]; then echo ok; else sed -E 's/^(ERROR: +)?//' <<<"$r" | head -1; fi
}
for d in ul_dp_grants ul_dp_upgrade; do
	$PSQL -d "$d" -c "SELECT userlife.create_partner('dp')" -c "SELECT userlife.issue_api_key('dp')" \
		-c "SELECT userlife.register_user('dp', 'x', email => 'x@dp.example')" \
		-c "SELECT userlife.delete_user('dp', 'x'); UPDATE userlife.users SET purge_after = now() - '1 day'::interval" \
		-c "SELECT userlife.purge_expired()" >/dev/null
done
reads=$(for t in "partner_keys" "user_search" "tombstones"; do as_role ul_dp_grants "SELECT * FROM userlife.$t"; done | sort -u)
tap $([ "$reads" = "42501" ] && echo 0 || echo 1) "the role reads neither partner_keys, user_search nor tombstones ($reads)"
secret=$(as_role ul_dp_upgrade "SELECT secret FROM userlife.partner_keys")
tap $([ "$secret" = "42501" ] && echo 0 || echo 1) "after the update, the role cannot read partner_keys.secret ($secret)"

# privileges the role holds on any object of the extension, per catalog
held() {
	$PSQL -d "$1" -At <<'SQL'
SELECT string_agg(x, ', ' ORDER BY x) FROM (
	SELECT c.oid::regclass::text || ':' || p AS x
	  FROM pg_class c, unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
	 WHERE c.relnamespace = 'userlife'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
	   AND has_table_privilege('ul_dp_some', c.oid, p)
	UNION ALL
	SELECT c.oid::regclass::text || ':' || p
	  FROM pg_class c, unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) p
	 WHERE c.relnamespace = 'userlife'::regnamespace AND c.relkind = 'S'
	   AND has_sequence_privilege('ul_dp_some', c.oid, p)
	UNION ALL
	SELECT p.oid::regprocedure::text FROM pg_proc p
	 WHERE p.pronamespace = 'userlife'::regnamespace AND has_function_privilege('ul_dp_some', p.oid, 'EXECUTE')
	UNION ALL
	SELECT 'schema:' || p FROM unnest(ARRAY['USAGE', 'CREATE']) p WHERE has_schema_privilege('ul_dp_some', 'userlife', p)
) h;
SQL
}
# what PUBLIC holds by SPEC §3: the two functions row-level security calls
for d in ul_dp_grants ul_dp_upgrade; do
	h=$(held "$d")
	tap $([ "$h" = "userlife.bound_partners(), userlife.sees_every_partner()" ] && echo 0 || echo 1) \
		"$d: the role holds no privilege on the extension's objects but PUBLIC's ($h)"
done
writes=$(for s in "INSERT INTO userlife.partners (partner) VALUES ('sneaky')" \
	"UPDATE userlife.users SET display_name = 'x'" "DELETE FROM userlife.audit" \
	"INSERT INTO userlife.partner_bindings (role, partner, role_name) VALUES ('ul_dp_some', 'dp', 'ul_dp_some')" \
	"UPDATE userlife.tombstones SET allow_new_enroll = true" "TRUNCATE userlife.events"; do
	as_role ul_dp_grants "$s"; done | sort -u)
tap $([ "$writes" = "42501" ] && echo 0 || echo 1) "the role writes no table ($writes)"
calls=$(for s in "SELECT userlife.create_partner('sneaky')" "SELECT userlife.issue_api_key('dp')" \
	"SELECT userlife.bind_partner('ul_dp_some', 'dp')" "SELECT userlife.purge_expired()" \
	"SELECT userlife.generate_signature('dp')"; do as_role ul_dp_grants "$s"; done | sort -u)
tap $([ "$calls" = "42501" ] && echo 0 || echo 1) "the role executes none of the owner's functions ($calls)"
schema=$(as_role ul_dp_grants "CREATE TABLE userlife.mine (a int)")
tap $([ "$schema" = "42501" ] && echo 0 || echo 1) "the role cannot create objects in schema userlife ($schema)"
guard=$($PSQL -d ul_dp_plain -At -v VERBOSITY=sqlstate -c "SELECT userlife.strip_privileges()" 2>&1 | sed -E 's/^(ERROR: +)?//')
tap $([ "$guard" = "55000" ] && echo 0 || echo 1) "strip_privileges() runs only inside the extension's scripts ($guard)"
