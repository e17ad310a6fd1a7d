/*-------------------------------------------------------------------------
 *
 * monitor.c
 *		What an operator watches userlife by: the log of maintenance runs,
 *		the progress of a long purge, and the audit check of a whole
 *		partner.  The views over events and audit are plain SQL
 *		(userlife--0.2.0--0.3.0.sql).
 *
 * Progress.  A long purge_expired or run_maintenance call reports how far
 * it got in pg_stat_activity.query of its backend ("userlife.purge_expired:
 * 128 of 1000 users done, 0 failed"), and puts the statement's text back
 * when it ends.  That is where a DBA already looks for a long statement,
 * it works for a pg_cron job (whose NOTICEs nobody reads) and needs no
 * client, and it changes none of the caller's settings (application_name
 * belongs to the caller).  PostgreSQL 15 offers extensions no command type
 * of their own in the pg_stat_progress_* views.
 *
 * Maintenance log.  run_maintenance writes one row per call into
 * userlife.maintenance_log, in its own transaction, and drops rows older
 * than USERLIFE_MAINTENANCE_LOG_DAYS: at one call every five minutes the
 * table stays under 10,000 rows.
 *
 * verify_partner_audit checks every user of a partner, and every purged one
 * by its tombstone, one at a time: each user's chain is read and checked in
 * an SPI connection and a memory context of its own, both released before
 * the next user, and the users are read through a cursor, so memory stays
 * that of one user whatever the partner's size.  It takes no lock beyond
 * its snapshot.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/uuid.h"

#include "userlife.h"
#include "access.h"
#include "catalog.h"
#include "chain.h"
#include "monitor.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_verify_partner_audit);

/* rows of userlife.maintenance_log older than this are dropped */
#define USERLIFE_MAINTENANCE_LOG_DAYS 30

/* users verify_partner_audit reads from its cursor at a time */
#define VERIFY_FETCH 256

/*
 * the SQL function whose progress is being reported, or NULL, and the
 * local transaction it runs in: a call ended by an error leaves it behind,
 * and the next transaction's call then starts afresh
 */
static const char *progress_of = NULL;
static LocalTransactionId progress_lxid = InvalidLocalTransactionId;
static uint64 progress_saved_query_id = 0;

/*------------------------------------------------------------------------
 * Progress in pg_stat_activity
 *------------------------------------------------------------------------
 */

/*
 * MonitorProgressBegin
 *		Starts reporting progress for the SQL function what; calls nest,
 *		the outermost one reports.
 */
bool
MonitorProgressBegin(const char *what)
{
	if (progress_of != NULL && progress_lxid == MyProc->lxid)
		return false;
	progress_of = what;
	progress_lxid = MyProc->lxid;
	progress_saved_query_id = pgstat_get_my_query_id();
	return true;
}

/* MonitorProgress: "userlife.<what>: <message>" as the backend's query text */
void
MonitorProgress(const char *fmt,...)
{
	char		buf[256];
	int			len;
	va_list		args;

	if (progress_of == NULL || progress_lxid != MyProc->lxid)
		return;
	len = snprintf(buf, sizeof(buf), "userlife.%s: ", progress_of);
	va_start(args, fmt);
	vsnprintf(buf + len, sizeof(buf) - len, fmt, args);
	va_end(args);
	pgstat_report_activity(STATE_RUNNING, buf);
}

/* MonitorProgressEnd: the statement's own text again, when began is true */
void
MonitorProgressEnd(bool began)
{
	if (!began)
		return;
	progress_of = NULL;
	pgstat_report_activity(STATE_RUNNING, debug_query_string ? debug_query_string : "");
	pgstat_report_query_id(progress_saved_query_id, true);
}

/*------------------------------------------------------------------------
 * Maintenance log
 *------------------------------------------------------------------------
 */

/*
 * MonitorRecordMaintenance
 *		Logs one run_maintenance call and drops log rows past their time.
 *		Must run inside AccessEnter.  A database not yet updated to 0.3.0
 *		has no log: nothing is written.
 */
void
MonitorRecordMaintenance(Oid caller, TimestampTz started, int32 batch_size, Jsonb *counts)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr trim_plan = NULL;
	Oid			argtypes[5] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, INT4OID, JSONBOID};
	Datum		values[5];

	Assert(AccessIsEntered());

	if (!OidIsValid(get_relname_relid("maintenance_log", get_rel_namespace(UserlifeUsersRelid()))))
		return;
	values[0] = TimestampTzGetDatum(started);
	values[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[2] = CStringGetTextDatum(GetUserNameFromId(caller, false));
	values[3] = Int32GetDatum(batch_size);
	values[4] = JsonbPGetDatum(counts);
	UserlifeRun(&insert_plan,
				"INSERT INTO userlife.maintenance_log (started_at, finished_at, db_role, batch_size, counts)"
				" VALUES ($1, $2, $3, $4, $5)",
				5, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	UserlifeRun(&trim_plan,
				"DELETE FROM userlife.maintenance_log l WHERE l.started_at OPERATOR(pg_catalog.<)"
				" (pg_catalog.now() OPERATOR(pg_catalog.-) '" CppAsString2(USERLIFE_MAINTENANCE_LOG_DAYS)
				" days'::pg_catalog.interval)",
				0, NULL, NULL, NULL, false, 0, SPI_OK_DELETE);
}

/*------------------------------------------------------------------------
 * verify_partner_audit
 *------------------------------------------------------------------------
 */

/*
 * verify_one
 *		Whether the user's chain verifies, in an SPI connection and memory
 *		context of its own (cxt, reset afterwards).
 */
static bool
verify_one(Datum user_id, MemoryContext cxt)
{
	MemoryContext outer = MemoryContextSwitchTo(cxt);
	bool		ok;

	UserlifeSpiConnect();
	ok = ChainVerifyUser(user_id);
	UserlifeSpiFinish();
	MemoryContextSwitchTo(outer);
	MemoryContextReset(cxt);
	return ok;
}

/* require_partner: P0002 for a partner that does not exist (after the binding check) */
static void
require_partner(Datum partner)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {partner};

	UserlifeRun(&plan, "SELECT 1 FROM userlife.partners p WHERE p.partner OPERATOR(pg_catalog.=) $1",
				1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner \"%s\" does not exist",
						UserlifeMsgValue(TextDatumGetCString(partner)))));
}

/*
 * verify_partner_audit(partner): the partner's users whose audit chain does
 * not verify (user_id, and external_id unless purged); none when all do.
 */
Datum
userlife_verify_partner_audit(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AccessScope scope;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	Portal		portal;
	MemoryContext cxt;
	pg_uuid_t  *ids = palloc(sizeof(pg_uuid_t) * VERIFY_FETCH);
	char	  **external_ids = palloc(sizeof(char *) * VERIFY_FETCH);
	MemoryContext batch_cxt;
	MemoryContext spi_cxt;

	UserlifeCheckPartnerId(partner);
	InitMaterializedSRF(fcinfo, 0);
	AccessEnter(&scope, ACCESS_COMPLIANCE, partner);
	values[0] = CStringGetTextDatum(partner);
	require_partner(values[0]);
	portal = SPI_cursor_open(NULL,
							 UserlifePreparePlan(&plan,
												 "SELECT u.user_id, u.external_id FROM userlife.users u"
												 " WHERE u.partner OPERATOR(pg_catalog.=) $1"
												 " UNION ALL "
												 "SELECT t.user_id, NULL FROM userlife.tombstones t"
												 " WHERE t.partner OPERATOR(pg_catalog.=) $1 AND NOT EXISTS"
												 " (SELECT 1 FROM userlife.users u"
												 "  WHERE u.user_id OPERATOR(pg_catalog.=) t.user_id)",
												 1, argtypes),
							 values, NULL, true);
	spi_cxt = CurrentMemoryContext;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "verify_partner_audit user",
								ALLOCSET_DEFAULT_SIZES);
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "verify_partner_audit batch",
									  ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		uint64		n;
		uint64		i;

		SPI_cursor_fetch(portal, true, VERIFY_FETCH);
		n = SPI_processed;
		if (n == 0)
			break;
		/* copied out: verifying runs statements that replace SPI_tuptable */
		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		for (i = 0; i < n; i++)
		{
			bool		isnull;
			char	   *ext = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

			ids[i] = *DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			external_ids[i] = ext;
		}
		SPI_freetuptable(SPI_tuptable);
		for (i = 0; i < n; i++)
		{
			Datum		out[2];
			bool		nulls[2];

			CHECK_FOR_INTERRUPTS();
			if (verify_one(UUIDPGetDatum(&ids[i]), cxt))
				continue;
			nulls[0] = (external_ids[i] == NULL);
			out[0] = nulls[0] ? (Datum) 0 : CStringGetTextDatum(external_ids[i]);
			nulls[1] = false;
			out[1] = UUIDPGetDatum(&ids[i]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, nulls);
		}
		MemoryContextSwitchTo(spi_cxt);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(cxt);
	MemoryContextDelete(batch_cxt);
	AccessLeave(&scope);
	return (Datum) 0;
}
