#!/usr/bin/env bash
# cron.sh — schedule_maintenance registers run_maintenance with pg_cron,
# and the job runs: a suspension that has ended is lifted by it.  Needs the
# cluster test/run starts (pg_cron preloaded, cron.database_name =
# userlife_cron, background workers).  Prints TAP.
set -uo pipefail
PSQL="/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1 -d userlife_cron"

echo "1..5"
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$PSQL >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
CREATE EXTENSION IF NOT EXISTS userlife CASCADE;
SELECT userlife.create_partner('cron');
SELECT userlife.register_user('cron', 'sleeper');
SELECT userlife.set_status('cron', 'sleeper', 'suspended', 'cool-off', clock_timestamp() + interval '1 second');
SQL
sleep 1.5
job=$($PSQL -At -c "SELECT userlife.schedule_maintenance('* * * * *')")
[[ "$job" =~ ^[0-9]+$ ]]
tap $? "schedule_maintenance returns the pg_cron job id ($job)"
cmd=$($PSQL -At -c "SELECT schedule || ' | ' || command FROM cron.job WHERE jobid = ${job:-0}")
[ "$cmd" = "* * * * * | SELECT userlife.run_maintenance()" ]
tap $? "the job runs run_maintenance ($cmd)"

# pg_cron starts jobs on minute boundaries: wait up to 90 s for the effect
status=""
for _ in $(seq 1 45); do
	status=$($PSQL -At -c "SELECT status FROM userlife.get_user('cron', 'sleeper')")
	[ "$status" = active ] && break
	sleep 2
done
[ "$status" = active ]
tap $? "the job ran run_maintenance: the ended suspension was lifted ($status)"
reason=$($PSQL -At -c "SELECT reason FROM userlife.audit WHERE partner = 'cron' AND external_id = 'sleeper' ORDER BY audit_id DESC LIMIT 1")
[ "$reason" = "suspension expired" ]
tap $? "audited with the reason \"suspension expired\" ($reason)"
run=$($PSQL -At -c "SELECT status FROM cron.job_run_details WHERE jobid = ${job:-0} ORDER BY runid DESC LIMIT 1")
[ "$run" = succeeded ]
tap $? "pg_cron recorded the run as succeeded ($run)"
$PSQL -c "SELECT cron.unschedule(${job:-0})" >/dev/null 2>&1
