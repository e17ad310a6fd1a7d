/*-------------------------------------------------------------------------
 *
 * retention.c
 *		Legal hold, purge of soft-deleted users past their retention,
 *		immediate erasure, and the periodic maintenance that runs both.
 *
 * Purging a user: its row is deleted (the users trigger writes the one
 * "purge" or "erase" audit row and event, and refuses a user under legal
 * hold), its jobs go with it (ON DELETE CASCADE), its audit rows and
 * events are redacted (AuditRedactUser), and a tombstone keeps the SHA-256
 * of its external_id, its user_id and the chain head, nothing personal.
 *
 * Locking: purge_expired picks its batch with FOR UPDATE SKIP LOCKED, so
 * concurrent purges never wait on each other or on users being changed by
 * live traffic; the batch size bounds how long its row locks are held.
 *
 * Pace: with userlife.purge_rate_limit set, purge_expired sleeps between
 * users so that it removes at most that many per second.  A purge is CPU
 * work beside live traffic; on a machine whose cores the traffic already
 * keeps busy, the pause is what leaves the traffic its share.  The batch's
 * row locks are held through the pauses, so batch_size / rate bounds how
 * long they are held.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "userlife.h"

PG_FUNCTION_INFO_V1(userlife_set_legal_hold);
PG_FUNCTION_INFO_V1(userlife_purge_expired);
PG_FUNCTION_INFO_V1(userlife_erase_user);
PG_FUNCTION_INFO_V1(userlife_run_maintenance);
PG_FUNCTION_INFO_V1(userlife_schedule_maintenance);

#define DEFAULT_BATCH 1000


/*
 * purge_user
 *		Hard-deletes one locked user and leaves its tombstone.  action is
 *		"purge" or "erase".  Must run inside AccessEnter.
 */
static void
purge_user(Oid caller, Datum user_id, const char *action, const char *reason)
{
	static SPIPlanPtr delete_plan = NULL;
	static SPIPlanPtr tombstone_plan = NULL;
	static SPIPlanPtr head_plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {user_id};

	UserlifeBeginWrite(caller, reason, action);
	CurrentWrite.lifecycle_path = true;
	/*
	 * The tombstone first: it reads what the delete removes.  It keeps a
	 * re-enrollment the partner already allowed (SPEC §5.6): the permission
	 * was given for the external_id, and purging the row must not take it
	 * back.
	 */
	UserlifeRun(&tombstone_plan,
		"INSERT INTO userlife.tombstones AS t (partner, external_id_digest, user_id, enrollment_count,"
		" allow_new_enroll)"
		" SELECT u.partner, pg_catalog.sha256(pg_catalog.convert_to(u.external_id, 'UTF8')),"
		"  u.user_id, u.enrollment_count, u.allow_new_enroll FROM userlife.users u WHERE u.user_id = $1 "
		"ON CONFLICT (partner, external_id_digest) DO UPDATE SET user_id = excluded.user_id,"
		" enrollment_count = excluded.enrollment_count, allow_new_enroll = excluded.allow_new_enroll,"
		" purged_at = pg_catalog.now()",
		1, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	UserlifeRun(&delete_plan, "DELETE FROM userlife.users u WHERE u.user_id = $1",
		1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	if (SPI_processed != 1)
		elog(ERROR, "purge deleted %d users", (int) SPI_processed);
	UserlifeEndWrite();
	/* the tombstone keeps the chain head, so a removed tail is still detected */
	UserlifeRun(&head_plan,
		"UPDATE userlife.tombstones t SET audit_head = ("
		" SELECT a.row_hash FROM userlife.audit a WHERE a.user_id = $1"
		" ORDER BY a.audit_id DESC LIMIT 1) WHERE t.user_id = $1",
		1, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	AuditRedactUser(user_id);
}

/*
 * pace_purge
 *		Sleeps until done users purged since started keep to
 *		userlife.purge_rate_limit.  The sleep ends early on a cancel or
 *		a shutdown request.
 */
static void
pace_purge(TimestampTz started, uint64 done)
{
	int64		due_us;
	int64		elapsed_us;
	long		wait_ms;

	if (userlife_purge_rate_limit <= 0)
		return;
	due_us = (int64) ((double) done * USECS_PER_SEC / userlife_purge_rate_limit);
	elapsed_us = GetCurrentTimestamp() - started;
	wait_ms = (long) ((due_us - elapsed_us) / 1000);
	if (wait_ms > 0)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	CHECK_FOR_INTERRUPTS();
}

/*
 * purge_expired
 *		Purges up to batch_size users past purge_after and not on legal
 *		hold; returns how many.  Must run inside AccessEnter.
 */
static int64
purge_expired(Oid caller, int32 batch_size)
{
	static SPIPlanPtr pick_plan = NULL;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	SPITupleTable *batch;
	uint64		n;
	uint64		i;
	TimestampTz started = GetCurrentTimestamp();

	values[0] = Int32GetDatum(batch_size);
	UserlifeRun(&pick_plan,
		"SELECT u.user_id FROM userlife.users u "
		"WHERE u.status = 'deleted' AND u.purge_after <= pg_catalog.now() AND NOT u.legal_hold "
		"ORDER BY u.purge_after LIMIT $1 FOR UPDATE SKIP LOCKED",
		1, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	batch = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		purge_user(caller, SPI_getbinval(batch->vals[i], batch->tupdesc, 1, &isnull),
				   "purge", "retention period ended");
		pace_purge(started, i + 1);
	}
	return (int64) n;
}

static int32
batch_size_arg(FunctionCallInfo fcinfo, int argno)
{
	int32		size = PG_ARGISNULL(argno) ? DEFAULT_BATCH : PG_GETARG_INT32(argno);

	if (size < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be positive")));
	return size;
}

/* purge_expired(batch_size): hard-deletes users whose retention ended */
Datum
userlife_purge_expired(PG_FUNCTION_ARGS)
{
	int32		batch_size = batch_size_arg(fcinfo, 0);
	AccessScope scope;
	int64		purged;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	purged = purge_expired(scope.caller, batch_size);
	AccessLeave(&scope);
	PG_RETURN_INT64(purged);
}

/* erase_user(partner, external_id, reason): purge now, whatever the status */
Datum
userlife_erase_user(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	char	   *external_id = UserlifeRequireText(fcinfo, 1, "external_id");
	char	   *reason = UserlifeRequireText(fcinfo, 2, "reason");
	AccessScope scope;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	Datum		user_id;
	bool		isnull;

	UserlifeCheckPartnerId(partner);
	if (reason[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reason is required to erase a user")));
	AccessEnter(&scope, ACCESS_COMPLIANCE, partner);
	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(external_id);
	UserlifeRun(&lock_plan,
		"SELECT u.user_id, u.legal_hold FROM userlife.users u "
		"WHERE u.partner = $1 AND u.external_id = $2 FOR UPDATE",
		2, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		UserlifeUserNotFound(partner, external_id);
	user_id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_LEGAL_HOLD),
				 errmsg("user is under legal hold"),
				 errdetail("A user under legal hold cannot be purged or erased."),
				 errhint("Release the hold with userlife.set_legal_hold() first.")));
	purge_user(scope.caller, user_id, "erase", reason);
	AccessLeave(&scope);
	PG_RETURN_BOOL(true);
}

/* set_legal_hold(partner, external_id, hold, reason) */
Datum
userlife_set_legal_hold(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	char	   *external_id = UserlifeRequireText(fcinfo, 1, "external_id");
	char	   *reason;
	AccessScope scope;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, BOOLOID};
	Datum		values[3];
	Datum		result;

	UserlifeRequireArg(fcinfo, 2, "hold");
	reason = UserlifeRequireText(fcinfo, 3, "reason");
	UserlifeCheckPartnerId(partner);
	AccessEnter(&scope, ACCESS_COMPLIANCE, partner);
	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(external_id);
	values[2] = PG_GETARG_DATUM(2);
	UserlifeBeginWrite(scope.caller, reason, "legal_hold");
	UserlifeRun(&plan,
		"UPDATE userlife.users u SET legal_hold = $3 "
		"WHERE u.partner = $1 AND u.external_id = $2 AND u.legal_hold <> $3 RETURNING u",
		3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 1)
	{
		bool		isnull;

		result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								   false, -1);
	}
	else
		result = UserlifeGetUserRow(partner, external_id);
	UserlifeEndWrite();
	AccessLeave(&scope);
	PG_RETURN_DATUM(result);
}

/*
 * end_due_suspensions
 *		Suspended users whose suspended_until has passed become active,
 *		audited with the reason "suspension expired".
 */
static int64
end_due_suspensions(Oid caller, int32 batch_size)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];
	int64		n;

	values[0] = Int32GetDatum(batch_size);
	UserlifeBeginWrite(caller, "suspension expired", "status");
	CurrentWrite.lifecycle_path = true;
	UserlifeRun(&plan,
		"UPDATE userlife.users u SET status = 'active' WHERE u.user_id IN ("
		" SELECT s.user_id FROM userlife.users s"
		" WHERE s.suspended_until <= pg_catalog.now() AND s.status = 'suspended'"
		" LIMIT $1 FOR UPDATE SKIP LOCKED)",
		1, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	n = (int64) SPI_processed;
	UserlifeEndWrite();
	return n;
}

static int64
drop_delivered_events(void)
{
	static SPIPlanPtr plan = NULL;

	UserlifeRun(&plan,
		"DELETE FROM userlife.events e "
		"WHERE e.delivered_at < pg_catalog.now() - '7 days'::pg_catalog.interval",
		0, NULL, NULL, NULL, false, 0, SPI_OK_DELETE);
	return (int64) SPI_processed;
}

static void
push_count(JsonbParseState **state, const char *key, int64 value)
{
	JsonbValue	k;
	JsonbValue	v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, Int64GetDatum(value)));
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * run_maintenance(batch_size): ends due suspensions, purges expired users,
 * drops delivered events older than 7 days, remembered signatures whose
 * window has passed and bindings of dropped or renamed roles; returns the
 * counts.
 */
Datum
userlife_run_maintenance(PG_FUNCTION_ARGS)
{
	int32		batch_size = batch_size_arg(fcinfo, 0);
	AccessScope scope;
	JsonbParseState *state = NULL;
	JsonbValue *res;
	int64		suspensions;
	int64		purged;
	int64		events;
	int64		signatures;
	int64		bindings;
	Jsonb	   *built;
	Jsonb	   *result;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	suspensions = end_due_suspensions(scope.caller, batch_size);
	purged = purge_expired(scope.caller, batch_size);
	events = drop_delivered_events();
	signatures = SignatureForgetExpired();
	bindings = AccessDropStaleBindings();

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_count(&state, "suspensions_ended", suspensions);
	push_count(&state, "users_purged", purged);
	push_count(&state, "events_dropped", events);
	push_count(&state, "signatures_forgotten", signatures);
	push_count(&state, "bindings_dropped", bindings);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	built = JsonbValueToJsonb(res);
	result = (Jsonb *) SPI_palloc(VARSIZE(built));
	memcpy(result, built, VARSIZE(built));
	AccessLeave(&scope);
	PG_RETURN_JSONB_P(result);
}

/*
 * schedule_maintenance(schedule): registers run_maintenance with pg_cron,
 * found through the extension's members wherever it is installed; 55000
 * without it.
 */
Datum
userlife_schedule_maintenance(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr find_plan = NULL;
	char	   *schedule = PG_ARGISNULL(0) ? "*/5 * * * *" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	AccessScope scope;
	char	   *cron_schema;
	char	   *sql;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		isnull;
	int64		job_id;
	int			rc;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	/* pg_cron keeps its functions in a schema of its own: find schedule() by membership */
	UserlifeRun(&find_plan,
		"SELECT n.nspname FROM pg_catalog.pg_depend d"
		" JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid"
		" JOIN pg_catalog.pg_proc p ON p.oid = d.objid"
		" JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
		" WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass"
		" AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass"
		" AND d.deptype = 'e' AND e.extname = 'pg_cron'"
		" AND p.proname = 'schedule' AND p.pronargs = 3",
		0, NULL, NULL, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron is not installed in this database"),
				 errhint("Install pg_cron (shared_preload_libraries = 'pg_cron', then CREATE EXTENSION pg_cron), or call userlife.run_maintenance() from another scheduler.")));
	cron_schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	sql = psprintf("SELECT %s.schedule($1, $2, $3)", quote_identifier(cron_schema));
	values[0] = CStringGetTextDatum("userlife-maintenance");
	values[1] = CStringGetTextDatum(schedule);
	values[2] = CStringGetTextDatum("SELECT userlife.run_maintenance()");
	rc = SPI_execute_with_args(sql, 3, argtypes, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "cron.schedule failed");
	job_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	AccessLeave(&scope);
	PG_RETURN_INT64(job_id);
}
