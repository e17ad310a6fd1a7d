#!/usr/bin/env bash
# cron.sh — schedule_maintenance registers run_maintenance with pg_cron as
# the calling role, and the job runs: a suspension that has ended is lifted
# by it.  A role that may not use pg_cron, or cannot log in, is refused; from
# a database other than pg_cron's the error names the call to make there.
# unschedule_maintenance and DROP EXTENSION remove the job, and a look-alike
# schema userlife with a run_maintenance() of its own, made after the drop,
# is not run by the job's command.  Needs the cluster test/run starts
# (pg_cron preloaded, cron.database_name = userlife_cron, background
# workers).  Prints TAP.
set -uo pipefail
BIN=${USERLIFE_PG_BIN:-/usr/lib/postgresql/15/bin}
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1 -d userlife_cron"
other=userlife_cron_other

echo "1..14"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# q SQL: one statement's output (or its error, with the SQLSTATE) in userlife_cron
q() { $BIN/psql -X -q -At -v VERBOSITY=verbose -d userlife_cron -c "$1" 2>&1; }

$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $other" >/dev/null 2>&1
$PSQL >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
DELETE FROM cron.job;
DROP EXTENSION IF EXISTS userlife CASCADE;
DROP SCHEMA IF EXISTS userlife CASCADE;
CREATE EXTENSION IF NOT EXISTS userlife CASCADE;
DO $$
DECLARE r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['cron_maint', 'cron_nocron', 'cron_nologin', 'cron_evil'] LOOP
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I', r);
		END IF;
	END LOOP;
END $$;
ALTER ROLE cron_maint LOGIN;
ALTER ROLE cron_nocron LOGIN;
ALTER ROLE cron_nologin NOLOGIN;
ALTER ROLE cron_evil LOGIN;
GRANT userlife_owner TO cron_maint, cron_nocron, cron_nologin;
GRANT USAGE ON SCHEMA cron TO cron_maint, cron_nologin;
GRANT CREATE ON DATABASE userlife_cron TO cron_evil;
SELECT userlife.create_partner('cron');
SELECT userlife.register_user('cron', 'sleeper');
SELECT userlife.set_status('cron', 'sleeper', 'suspended', 'cool-off', clock_timestamp() + interval '1 second');
SQL
sleep 1.5
job=$(q "SET ROLE cron_maint; SELECT userlife.schedule_maintenance('* * * * *')")
[[ "$job" =~ ^[0-9]+$ ]]
tap $? "schedule_maintenance returns the pg_cron job id ($job)"
owner=$(q "SELECT username || ' ' || database FROM cron.job WHERE jobid = ${job:-0}")
[ "$owner" = "cron_maint userlife_cron" ]
tap $? "the job runs as the role that scheduled it, in its database ($owner)"
cmd=$(q "SELECT command FROM cron.job WHERE jobid = ${job:-0}")
[[ "$cmd" == "SELECT userlife.run_maintenance() FROM pg_catalog.pg_depend d "* ]] &&
[ "$(q "SELECT schedule FROM cron.job WHERE jobid = ${job:-0}")" = "* * * * *" ]
tap $? "the job runs run_maintenance every minute, only as a member of the extension"

# pg_cron starts jobs on minute boundaries: wait up to 90 s for the effect
status=""
for _ in $(seq 1 45); do
	status=$(q "SELECT status FROM userlife.get_user('cron', 'sleeper')")
	[ "$status" = active ] && break
	sleep 2
done
[ "$status" = active ]
tap $? "the job ran run_maintenance: the ended suspension was lifted ($status)"
reason=$(q "SELECT reason || ' ' || db_role FROM userlife.audit WHERE partner = 'cron' AND external_id = 'sleeper' ORDER BY audit_id DESC LIMIT 1")
[ "$reason" = "suspension expired cron_maint" ]
tap $? "audited with the reason \"suspension expired\", as the scheduling role ($reason)"
run=""
for _ in $(seq 1 10); do
	run=$(q "SELECT status || ' ' || username FROM cron.job_run_details WHERE jobid = ${job:-0} ORDER BY runid DESC LIMIT 1")
	[ "$run" = "succeeded cron_maint" ] && break
	sleep 1
done
[ "$run" = "succeeded cron_maint" ]
tap $? "pg_cron recorded the run as succeeded, as cron_maint ($run)"

got=$(q "SET ROLE cron_nocron; SELECT userlife.schedule_maintenance('* * * * *')")
grep -q "42501" <<<"$got" && grep -q "GRANT USAGE ON SCHEMA cron TO cron_nocron" <<<"$got" &&
[ "$(q "SELECT count(*) FROM cron.job WHERE username = 'cron_nocron'")" = 0 ]
tap $? "a userlife_owner that may not use pg_cron is refused with 42501, no job made"
got=$(q "SET ROLE cron_nologin; SELECT userlife.schedule_maintenance('* * * * *')")
grep -q "42501" <<<"$got" && grep -q "cannot log in" <<<"$got"
tap $? "a role that cannot log in (pg_cron could not run its job) is refused with 42501"

$BIN/psql -X -q -d postgres -c "CREATE DATABASE $other" >/dev/null
$BIN/psql -X -q -d $other -c "SET client_min_messages = warning" -c "CREATE EXTENSION userlife CASCADE" >/dev/null
got=$($BIN/psql -X -q -At -v VERBOSITY=verbose -d $other -c "SELECT userlife.schedule_maintenance('*/5 * * * *')" 2>&1)
grep -q "55000" <<<"$got" &&
grep -q "SELECT cron.schedule_in_database('userlife-maintenance:$other', '\*/5 \* \* \* \*', 'SELECT userlife.run_maintenance() FROM pg_catalog.pg_depend" <<<"$got"
tap $? "from another database: 55000, the hint names the cron.schedule_in_database call to make in userlife_cron"

[ "$(q "SET ROLE cron_maint; SELECT userlife.unschedule_maintenance()")" = t ] &&
[ "$(q "SELECT count(*) FROM cron.job WHERE jobid = ${job:-0}")" = 0 ] &&
[ "$(q "SET ROLE cron_maint; SELECT userlife.unschedule_maintenance()")" = f ]
tap $? "unschedule_maintenance removes the job (true), then finds none (false)"

job=$(q "SET ROLE cron_maint; SELECT userlife.schedule_maintenance('*/10 * * * *')")
cmd=$(q "SELECT command FROM cron.job WHERE jobid = ${job:-0}")
[[ "$job" =~ ^[0-9]+$ ]] && q "DROP EXTENSION userlife" >/dev/null &&
[ "$(q "SELECT count(*) FROM cron.job WHERE database = 'userlife_cron'")" = 0 ]
tap $? "DROP EXTENSION userlife removes the maintenance job"

# a role with CREATE on the database makes a look-alike after the drop
$PSQL >/dev/null <<'SQL'
SET ROLE cron_evil;
CREATE SCHEMA userlife;
GRANT USAGE ON SCHEMA userlife TO PUBLIC;
CREATE TABLE userlife.hijacked (who text);
GRANT INSERT ON userlife.hijacked TO PUBLIC;
CREATE FUNCTION userlife.run_maintenance(batch_size integer DEFAULT 1000) RETURNS jsonb
	LANGUAGE sql AS $$ INSERT INTO userlife.hijacked VALUES (current_user) RETURNING '{}'::jsonb $$;
SQL
got=$($BIN/psql -X -q -At -d userlife_cron -c "SET ROLE cron_maint" -c "$cmd" 2>&1)
[ -n "$cmd" ] && [ "$(q "SELECT count(*) FROM userlife.hijacked")" = 0 ]
tap $? "the job's command does not run a look-alike userlife.run_maintenance() ($got)"
q "SELECT userlife.run_maintenance()" >/dev/null
[ "$(q "SELECT string_agg(who, ',') FROM userlife.hijacked")" = postgres ]
tap $? "(the look-alike is callable by name: the command's guard is what stops it)"
$PSQL -c "DROP SCHEMA userlife CASCADE" >/dev/null 2>&1

$PSQL >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION userlife;
SELECT userlife.create_partner('cron');
SELECT userlife.register_user('cron', 'held');
SELECT userlife.set_legal_hold('cron', 'held', true, 'case 7');
SET ROLE cron_maint;
SELECT userlife.schedule_maintenance('*/10 * * * *');
SQL
got=$(q "DROP EXTENSION userlife")
grep -q "UL004" <<<"$got" && [ "$(q "SELECT count(*) FROM cron.job WHERE database = 'userlife_cron'")" = 1 ] &&
[ "$(q "SELECT count(*) FROM userlife.users WHERE legal_hold")" = 1 ]
tap $? "DROP EXTENSION under legal hold: UL004, the job and the users stay"

q "SELECT userlife.set_legal_hold('cron', 'held', false, 'case closed')" >/dev/null
q "DROP EXTENSION userlife" >/dev/null
q "SELECT cron.unschedule(jobid) FROM cron.job" >/dev/null 2>&1
$BIN/psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $other" >/dev/null 2>&1
