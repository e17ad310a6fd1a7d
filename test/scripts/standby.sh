#!/usr/bin/env bash
# standby.sh — issue 20 test 1 (SPEC §11): a primary and a hot standby of
# its own (pg_basebackup -R, streaming), users with history, partners,
# bindings and webhook endpoints made on the primary.  Once the standby has
# replayed the primary's last write: every read function and view answers
# the same text on both, as every kind of role; every writing function
# (every volatile function of the extension, from pg_proc) fails on the
# standby with 25006 and "cannot run NAME on a read-only standby", and the
# connection goes on.  Prints TAP.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export USERLIFE_ROOT=$ROOT
. "$ROOT/test/standby/lib.sh"
db=userlife_standby
n=0
tap() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

# the writing calls, one per volatile function: name|statement.  Arguments
# are valid, so that only the standby can refuse them.
WRITES=$(cat <<'EOF'
ack_events|SELECT userlife.ack_events(ARRAY[1]::bigint[])
add_webhook_endpoint|SELECT userlife.add_webhook_endpoint('acme', 'https://hooks.example.com/other')
allow_reenroll|SELECT userlife.allow_reenroll('acme', 'u1')
bind_partner|SELECT userlife.bind_partner('sb_read', 'globex')
claim_events|SELECT userlife.claim_events(10)
claim_webhook_deliveries|SELECT userlife.claim_webhook_deliveries(10)
complete_webhook_delivery|SELECT userlife.complete_webhook_delivery(1, 1, 1, 200, 5)
complete_webhook_deliveries|SELECT userlife.complete_webhook_deliveries('{1}', '{1}', '{1}', '{200}', '{5}', '{NULL}', '{NULL}', '{NULL}')
create_partner|SELECT userlife.create_partner('initech')
delete_user|SELECT userlife.delete_user('acme', 'u1', 'standby')
delete_users|SELECT userlife.delete_users('acme', ARRAY['u1', 'u2'], 'standby')
disable_user|SELECT userlife.disable_user('acme', 'u1', 'standby')
enable_user|SELECT userlife.enable_user('acme', 'u3', 'standby')
enrollee_request|SELECT userlife.enrollee_request(jsonb_build_object('partner_id', 'acme', 'user_id', 'u1', 'environment', 'production', 'email', 'ops@acme.test', 'is_fraudulent', true) || userlife.generate_signature('acme'))
erase_user|SELECT userlife.erase_user('acme', 'u1', 'standby')
import_users|SELECT * FROM userlife.import_users('acme', '[{"external_id": "imp1", "email": "imp1@example.com"}]')
issue_api_key|SELECT userlife.issue_api_key('acme')
mark_verified|SELECT userlife.mark_verified('acme', 'u1', '{"email": true}')
purge_expired|SELECT userlife.purge_expired(10)
rebuild_search|SELECT userlife.rebuild_search()
record_job|SELECT userlife.record_job('acme', 'u1', 'kyc')
register_user|SELECT userlife.register_user('acme', 'new1', 'New', 'new1@example.com')
remove_webhook_endpoint|SELECT userlife.remove_webhook_endpoint('acme', 1)
replay_webhooks|SELECT userlife.replay_webhooks('acme', 1, now() - interval '1 day')
restore_user|SELECT userlife.restore_user('acme', 'u5', 'standby')
rotate_webhook_secret|SELECT userlife.rotate_webhook_secret('acme', 1)
run_maintenance|SELECT userlife.run_maintenance(10)
schedule_maintenance|SELECT userlife.schedule_maintenance('*/5 * * * *')
set_fraud_flag|SELECT userlife.set_fraud_flag('acme', 'u1', true, 'standby')
set_legal_hold|SELECT userlife.set_legal_hold('acme', 'u1', true, 'standby')
set_retention|SELECT userlife.set_retention('acme', '10 days')
set_status|SELECT userlife.set_status('acme', 'u1', 'suspended', 'standby')
set_webhook_endpoint|SELECT userlife.set_webhook_endpoint('acme', 1, false)
strip_privileges|SELECT userlife.strip_privileges()
unbind_partner|SELECT userlife.unbind_partner('sb_dev', 'acme')
unschedule_maintenance|SELECT userlife.unschedule_maintenance()
update_user|SELECT userlife.update_user('acme', 'u1', display_name => 'Renamed')
verify_signature|SELECT userlife.verify_signature('acme', 'c2lnbmF0dXJl', '2026-01-01T00:00:00Z')
EOF
)
# volatile for the clock or the server's state only: they read, and work on a standby
READ_ONLY_VOLATILE="check_preload generate_signature webhook_claim_held_back"

# the reads of SPEC §11 and every other read-only function and view
cat >"$SB_TMP/reads.sql" <<'EOF'
SELECT * FROM userlife.get_user('acme', 'u1');
SELECT * FROM userlife.get_user('acme', 'u5');
SELECT * FROM userlife.get_user('globex', 'g1');
SELECT * FROM userlife.list_users('acme');
SELECT * FROM userlife.list_users('acme', status => 'suspended');
SELECT * FROM userlife.list_users('acme', search => 'user 1', page_size => 50);
SELECT * FROM userlife.list_users('acme', tag => 't1', page_size => 5, page_offset => 2);
SELECT userlife.count_users('acme'), userlife.count_users('acme', search => 'user'), userlife.count_users('acme', tag => 't2');
SELECT * FROM userlife.users_page('acme', 7, 3);
SELECT * FROM userlife.users_page('acme', 50, 0, 'active', 'user');
SELECT userlife.user_summary('acme', 'u1');
SELECT userlife.user_summary('acme', 'u2');
SELECT * FROM userlife.user_history('acme', 'u1');
SELECT * FROM userlife.user_history('acme', 'u6');
SELECT userlife.verify_audit('acme', 'u1'), userlife.verify_audit('acme', 'u6'), userlife.verify_audit('globex', 'g1');
SELECT * FROM userlife.verify_partner_audit('acme');
SELECT * FROM userlife.status_counts ORDER BY 1, 2;
SELECT * FROM userlife.due_for_purge ORDER BY 1, 2;
SELECT * FROM userlife.webhook_deliveries ORDER BY partner, endpoint_id, event_id;
SELECT * FROM userlife.webhook_attempts ORDER BY 1, 2, 3;
-- event_backlog's age column is now() minus a stored time: the rest
SELECT partner, undelivered, oldest_undelivered_at, claimed_unacknowledged, claims_lapsed
  FROM userlife.event_backlog ORDER BY 1;
SELECT count(*) FROM userlife.audit_size;
SELECT * FROM userlife.maintenance_runs ORDER BY 1;
SELECT userlife.bound_partners(), userlife.sees_every_partner();
SELECT userlife.canonical_body('{"b": [1, 2], "a": "x"}');
SELECT userlife.generate_signature('acme', '2026-01-01T00:00:00Z');
SELECT userlife.check_preload();
EOF
# the functions and views the reads cover, to compare with the catalog
READ_COVERED="get_user list_users count_users users_page user_summary user_history verify_audit
verify_partner_audit bound_partners sees_every_partner canonical_body status_counts due_for_purge
webhook_deliveries webhook_attempts event_backlog audit_size maintenance_runs"

nwrites=$(echo "$WRITES" | grep -c .)
echo "1..$((9 + nwrites))"

sb_start_primary || exit 1
$PP -d postgres -c "CREATE DATABASE $db" >/dev/null
$PP -d $db >/dev/null <<'EOF'
SET client_min_messages = warning;
CREATE EXTENSION userlife CASCADE;
CREATE ROLE sb_dev LOGIN IN ROLE userlife_developer;
CREATE ROLE sb_comp LOGIN IN ROLE userlife_compliance;
CREATE ROLE sb_read LOGIN IN ROLE userlife_reader;
CREATE ROLE sb_admin LOGIN IN ROLE userlife_admin;
SELECT userlife.create_partner('acme', 'Acme', '30 days');
SELECT userlife.create_partner('globex');
SELECT userlife.issue_api_key('acme') IS NOT NULL;
SELECT userlife.bind_partner(r, 'acme') FROM unnest(ARRAY['sb_dev', 'sb_comp', 'sb_read', 'sb_admin']::regrole[]) r;
SELECT userlife.bind_partner('sb_dev', 'globex');
SELECT count(userlife.register_user('acme', 'u' || i, 'User ' || i, 'u' || i || '@example.com',
	jsonb_build_object('n', i), ARRAY['t' || (i % 3)])) FROM generate_series(1, 20) i;
EOF
tap $? "a primary with users, partners and bindings"

# the standby from a base backup; what follows reaches it by streaming
sb_start_standby
tap $? "a hot standby from pg_basebackup -R"

$PP -d $db >/dev/null <<'EOF'
SET client_min_messages = warning;
SELECT userlife.add_webhook_endpoint('acme', 'https://hooks.example.com/acme');
SELECT count(userlife.register_user('acme', 'u' || i, 'User ' || i, 'u' || i || '@example.com',
	jsonb_build_object('n', i), ARRAY['t' || (i % 3)])) FROM generate_series(21, 40) i;
SELECT userlife.register_user('globex', 'g1', 'G One', 'g1@example.com');
SELECT userlife.update_user('acme', 'u1', display_name => 'User One', tags => ARRAY['vip']);
SELECT userlife.set_status('acme', 'u1', 'suspended', 'chargeback', now() + interval '30 days');
SELECT userlife.set_fraud_flag('acme', 'u2', true, 'fraud ring');
SELECT userlife.record_job('acme', 'u2', 'kyc', 'failed');
SELECT userlife.mark_verified('acme', 'u3', '{"email": true}');
SELECT userlife.set_status('acme', 'u4', 'inactive', 'quiet');
SELECT userlife.delete_user('acme', 'u5', 'asked');
SELECT userlife.erase_user('acme', 'u6', 'gdpr');
SELECT userlife.set_legal_hold('acme', 'u7', true, 'case 12');
SELECT userlife.set_retention('globex', '1 second');
SELECT userlife.delete_user('globex', 'g1', 'asked');
SELECT pg_sleep(1.1);
EOF
tap $? "history, webhook endpoint, a deleted, an erased and a held user on the primary"

sb_wait_replay $db
tap $? "the standby replayed up to the primary's last write"

# reads: the same text on both servers, as every kind of role
same=0
for role in postgres sb_dev sb_comp sb_read sb_admin; do
	$PP -U $role -d $db -v ON_ERROR_STOP=0 -f "$SB_TMP/reads.sql" >"$SB_TMP/p.$role" 2>&1
	$PS -U $role -d $db -v ON_ERROR_STOP=0 -f "$SB_TMP/reads.sql" >"$SB_TMP/s.$role" 2>&1
	if ! diff -u "$SB_TMP/p.$role" "$SB_TMP/s.$role" >"$SB_TMP/diff.$role"; then
		same=1
		echo "# $role reads differ:"
		head -20 "$SB_TMP/diff.$role" | sed 's/^/# /'
	fi
done
tap $same "every read answers the same text on primary and standby, for superuser, developer, compliance, reader and admin"
! grep -q ERROR "$SB_TMP/s.postgres" && [ "$(grep -c . "$SB_TMP/s.postgres")" -gt 100 ]
tap $? "as superuser no read fails on the standby ($(grep -c ERROR "$SB_TMP/s.postgres") errors)"

# every read-only function and view of the catalog is among the reads
catalog_reads=$($PS -d $db -At -c "
	SELECT p.proname FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	  AND d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'userlife')
	 WHERE p.provolatile <> 'v'
	UNION
	SELECT c.relname FROM pg_class c JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
	  AND d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'userlife')
	 WHERE c.relkind = 'v' ORDER BY 1")
missing=$(comm -23 <(echo "$catalog_reads" | sort) <(echo $READ_COVERED | tr ' ' '\n' | sort) | tr '\n' ' ')
[ -z "$missing" ]
tap $? "the reads cover every stable or immutable function and every view of the catalog${missing:+ (missing: $missing)}"

# every volatile function of the catalog (triggers apart) is a writing call here or reads
catalog_writes=$($PS -d $db -At -c "
	SELECT p.proname FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
	  AND d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'userlife')
	 WHERE p.provolatile = 'v' AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
	 ORDER BY 1")
listed=$( (echo "$WRITES" | cut -d'|' -f1; echo $READ_ONLY_VOLATILE | tr ' ' '\n') | sort)
diffs=$(diff <(echo "$catalog_writes" | sort) <(echo "$listed") | grep '^[<>]' | tr '\n' ' ')
[ -z "$diffs" ]
tap $? "the writing calls are exactly the catalog's volatile functions but $READ_ONLY_VOLATILE${diffs:+ ($diffs)}"

# writes on the standby: 25006 at the start, then the same connection goes on
while IFS='|' read -r name sql; do
	out=$($PS -d $db -v VERBOSITY=verbose -v ON_ERROR_STOP=0 -At -c "$sql" -c "SELECT 'alive'" 2>&1)
	echo "$out" | grep -q "ERROR:  25006: cannot run $name on a read-only standby" &&
		[ "$(echo "$out" | tail -1)" = alive ]
	r=$?
	[ $r = 0 ] || echo "# $name: $(echo "$out" | head -3 | tr '\n' ' ')"
	tap $r "$name on the standby: 25006, and the connection goes on"
done <<<"$WRITES"

! grep -E "XX000|cannot assign TransactionIds|terminated by signal|TRAP:" "$SB_STANDBY_LOG" "$SB_PRIMARY_LOG"
tap $? "no XX000, no crash in either server's log"
