/*-------------------------------------------------------------------------
 *
 * retention.c
 *		Legal hold, purge of soft-deleted users past their retention,
 *		immediate erasure, and the periodic maintenance that runs both.
 *
 * Purging a user: its row is deleted (the users trigger writes the one
 * "purge" or "erase" audit row and event, and refuses a user under legal
 * hold), its jobs go with it (ON DELETE CASCADE), its audit rows and
 * events are redacted (ChainRedactUser), and a tombstone keeps the SHA-256
 * of its external_id, its user_id and the chain head, nothing personal.
 *
 * Locking: purge_expired picks its batch with FOR UPDATE SKIP LOCKED, so
 * concurrent purges never wait on each other or on users being changed by
 * live traffic; the batch size bounds how long its row locks are held.
 *
 * Isolation: one user whose purge fails (a DBA's foreign key into users, a
 * trigger of theirs) must not stop the others, so users are purged in
 * subtransactions (see purge_rows), a failing one is skipped with a
 * WARNING and recorded in userlife.purge_failures, and users that failed
 * are picked after the others.  Memory: each user is purged in an SPI
 * connection of its own and a memory context reset after it, so a batch
 * uses the memory of one user plus the picked ids.
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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "userlife.h"
#include "access.h"
#include "chain.h"
#include "lifecycle.h"
#include "monitor.h"
#include "retention.h"
#include "signature.h"
#include "util.h"
#include "webhooks.h"
#include "writectx.h"

PG_FUNCTION_INFO_V1(userlife_set_legal_hold);
PG_FUNCTION_INFO_V1(userlife_purge_expired);
PG_FUNCTION_INFO_V1(userlife_erase_user);
PG_FUNCTION_INFO_V1(userlife_run_maintenance);

#define DEFAULT_BATCH 1000

/* users purged in one subtransaction while none of them fails */
#define PURGE_GROUP 64

/* what pace_purge needs: when the call started, how many users it has done */
typedef struct PurgePace
{
	TimestampTz started;
	uint64		done;
	uint64		picked;			/* for the progress report */
} PurgePace;


static int	userlife_purge_rate_limit = 0;

void
RetentionInit(void)
{
	DefineCustomIntVariable("userlife.purge_rate_limit",
							"Most users one purge_expired call removes per second.",
							"The purge pauses between users to keep to it, so live traffic keeps "
							"its share of the CPU; 0 purges as fast as it can.",
							&userlife_purge_rate_limit, 0, 0, 1000000,
							PGC_USERSET, 0, NULL, NULL, NULL);
}

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
	Oid			argtypes[2] = {UUIDOID, BYTEAOID};
	Datum		values[2] = {user_id, (Datum) 0};

	Assert(AccessIsEntered());

	WriteCtxBegin(caller, reason, action, WRITE_LIFECYCLE);
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
	WriteCtxEnd();
	/* the tombstone keeps the chain head (as redaction leaves it), so a removed tail is detected */
	values[1] = PointerGetDatum(ChainRedactUser(user_id));
	UserlifeRun(&head_plan, "UPDATE userlife.tombstones t SET audit_head = $2 WHERE t.user_id = $1",
		2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
}

/*
 * pace_purge
 *		Counts one more user and sleeps until the users purged since the
 *		call started keep to userlife.purge_rate_limit.  The sleep ends
 *		early on a cancel or a shutdown request.
 */
static void
pace_purge(PurgePace *pace)
{
	int64		due_us;
	int64		elapsed_us;
	long		wait_ms;

	pace->done++;
	if (userlife_purge_rate_limit > 0)
	{
		due_us = (int64) ((double) pace->done * USECS_PER_SEC / userlife_purge_rate_limit);
		elapsed_us = GetCurrentTimestamp() - pace->started;
		wait_ms = (long) ((due_us - elapsed_us) / 1000);
		if (wait_ms > 0)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 wait_ms, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
	CHECK_FOR_INTERRUPTS();
}

/*
 * record_purge_failure
 *		Remembers that the user's purge failed, so that the next calls take
 *		the other users due first.  Runs in the caller's transaction, after
 *		the failed purge was rolled back.  Only the SQLSTATE is kept: the
 *		message may carry personal data, which must not outlive the user.
 */
static void
record_purge_failure(Datum user_id, int sqlerrcode)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, TEXTOID};
	Datum		values[2];

	values[0] = user_id;
	values[1] = CStringGetTextDatum(unpack_sql_state(sqlerrcode));
	UserlifeRun(&plan,
		"INSERT INTO userlife.purge_failures AS f (user_id, failed_at, attempts, sqlstate)"
		" VALUES ($1, pg_catalog.clock_timestamp(), 1, $2)"
		" ON CONFLICT (user_id) DO UPDATE SET failed_at = excluded.failed_at,"
		" attempts = f.attempts + 1, sqlstate = excluded.sqlstate",
		2, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
}

/*
 * purge_in_subxact
 *		Purges the n users of rows (user_id, partner, external_id) in one
 *		subtransaction, as PL/pgSQL runs a block with an exception handler;
 *		returns NULL, or the error (copied into cxt) after rolling all n
 *		back.  A cancel is not a user's failure: it is raised again.  Each
 *		user is purged in an SPI connection of its own, so what its
 *		statements leave behind is freed after it; cxt is reset by the
 *		caller.
 */
static ErrorData *
purge_in_subxact(Oid caller, HeapTuple *rows, TupleDesc desc, int n,
				 MemoryContext cxt, PurgePace *pace)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		int			i;

		for (i = 0; i < n; i++)
		{
			bool		isnull;

			if (SPI_connect() != SPI_OK_CONNECT)
				elog(ERROR, "SPI_connect failed");
			purge_user(caller, SPI_getbinval(rows[i], desc, 1, &isnull),
					   "purge", "retention period ended");
			SPI_finish();
			pace_purge(pace);
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		/* also pops the SPI connection the purge was in */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

/*
 * purge_rows
 *		Purges the n users of rows, each isolated from the others: a user
 *		whose purge fails (a DBA's foreign key into users, a trigger of
 *		theirs) is rolled back alone, reported with a WARNING naming it and
 *		the error, and remembered; the others are purged.
 *
 *		The users go in groups of PURGE_GROUP per subtransaction, and one
 *		by one only when their group failed.  A committed subtransaction
 *		keeps 8 kB of memory until the transaction ends (its context, once
 *		written to by the audit table's statement trigger, stays with the
 *		parent), and its XID sits in every snapshot taken meanwhile; one per
 *		user would cost 80 MB and overflow the subtransaction cache for a
 *		batch of 10,000.
 */
static void
purge_rows(Oid caller, HeapTuple *rows, TupleDesc desc, uint64 n, MemoryContext cxt,
		   PurgePace *pace, int64 *purged, int64 *failed)
{
	MemoryContext outer = CurrentMemoryContext;
	uint64		start;

	for (start = 0; start < n; start += PURGE_GROUP)
	{
		int			size = (int) Min((uint64) PURGE_GROUP, n - start);
		int			i;

		MonitorProgress("purging users, %llu of %llu done, %lld failed",
						(unsigned long long) pace->done, (unsigned long long) pace->picked,
						(long long) *failed);

		if (purge_in_subxact(caller, rows + start, desc, size, cxt, pace) == NULL)
		{
			*purged += size;
			MemoryContextReset(cxt);
			continue;
		}
		MemoryContextReset(cxt);
		for (i = 0; i < size; i++)
		{
			HeapTuple	row = rows[start + i];
			ErrorData  *edata = purge_in_subxact(caller, &row, desc, 1, cxt, pace);
			bool		isnull;

			if (edata == NULL)
				(*purged)++;
			else
			{
				/* the message and the failure's record: in cxt, not the SPI procedure's */
				MemoryContextSwitchTo(cxt);
				ereport(WARNING,
						(errcode(ERRCODE_WARNING),
						 errmsg("could not purge %s: %s",
								UserlifeUserName(SPI_getvalue(row, desc, 2), SPI_getvalue(row, desc, 3)),
								edata->message),
						 errdetail("The error was SQLSTATE %s%s%s",
								   unpack_sql_state(edata->sqlerrcode),
								   edata->detail ? ": " : ".", edata->detail ? edata->detail : ""),
						 errhint("The user stays deleted; purge_expired tries it again after the other users due for purge.")));
				record_purge_failure(SPI_getbinval(row, desc, 1, &isnull), edata->sqlerrcode);
				(*failed)++;
			}
			MemoryContextSwitchTo(outer);
			MemoryContextReset(cxt);
		}
	}
}

/*
 * pick_due
 *		Locks up to limit users due for purge with one of the pick
 *		statements; returns their result table (user_id, partner,
 *		external_id), freed by the caller.
 */
static SPITupleTable *
pick_due(SPIPlanPtr *plan, const char *sql, int32 limit, uint64 *n)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1];

	values[0] = Int32GetDatum(limit);
	UserlifeRun(plan, sql, 1, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	*n = SPI_processed;
	return SPI_tuptable;
}

/* a user due for purge; a failure older than the current deletion does not count */
#define DUE_FOR_PURGE \
	"u.status = 'deleted' AND u.purge_after <= pg_catalog.now() AND NOT u.legal_hold"
#define FAILED_THIS_DELETION \
	"f.user_id = u.user_id" \
	" AND f.failed_at >= coalesce(u.deleted_at, '-infinity'::pg_catalog.timestamptz)"

/*
 * purge_expired
 *		Purges up to batch_size users past purge_after and not on legal
 *		hold; counts the purged and the failed ones.  Must run inside
 *		AccessEnter.
 *
 *		Users whose purge failed before go last: first the others, oldest
 *		purge_after first, then, if the batch has room, the failed ones,
 *		longest since their failure first.  Ordering by purge_after alone,
 *		a user that cannot be purged would be first in every call and, with
 *		a batch of one, stop all purging; remembering failures only for the
 *		rest of a call would retry it first in every call, which pg_cron
 *		starts afresh.  Both picks lock with SKIP LOCKED before anything is
 *		purged, so a user that fails in this call is not picked twice.
 */
static void
purge_expired(Oid caller, int32 batch_size, int64 *purged, int64 *failed)
{
	static SPIPlanPtr fresh_plan = NULL;
	static SPIPlanPtr failed_plan = NULL;
	SPITupleTable *picks[2] = {NULL, NULL};
	uint64		counts[2] = {0, 0};
	MemoryContext cxt;
	PurgePace	pace;
	int			p;

	Assert(AccessIsEntered());

	*purged = 0;
	*failed = 0;
	pace.started = GetCurrentTimestamp();
	pace.done = 0;
	picks[0] = pick_due(&fresh_plan,
		"SELECT u.user_id, u.partner, u.external_id FROM userlife.users u "
		"WHERE " DUE_FOR_PURGE
		" AND NOT EXISTS (SELECT 1 FROM userlife.purge_failures f WHERE " FAILED_THIS_DELETION ") "
		"ORDER BY u.purge_after LIMIT $1 FOR UPDATE OF u SKIP LOCKED",
		batch_size, &counts[0]);
	if (counts[0] < (uint64) batch_size)
		picks[1] = pick_due(&failed_plan,
			"SELECT u.user_id, u.partner, u.external_id"
			" FROM userlife.purge_failures f JOIN userlife.users u ON " FAILED_THIS_DELETION
			" WHERE " DUE_FOR_PURGE
			" ORDER BY f.failed_at LIMIT $1 FOR UPDATE OF u SKIP LOCKED",
			batch_size - (int32) counts[0], &counts[1]);

	pace.picked = counts[0] + counts[1];
	cxt = AllocSetContextCreate(CurrentMemoryContext, "purge_expired user", ALLOCSET_DEFAULT_SIZES);
	for (p = 0; p < 2; p++)
	{
		if (picks[p] == NULL)
			continue;
		purge_rows(caller, picks[p]->vals, picks[p]->tupdesc, counts[p], cxt, &pace, purged, failed);
		SPI_freetuptable(picks[p]);
	}
	MemoryContextDelete(cxt);
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
	int64		failed;
	bool		progress;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	progress = MonitorProgressBegin("purge_expired");
	purge_expired(scope.caller, batch_size, &purged, &failed);
	MonitorProgressEnd(progress);
	AccessLeave(&scope);
	PG_RETURN_INT64(purged);
}

/*
 * RetentionRefuseLegalHold: the UL004 of erasing or purging a user under
 * legal hold, from erase_user and from the users trigger
 */
void
RetentionRefuseLegalHold(const char *user_name)
{
	ereport(ERROR,
			(errcode(ERRCODE_USERLIFE_LEGAL_HOLD),
			 errmsg("%s is under legal hold", user_name),
			 errdetail("A user under legal hold cannot be purged or erased."),
			 errhint("Release the hold with userlife.set_legal_hold() first.")));
}

/* erase_user(partner, external_id, reason): purge now, whatever the status */
Datum
userlife_erase_user(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	char	   *reason = UserlifeRequireText(fcinfo, 2, "reason");
	Datum		user_id;
	bool		isnull;

	UserlifeCheckPartnerId(call.partner);
	if (reason[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reason is required to erase a user")));
	AccessEnter(&call.scope, ACCESS_COMPLIANCE, call.partner);
	LifecycleReadUser(&lock_plan,
					  "SELECT u.user_id, u.legal_hold FROM userlife.users u "
					  "WHERE u.partner = $1 AND u.external_id = $2 FOR UPDATE",
					  &call, false);
	user_id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		RetentionRefuseLegalHold(UserlifeUserName(call.partner, call.external_id));
	purge_user(call.scope.caller, user_id, "erase", reason);
	AccessLeave(&call.scope);
	PG_RETURN_BOOL(true);
}

/* set_legal_hold(partner, external_id, hold, reason) */
Datum
userlife_set_legal_hold(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	char	   *reason;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, BOOLOID};
	Datum		values[3];
	Datum		result;

	UserlifeRequireArg(fcinfo, 2, "hold");
	reason = UserlifeRequireText(fcinfo, 3, "reason");
	AccessEnterUser(&call, ACCESS_COMPLIANCE);
	values[0] = CStringGetTextDatum(call.partner);
	values[1] = CStringGetTextDatum(call.external_id);
	values[2] = PG_GETARG_DATUM(2);
	WriteCtxBegin(call.scope.caller, reason, "legal_hold", WRITE_PLAIN);
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
		result = UserlifeGetUserRow(call.partner, call.external_id);
	WriteCtxEnd();
	AccessLeave(&call.scope);
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
	Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2];
	int64		n;

	values[0] = Int32GetDatum(batch_size);
	/* due by the clock, the same one set_status checks "until" against */
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	WriteCtxBegin(caller, "suspension expired", "status", WRITE_LIFECYCLE);
	UserlifeRun(&plan,
		"UPDATE userlife.users u SET status = 'active' WHERE u.user_id IN ("
		" SELECT s.user_id FROM userlife.users s"
		" WHERE s.suspended_until <= $2 AND s.status = 'suspended'"
		" LIMIT $1 FOR UPDATE SKIP LOCKED)",
		2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	n = (int64) SPI_processed;
	WriteCtxEnd();
	return n;
}

/* drop_delivered_events: old delivered events no webhook endpoint still needs */
static int64
drop_delivered_events(void)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	values[0] = Int64GetDatum(WebhooksOutboxFloor());
	UserlifeRun(&plan,
		"DELETE FROM userlife.events e "
		"WHERE e.delivered_at < pg_catalog.now() - '7 days'::pg_catalog.interval"
		" AND e.event_id <= $1",
		1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	return (int64) SPI_processed;
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
	int64		purge_failed;
	int64		events;
	int64		signatures;
	int64		bindings;
	int64		attempts_dropped;
	int64		deliveries_dropped;
	int64		endpoints_disabled;
	Jsonb	   *built;
	Jsonb	   *result;
	TimestampTz started;
	bool		progress;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	started = GetCurrentTimestamp();
	progress = MonitorProgressBegin("run_maintenance");
	MonitorProgress("ending due suspensions");
	suspensions = end_due_suspensions(scope.caller, batch_size);
	purge_expired(scope.caller, batch_size, &purged, &purge_failed);
	MonitorProgress("dropping delivered events and expired signatures");
	events = drop_delivered_events();
	signatures = SignatureForgetExpired();
	bindings = AccessDropStaleBindings();
	WebhooksMaintenance(&attempts_dropped, &deliveries_dropped, &endpoints_disabled);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	UserlifePushKeyInt8(&state, "suspensions_ended", suspensions);
	UserlifePushKeyInt8(&state, "users_purged", purged);
	UserlifePushKeyInt8(&state, "purge_failed", purge_failed);
	UserlifePushKeyInt8(&state, "events_dropped", events);
	UserlifePushKeyInt8(&state, "signatures_forgotten", signatures);
	UserlifePushKeyInt8(&state, "bindings_dropped", bindings);
	UserlifePushKeyInt8(&state, "webhook_attempts_dropped", attempts_dropped);
	UserlifePushKeyInt8(&state, "webhook_deliveries_dropped", deliveries_dropped);
	UserlifePushKeyInt8(&state, "webhook_endpoints_disabled", endpoints_disabled);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	built = JsonbValueToJsonb(res);
	MonitorRecordMaintenance(scope.caller, started, batch_size, built);
	MonitorProgressEnd(progress);
	result = UserlifeJsonbOutOfSpi(built);
	AccessLeave(&scope);
	PG_RETURN_JSONB_P(result);
}
