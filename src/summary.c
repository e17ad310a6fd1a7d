/*-------------------------------------------------------------------------
 *
 * summary.c
 *		user_summary: a user at a glance, its row and the counters of its
 *		verification jobs, its changes (audit rows) and its webhook
 *		deliveries.
 *
 * The counters are read by scanning the user's entries of jobs_user_idx
 * and audit_user_idx, both (user_id, id) B-trees of the install script, in
 * the statement's snapshot.  There is no plan that could turn into a
 * sequential scan: a plan kept from when the tables were small would, and
 * planning per call costs more than the counting.  When an index is not as
 * installed (a DBA replaced it), the counter comes from a query planned
 * with the user_id, so it still uses whatever index serves it.
 *
 * Reads only; nothing is locked beyond AccessShareLock.  Memory: the
 * caller's SPI context, freed when the call ends.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "userlife.h"
#include "access.h"
#include "append.h"
#include "catalog.h"
#include "lifecycle.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_user_summary);

/* the counters of one user; last_at is valid when total > 0 */
typedef struct JobCounts
{
	int64		total;
	int64		passed;
	int64		failed;
	int64		fraud_suspected;
	TimestampTz last_at;
	AttrNumber	att[3];			/* outcome, failure_reason, at in jobs */
} JobCounts;

typedef struct ChangeCounts
{
	int64		total;
	TimestampTz last_at;
	AttrNumber	att[1];			/* at in audit */
} ChangeCounts;

typedef void (*RowVisitor) (TupleTableSlot *slot, void *arg);

/*
 * user_index
 *		The index called name on rel when it is a valid B-tree whose first
 *		key column is rel's user_id, without predicate or expressions;
 *		InvalidOid otherwise.
 */
static Oid
user_index(Relation rel, const char *name)
{
	Oid			indexid = get_relname_relid(name, RelationGetNamespace(rel));
	AttrNumber	user_id = attnameAttNum(rel, "user_id", false);
	Relation	index;
	bool		usable;

	if (!OidIsValid(indexid) || user_id == InvalidAttrNumber ||
		TupleDescAttr(RelationGetDescr(rel), user_id - 1)->atttypid != UUIDOID)
		return InvalidOid;
	index = index_open(indexid, AccessShareLock);
	usable = index->rd_index->indrelid == RelationGetRelid(rel) &&
		index->rd_rel->relam == BTREE_AM_OID &&
		index->rd_index->indnkeyatts >= 1 &&
		index->rd_index->indkey.values[0] == user_id &&
		index->rd_index->indisvalid &&
		RelationGetIndexPredicate(index) == NIL &&
		RelationGetIndexExpressions(index) == NIL;
	index_close(index, NoLock);
	return usable ? indexid : InvalidOid;
}

/*
 * scan_user_rows
 *		Calls visit for every row of userlife.<relname> of the user, found
 *		through the index indexname, in the active snapshot.  Returns false,
 *		having visited nothing, when the index is not as installed or a
 *		column of columns (NULL-terminated) is missing; sets their numbers.
 */
static bool
scan_user_rows(const char *relname, const char *indexname, Datum user_id,
			   const char *const *columns, AttrNumber *attnums, RowVisitor visit, void *arg)
{
	Relation	rel = table_open(UserlifeRelid(relname), AccessShareLock);
	Oid			indexid = user_index(rel, indexname);
	UserScan	us;
	int			i;

	for (i = 0; OidIsValid(indexid) && columns[i] != NULL; i++)
		if ((attnums[i] = attnameAttNum(rel, columns[i], false)) == InvalidAttrNumber)
			indexid = InvalidOid;
	if (!OidIsValid(indexid))
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	AppendUserScanBegin(&us, rel, indexid, user_id);
	while (index_getnext_slot(us.scan, ForwardScanDirection, us.slot))
	{
		CHECK_FOR_INTERRUPTS();
		visit(us.slot, arg);
	}
	AppendUserScanEnd(&us, AccessShareLock);
	table_close(rel, AccessShareLock);
	return true;
}

static bool
text_is(TupleTableSlot *slot, AttrNumber att, const char *value)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);
	text	   *t;

	if (isnull)
		return false;
	t = DatumGetTextPP(d);
	return VARSIZE_ANY_EXHDR(t) == strlen(value) &&
		memcmp(VARDATA_ANY(t), value, strlen(value)) == 0;
}

static void
later(TupleTableSlot *slot, AttrNumber att, int64 total, TimestampTz *last_at)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	if (!isnull && (total == 1 || DatumGetTimestampTz(d) > *last_at))
		*last_at = DatumGetTimestampTz(d);
}

static void
count_job(TupleTableSlot *slot, void *arg)
{
	JobCounts  *c = (JobCounts *) arg;

	c->total++;
	if (text_is(slot, c->att[0], "passed"))
		c->passed++;
	else if (text_is(slot, c->att[0], "failed"))
		c->failed++;
	if (text_is(slot, c->att[1], "fraud_suspected"))
		c->fraud_suspected++;
	later(slot, c->att[2], c->total, &c->last_at);
}

static void
count_change(TupleTableSlot *slot, void *arg)
{
	ChangeCounts *c = (ChangeCounts *) arg;

	c->total++;
	later(slot, c->att[0], c->total, &c->last_at);
}

/* counts_by_query: the counters from sql ($1 the user_id), columns int8 then the last time */
static void
counts_by_query(SPIPlanPtr *plan, const char *sql, Datum user_id, int64 **counts, int ncounts,
				TimestampTz *last_at)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {user_id};
	bool		isnull;
	int			i;

	UserlifeRunCustom(plan, sql, 1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "user_summary counters failed: %s", sql);
	for (i = 0; i < ncounts; i++)
		*counts[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												 i + 1, &isnull));
	*last_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												 ncounts + 1, &isnull));
}

static void
count_jobs(Datum user_id, JobCounts *c)
{
	static SPIPlanPtr plan = NULL;
	static const char *const columns[] = {"outcome", "failure_reason", "at", NULL};
	int64	   *counts[4] = {&c->total, &c->passed, &c->failed, &c->fraud_suspected};

	memset(c, 0, sizeof(*c));
	if (!scan_user_rows("jobs", "jobs_user_idx", user_id, columns, c->att, count_job, c))
		counts_by_query(&plan,
						"SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE j.outcome = 'passed'),"
						" pg_catalog.count(*) FILTER (WHERE j.outcome = 'failed'),"
						" pg_catalog.count(*) FILTER (WHERE j.failure_reason = 'fraud_suspected'),"
						" pg_catalog.max(j.at) FROM userlife.jobs j WHERE j.user_id = $1",
						user_id, counts, 4, &c->last_at);
}

static void
count_changes(Datum user_id, ChangeCounts *c)
{
	static SPIPlanPtr plan = NULL;
	static const char *const columns[] = {"at", NULL};
	int64	   *counts[1] = {&c->total};

	memset(c, 0, sizeof(*c));
	if (!scan_user_rows("audit", "audit_user_idx", user_id, columns, c->att, count_change, c))
		counts_by_query(&plan,
						"SELECT pg_catalog.count(*), pg_catalog.max(a.at) FROM userlife.audit a"
						" WHERE a.user_id = $1",
						user_id, counts, 1, &c->last_at);
}

/*
 * webhook_counts
 *		The user's webhook deliveries still pending (queued, or past an
 *		endpoint's cursor and not queued yet, as webhook_deliveries shows
 *		them) and dead.  The queue holds only deliveries in flight, failed
 *		or recent, and webhook_queue_user_id_idx finds the user's; the
 *		events past a cursor are found through events_user_idx.
 */
static void
webhook_counts(Datum user_id, const char *partner, int64 *pending, int64 *dead)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, TEXTOID};
	Datum		values[2] = {user_id, CStringGetTextDatum(partner)};
	bool		isnull;

	UserlifeRun(&plan,
				"SELECT (SELECT pg_catalog.count(*) FROM userlife.webhook_queue q"
				"         WHERE q.user_id = $1 AND q.state <> 'delivered' AND q.state = 'pending')"
				"     + (SELECT pg_catalog.count(*) FROM userlife.webhook_endpoints w"
				"          JOIN userlife.events e ON e.user_id = $1 AND e.event_id > w.cursor_event_id"
				"         WHERE w.partner = $2"
				"           AND (w.event_types IS NULL OR e.event_type = ANY (w.event_types))),"
				"       (SELECT pg_catalog.count(*) FROM userlife.webhook_queue q"
				"         WHERE q.user_id = $1 AND q.state <> 'delivered' AND q.state = 'dead')",
				2, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	*pending = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*dead = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
}

/* push_time: a timestamp as to_jsonb writes it (the session's time zone), or null */
static void
push_time(JsonbParseState **state, const char *key, bool present, TimestampTz t)
{
	JsonbValue	v;

	UserlifePushKey(state, key);
	if (!present)
		v.type = jbvNull;
	else
	{
		char	   *s = JsonEncodeDateTime(NULL, TimestampTzGetDatum(t), TIMESTAMPTZOID, NULL);

		v.type = jbvString;
		v.val.string.val = s;
		v.val.string.len = strlen(s);
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

static void
push_object(JsonbParseState **state, const char *key, Jsonb *value)
{
	JsonbValue	v;

	UserlifePushKey(state, key);
	v.type = jbvBinary;
	v.val.binary.data = &value->root;
	v.val.binary.len = VARSIZE(value) - VARHDRSZ;
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* summary_document: the result of user_summary */
static Jsonb *
summary_document(Jsonb *user, const JobCounts *jobs, const ChangeCounts *changes,
				 int64 pending, int64 dead)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_object(&state, "user", user);
	UserlifePushKey(&state, "jobs");
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	UserlifePushKeyInt8(&state, "total", jobs->total);
	UserlifePushKeyInt8(&state, "passed", jobs->passed);
	UserlifePushKeyInt8(&state, "failed", jobs->failed);
	UserlifePushKeyInt8(&state, "fraud_suspected", jobs->fraud_suspected);
	push_time(&state, "last_at", jobs->total > 0, jobs->last_at);
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	UserlifePushKey(&state, "changes");
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	UserlifePushKeyInt8(&state, "total", changes->total);
	push_time(&state, "last_at", changes->total > 0, changes->last_at);
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	UserlifePushKey(&state, "webhooks");
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	UserlifePushKeyInt8(&state, "pending", pending);
	UserlifePushKeyInt8(&state, "dead", dead);
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/*
 * user_summary(partner, external_id): the user's row as JSON with the
 * counters of its jobs, changes and webhook deliveries; P0002 if absent.
 */
Datum
userlife_user_summary(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	MemoryContext cxt = CurrentMemoryContext;
	bool		isnull;
	Jsonb	   *user;
	Datum		user_id;
	JobCounts	jobs;
	ChangeCounts changes;
	int64		pending;
	int64		dead;
	Jsonb	   *result;

	AccessEnterUser(&call, ACCESS_READER);
	LifecycleReadUser(&plan,
					  "SELECT pg_catalog.to_jsonb(u), u.user_id FROM userlife.users u"
					  " WHERE u.partner = $1 AND u.external_id = $2",
					  &call, true);
	user = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	user_id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	count_jobs(user_id, &jobs);
	count_changes(user_id, &changes);
	webhook_counts(user_id, call.partner, &pending, &dead);
	MemoryContextSwitchTo(cxt);
	result = summary_document(user, &jobs, &changes, pending, dead);
	AccessLeave(&call.scope);
	PG_RETURN_JSONB_P(result);
}
