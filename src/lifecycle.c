/*-------------------------------------------------------------------------
 *
 * lifecycle.c
 *		Partners, registration and re-enrollment, profile updates,
 *		verification, the status machine, the fraud flag, soft deletion and
 *		restore, and jobs.
 *
 * Every function: checks its arguments (22004/22023), enters through
 * AccessEnter (role, partner binding, switch to the extension owner),
 * announces its write with WriteCtxBegin so the users triggers audit
 * it with the right action, reason and db_role, and writes with prepared
 * statements kept for the life of the backend.  Rows are locked with
 * FOR NO KEY UPDATE before they are judged, so two sessions changing one
 * user serialize and each sees the other's result.
 *
 * The transition rules are cached per backend in a 6x6 matrix; a statement
 * trigger on userlife.transitions sends a relcache invalidation, and the
 * callback drops the cache, so an edit applies to every new transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "userlife.h"
#include "access.h"
#include "append.h"
#include "catalog.h"
#include "lifecycle.h"
#include "util.h"
#include "writectx.h"

PG_FUNCTION_INFO_V1(userlife_transitions_changed);
PG_FUNCTION_INFO_V1(userlife_create_partner);
PG_FUNCTION_INFO_V1(userlife_set_retention);
PG_FUNCTION_INFO_V1(userlife_register_user);
PG_FUNCTION_INFO_V1(userlife_allow_reenroll);
PG_FUNCTION_INFO_V1(userlife_get_user);
PG_FUNCTION_INFO_V1(userlife_update_user);
PG_FUNCTION_INFO_V1(userlife_mark_verified);
PG_FUNCTION_INFO_V1(userlife_set_status);
PG_FUNCTION_INFO_V1(userlife_enable_user);
PG_FUNCTION_INFO_V1(userlife_disable_user);
PG_FUNCTION_INFO_V1(userlife_set_fraud_flag);
PG_FUNCTION_INFO_V1(userlife_delete_user);
PG_FUNCTION_INFO_V1(userlife_delete_users);
PG_FUNCTION_INFO_V1(userlife_restore_user);
PG_FUNCTION_INFO_V1(userlife_record_job);

/* delete_users: most ids in one call (as import_users), and its item results */
#define DELETE_USERS_MAX 10000
enum
{
	DELETE_DONE = 0,
	DELETE_ALREADY,
	DELETE_NOT_FOUND
};

/* transition rule cache */
static bool rules_valid = false;
static bool rules_inval_seen = false;	/* an invalidation came during load_rules */
static Oid	rules_relid = InvalidOid;
static bool rule_allowed[USER_STATUS_COUNT][USER_STATUS_COUNT];
static bool rule_reason[USER_STATUS_COUNT][USER_STATUS_COUNT];

/* the columns fetch_user reads, by position */
enum
{
	F_ROW = 1,
	F_USER_ID,
	F_STATUS,
	F_IS_FRAUDULENT,
	F_ALLOW_NEW_ENROLL,
	F_VERIFIED,
	F_VERSION,
	F_PURGE_AFTER,
	F_METADATA
};

#define FETCH_COLUMNS \
	"SELECT u, u.user_id, u.status::pg_catalog.text, u.is_fraudulent, u.allow_new_enroll," \
	" u.verified_at IS NOT NULL, u.version, u.purge_after, u.metadata " \
	"FROM userlife.users u WHERE u.partner = $1 AND u.external_id = $2"

typedef enum RowLock
{
	LOCK_NONE,
	LOCK_SHARE,
	LOCK_UPDATE
} RowLock;

typedef struct UserRow
{
	Datum		row;			/* composite userlife.users, in SPI memory */
	Datum		user_id;
	UserStatus	status;
	bool		is_fraudulent;
	bool		allow_new_enroll;
	bool		verified;
	int64		version;
	bool		purge_after_null;
	TimestampTz purge_after;
	Jsonb	   *metadata;
} UserRow;

static char *userlife_default_retention = NULL;

static void reset_rules(Datum arg, Oid relid);
static void user_not_found(const char *partner, const char *external_id) pg_attribute_noreturn();
static bool check_default_retention(char **newval, void **extra, GucSource source);

void
LifecycleInit(void)
{
	DefineCustomStringVariable("userlife.default_retention",
							   "Retention of deleted users for partners created without one.",
							   NULL,
							   &userlife_default_retention, "30 days",
							   PGC_SUSET, 0, check_default_retention, NULL, NULL);
	CacheRegisterRelcacheCallback(reset_rules, (Datum) 0);
}

static void
reset_rules(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rules_relid)
	{
		rules_valid = false;
		rules_inval_seen = true;
	}
}

/*
 * check_default_retention: the setting must parse as a positive interval
 * of at most 100 years, the bounds create_partner applies to an explicit
 * retention.  A check hook must not throw, so a parse error is caught and
 * reported through the GUC machinery.
 */
static bool
check_default_retention(char **newval, void **extra, GucSource source)
{
	Interval   *iv;
	Interval	zero = {0, 0, 0};
	Interval	limit = {0, 0, USERLIFE_MAX_RETENTION_MONTHS};

	if (*newval == NULL)
		return false;
	iv = UserlifeParseIntervalQuietly(*newval);
	if (iv == NULL ||
		DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
										  IntervalPGetDatum(&zero))) <= 0)
	{
		GUC_check_errdetail("The retention must be a positive interval.");
		return false;
	}
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
										  IntervalPGetDatum(&limit))) > 0)
	{
		GUC_check_errdetail("The retention must be at most 100 years.");
		return false;
	}
	return true;
}

static UserStatus
status_from_text(const char *s)
{
	int			i;

	for (i = 0; i < USER_STATUS_COUNT; i++)
		if (strcmp(UserStatusNames[i], s) == 0)
			return (UserStatus) i;
	elog(ERROR, "unknown user status \"%s\"", s);
	return USER_ACTIVE;			/* keep compiler quiet */
}

/*
 * load_rules
 *		Reads userlife.transitions into the cache.  The rules are read with
 *		the latest snapshot, not the transaction's: a REPEATABLE READ
 *		transaction would otherwise cache, for the rest of the backend's
 *		life, rules that were already replaced (the invalidation that
 *		announced the change has been consumed by then).  The cache is
 *		filled from locals and marked valid only when no invalidation came
 *		during the read; an error leaves it invalid.
 */
static void
load_rules(void)
{
	static SPIPlanPtr plan = NULL;
	bool		allowed[USER_STATUS_COUNT][USER_STATUS_COUNT];
	bool		reason[USER_STATUS_COUNT][USER_STATUS_COUNT];
	uint64		i;
	int			rc;

	UserlifeSpiConnect();
	rules_valid = false;
	rules_relid = UserlifeTransitionsRelid();
	rules_inval_seen = false;
	rc = SPI_execute_snapshot(UserlifePreparePlan(&plan,
												  "SELECT t.from_status::pg_catalog.text, t.to_status::pg_catalog.text,"
												  " t.requires_reason FROM userlife.transitions t",
												  0, NULL),
							  NULL, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read userlife.transitions");
	memset(allowed, 0, sizeof(allowed));
	memset(reason, 0, sizeof(reason));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		UserStatus	from;
		UserStatus	to;

		from = status_from_text(SPI_getvalue(tup, SPI_tuptable->tupdesc, 1));
		to = status_from_text(SPI_getvalue(tup, SPI_tuptable->tupdesc, 2));
		allowed[from][to] = true;
		reason[from][to] = DatumGetBool(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
	}
	memcpy(rule_allowed, allowed, sizeof(allowed));
	memcpy(rule_reason, reason, sizeof(reason));
	UserlifeSpiFinish();
	rules_valid = !rules_inval_seen;
}

/*
 * refresh_rules
 *		Takes in the invalidations other backends sent, then reloads the
 *		rules when they changed.  A transaction that already holds its locks
 *		takes in no invalidation otherwise, and would judge every later
 *		change by the rules it first read.  Cheap when nothing is pending.
 */
static void
refresh_rules(void)
{
	AcceptInvalidationMessages();
	if (!rules_valid)
		load_rules();
}

/*
 * LifecycleTransitionAllowed
 *		Whether userlife.transitions allows from -> to, and whether it needs
 *		a reason.  Reads the cached rules, loading them when invalidated.
 */
bool
LifecycleTransitionAllowed(UserStatus from, UserStatus to, bool *requires_reason)
{
	refresh_rules();
	*requires_reason = rule_reason[from][to];
	return rule_allowed[from][to];
}

/*
 * LifecycleCheckTransition
 *		The one check of a status change: UL001 when it enters or leaves
 *		deleted (only delete_user, restore_user and re-enrollment may, and
 *		they do not ask) or userlife.transitions has no rule for it, 22023
 *		when the rule needs a reason and there is none.
 */
void
LifecycleCheckTransition(const char *user_name, UserStatus from, UserStatus to, bool has_reason)
{
	bool		requires_reason = false;

	if (from == USER_DELETED || to == USER_DELETED)
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_TRANSITION),
				 errmsg("status transition of %s from \"%s\" to \"%s\" is not allowed",
						user_name, UserStatusNames[from], UserStatusNames[to]),
				 errdetail("A user enters status \"deleted\" only through delete_user and leaves it only through restore_user or re-enrollment."),
				 to == USER_DELETED ? errhint("Use userlife.delete_user().") : 0));
	if (!LifecycleTransitionAllowed(from, to, &requires_reason))
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_TRANSITION),
				 errmsg("status transition of %s from \"%s\" to \"%s\" is not allowed",
						user_name, UserStatusNames[from], UserStatusNames[to]),
				 errdetail("userlife.transitions has no rule from \"%s\" to \"%s\".",
						   UserStatusNames[from], UserStatusNames[to])));
	if (requires_reason && !has_reason)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reason is required for the status transition of %s from \"%s\" to \"%s\"",
						user_name, UserStatusNames[from], UserStatusNames[to]),
				 errhint("Pass a reason or set userlife.reason.")));
}

/*
 * allowed_from
 *		The statuses, as a text[], from which the rules let a user move to
 *		to, given whether there is a reason: what LifecycleCheckTransition
 *		passes, so that one UPDATE can check and write.
 */
static Datum
allowed_from(UserStatus to, bool has_reason)
{
	Datum		elems[USER_STATUS_COUNT];
	int			n = 0;
	int			from;

	refresh_rules();
	for (from = 0; from < USER_STATUS_COUNT; from++)
		if (rule_allowed[from][to] && (has_reason || !rule_reason[from][to]))
			elems[n++] = CStringGetTextDatum(UserStatusNames[from]);
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * transitions_changed: trigger on userlife.transitions.  Per statement it
 * invalidates every backend's rule cache; per row (BEFORE INSERT) it turns
 * the insert of an existing rule into an update of its requires_reason, so
 * that restoring a dump over the default rules works.
 */
Datum
userlife_transitions_changed(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr merge_plan = NULL;
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tup;
	Datum		values[3];
	bool		isnull;
	Oid			argtypes[3];
	int			i;
	uint64		merged;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.transitions_changed can only be called as a trigger")));
	if (TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
	{
		/*
		 * A rule change and the status changes it judges serialize: the
		 * SHARE lock waits for every transaction that is writing users
		 * (they commit under the rules they read), and holds off new
		 * writers until this transaction ends; they then take in the
		 * invalidation when they lock users, and the users trigger judges
		 * their change by the new rules.  Rule changes are rare.
		 */
		LockRelationOid(UserlifeUsersRelid(), ShareLock);
		CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		elog(ERROR, "userlife.transitions_changed fired for an unexpected event");

	desc = RelationGetDescr(trigdata->tg_relation);
	tup = trigdata->tg_trigtuple;
	for (i = 0; i < 3; i++)
	{
		values[i] = heap_getattr(tup, i + 1, desc, &isnull);
		if (isnull)
			return PointerGetDatum(tup);	/* NOT NULL will refuse it */
		argtypes[i] = TupleDescAttr(desc, i)->atttypid;
	}
	UserlifeSpiConnect();
	UserlifeRun(&merge_plan,
				"UPDATE userlife.transitions t SET requires_reason = $3 "
				"WHERE t.from_status = $1 AND t.to_status = $2",
				3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	merged = SPI_processed;
	UserlifeSpiFinish();
	return PointerGetDatum(merged > 0 ? NULL : tup);
}

/*------------------------------------------------------------------------
 * Shared helpers
 *------------------------------------------------------------------------
 */


/* first_column: column 1 of the first result row, copied out of SPI memory */
static Datum
first_column(void)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	if (isnull)
		elog(ERROR, "unexpected null result");
	return SPI_datumTransfer(d, false, -1);
}

/* require_partner: raises P0002 unless the partner exists; key_share locks its row */
static void
require_partner(const char *partner, bool key_share)
{
	static SPIPlanPtr plans[2] = {NULL, NULL};
	static const char *const sql[2] = {
		"SELECT 1 FROM userlife.partners p WHERE p.partner = $1",
		"SELECT 1 FROM userlife.partners p WHERE p.partner = $1 FOR KEY SHARE"
	};
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	values[0] = CStringGetTextDatum(partner);
	UserlifeRun(&plans[key_share], sql[key_share], 1, argtypes, values, NULL, !key_share, 1,
				SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner \"%s\" does not exist", partner)));
}

/* LifecycleRequirePartner: raises P0002 unless the partner exists */
void
LifecycleRequirePartner(const char *partner)
{
	require_partner(partner, false);
}

/*
 * LifecycleLockPartner: LifecycleRequirePartner for a row that will refer
 * to the partner: its row is locked FOR KEY SHARE until the transaction ends
 */
void
LifecycleLockPartner(const char *partner)
{
	require_partner(partner, true);
}

/* user_not_found: raises P0002 for the partner or, if it exists, the user */
static void
user_not_found(const char *partner, const char *external_id)
{
	LifecycleRequirePartner(partner);
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("%s does not exist", UserlifeUserName(partner, external_id))));
}

/*
 * fetch_user
 *		Reads (and with LOCK_* locks) the user; returns false when there is
 *		none.  The row stays in SPI memory.
 */
static bool
fetch_user(const char *partner, const char *external_id, RowLock lock, UserRow *u)
{
	static SPIPlanPtr plans[3] = {NULL, NULL, NULL};
	static const char *const sql[3] = {
		FETCH_COLUMNS,
		FETCH_COLUMNS " FOR SHARE",
		FETCH_COLUMNS " FOR NO KEY UPDATE"
	};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	UserlifeRunForUser(&plans[lock], sql[lock], partner, external_id, lock == LOCK_NONE, 1,
					   SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	u->row = SPI_getbinval(tup, desc, F_ROW, &isnull);
	u->user_id = SPI_getbinval(tup, desc, F_USER_ID, &isnull);
	u->status = status_from_text(SPI_getvalue(tup, desc, F_STATUS));
	u->is_fraudulent = DatumGetBool(SPI_getbinval(tup, desc, F_IS_FRAUDULENT, &isnull));
	u->allow_new_enroll = DatumGetBool(SPI_getbinval(tup, desc, F_ALLOW_NEW_ENROLL, &isnull));
	u->verified = DatumGetBool(SPI_getbinval(tup, desc, F_VERIFIED, &isnull));
	u->version = DatumGetInt64(SPI_getbinval(tup, desc, F_VERSION, &isnull));
	u->purge_after = DatumGetTimestampTz(SPI_getbinval(tup, desc, F_PURGE_AFTER, &u->purge_after_null));
	u->metadata = DatumGetJsonbP(SPI_getbinval(tup, desc, F_METADATA, &isnull));
	return true;
}

static void
require_user(const char *partner, const char *external_id, RowLock lock, UserRow *u)
{
	if (!fetch_user(partner, external_id, lock, u))
		user_not_found(partner, external_id);
}

/*
 * UserlifeGetUserRow
 *		The user's row as a userlife.users Datum in the caller's memory;
 *		P0002 when absent.  Must run inside AccessEnter.
 */
Datum
UserlifeGetUserRow(const char *partner, const char *external_id)
{
	UserRow		u;

	Assert(AccessIsEntered());
	require_user(partner, external_id, LOCK_NONE, &u);
	return SPI_datumTransfer(u.row, false, -1);
}

/*
 * LifecycleReadUser
 *		Runs a query of one row of the call's user ($1 partner, $2
 *		external_id), leaving it in SPI_tuptable; P0002 when there is none.
 */
void
LifecycleReadUser(SPIPlanPtr *cache, const char *sql, const UserCall *call, bool read_only)
{
	UserlifeRunForUser(cache, sql, call->partner, call->external_id, read_only, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		user_not_found(call->partner, call->external_id);
}

/* require_email_free: 23505 when another live user of the partner has the address */
static void
require_email_free(const char *partner, const char *email, Datum self, bool has_self)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, UUIDOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(email);
	values[2] = self;
	if (!has_self)
		nulls[2] = 'n';
	UserlifeRun(&plan,
			  "SELECT 1 FROM userlife.users u WHERE u.partner = $1"
			  " AND pg_catalog.lower(u.email) = pg_catalog.lower($2)"
			  " AND u.email IS NOT NULL AND u.status <> 'deleted'"
			  " AND u.user_id IS DISTINCT FROM $3 LIMIT 1",
			  3, argtypes, values, nulls, true, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
		LifecycleEmailTaken(partner);
}

/* LifecycleEmailTaken: the 23505 of an address another live user of the partner has */
void
LifecycleEmailTaken(const char *partner)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("email address is already used by another user of partner \"%s\"", partner)));
}

/* LifecycleCheckMetadata: 22023 unless the metadata (or patch) is a JSON object */
void
LifecycleCheckMetadata(Jsonb *metadata, const char *argname)
{
	if (!JB_ROOT_IS_OBJECT(metadata))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a JSON object", argname)));
}

/* LifecycleCheckTags: 22023 unless tags is one-dimensional without nulls */
void
LifecycleCheckTags(ArrayType *tags)
{
	if (ARR_NDIM(tags) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tags must be a one-dimensional array")));
	if (array_contains_nulls(tags))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tags must not contain null elements")));
}

/*
 * finish_user_result
 *		Leaves SPI and the owner's identity and returns the user row, which
 *		must already live outside SPI memory.
 */
static Datum
finish_user_result(AccessScope *scope, Datum row)
{
	Assert(AccessIsEntered());
	WriteCtxEnd();
	AccessLeave(scope);
	return row;
}

/*
 * run_user_update
 *		Runs an UPDATE ... RETURNING u and returns the new row copied out of
 *		SPI memory, or (Datum) 0 when the statement changed nothing (no row
 *		matched, or the trigger found nothing to change).
 */
static Datum
run_user_update(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
				Datum *values, const char *nulls)
{
	UserlifeRun(cache, sql, nargs, argtypes, values, nulls, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
		return (Datum) 0;
	return first_column();
}

/*
 * update_user_row
 *		run_user_update for a row the caller has locked: an UPDATE that
 *		changes nothing is an internal error, named after what it did.
 */
static Datum
update_user_row(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
				Datum *values, const char *nulls, const char *what)
{
	Datum		result = run_user_update(cache, sql, nargs, argtypes, values, nulls);

	if (result == (Datum) 0)
		elog(ERROR, "%s changed no row", what);
	return result;
}

/*------------------------------------------------------------------------
 * Partners
 *------------------------------------------------------------------------
 */
/*
 * check_retention
 *		A retention must be positive and at most 100 years
 *		(USERLIFE_MAX_RETENTION_MONTHS).  Both bounds compare with
 *		interval_cmp, PostgreSQL's own interval order (a month is 30 days, a
 *		day 24 hours), which is also what the partners_retention_* CHECK
 *		constraints and the cap in soft_delete use, so that all of them
 *		agree on every interval: '36500 days' is longer than '100 years'.
 */
static void
check_retention(Interval *retention)
{
	Interval	zero = {0, 0, 0};
	Interval	limit = {0, 0, USERLIFE_MAX_RETENTION_MONTHS};

	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(retention),
										  IntervalPGetDatum(&zero))) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("retention must be a positive interval")));
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(retention),
										  IntervalPGetDatum(&limit))) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("retention \"%s\" is longer than 100 years",
						DatumGetCString(DirectFunctionCall1(interval_out,
															IntervalPGetDatum(retention)))),
				 errdetail("A partner's retention is at most 100 years.")));
}

/* create_partner(partner, display_name, retention): registers a partner */
Datum
userlife_create_partner(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	AccessScope scope;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, INTERVALOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	Datum		result;

	UserlifeCheckPartnerId(partner);
	if (!PG_ARGISNULL(2))
		check_retention(PG_GETARG_INTERVAL_P(2));
	AccessEnter(&scope, ACCESS_OWNER, NULL);
	values[0] = CStringGetTextDatum(partner);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';
	values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	UserlifeRun(&plan,
			  "INSERT INTO userlife.partners AS p (partner, display_name, retention) "
			  "VALUES ($1, $2, coalesce($3, coalesce(nullif(pg_catalog.current_setting("
			  "'userlife.default_retention', true), ''), '30 days')::pg_catalog.interval)) "
			  "ON CONFLICT (partner) DO NOTHING RETURNING p",
			  3, argtypes, values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("partner \"%s\" already exists", partner)));
	result = first_column();
	AccessLeave(&scope);
	return result;
}

/* set_retention(partner, retention): how long deleted users are kept */
Datum
userlife_set_retention(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	AccessScope scope;
	Oid			argtypes[2] = {TEXTOID, INTERVALOID};
	Datum		values[2];
	Datum		result;

	UserlifeRequireArg(fcinfo, 1, "retention");
	UserlifeCheckPartnerId(partner);
	check_retention(PG_GETARG_INTERVAL_P(1));
	AccessEnter(&scope, ACCESS_OWNER, NULL);
	values[0] = CStringGetTextDatum(partner);
	values[1] = PG_GETARG_DATUM(1);
	UserlifeRun(&plan,
			  "UPDATE userlife.partners AS p SET retention = $2 WHERE p.partner = $1 RETURNING p",
			  2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner \"%s\" does not exist", partner)));
	result = first_column();
	AccessLeave(&scope);
	return result;
}

/*------------------------------------------------------------------------
 * Registration and re-enrollment
 *------------------------------------------------------------------------
 */

/* lookup_tombstone: a purged user's remains, locked; false if none */
static bool
lookup_tombstone(const char *partner, const char *external_id, Datum *user_id,
				 int32 *enrollment_count, bool *allowed)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	HeapTuple	tup;

	UserlifeRunForUser(&plan,
					   "SELECT t.user_id, t.enrollment_count, t.allow_new_enroll FROM userlife.tombstones t "
					   "WHERE t.partner = $1 AND t.external_id_digest = pg_catalog.sha256(pg_catalog.convert_to($2, 'UTF8')) "
					   "FOR UPDATE",
					   partner, external_id, false, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	tup = SPI_tuptable->vals[0];
	*user_id = SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull);
	*enrollment_count = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	*allowed = DatumGetBool(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
	return true;
}

/*
 * LifecycleRefuseReenroll: the 23505 of an external_id that exists (or was
 * purged) and may not be enrolled again
 */
void
LifecycleRefuseReenroll(const char *partner, const char *external_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNIQUE_VIOLATION),
			 errmsg("%s already exists", UserlifeUserName(partner, external_id)),
			 errhint("To enroll this external_id again, call userlife.allow_reenroll() first.")));
}

/* LifecycleCheckNewStatus: 22023 unless a new user may start in the status */
void
LifecycleCheckNewStatus(UserStatus status)
{
	if (status != USER_ACTIVE && status != USER_INACTIVE && status != USER_FLAGGED)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a new user cannot have status \"%s\"", UserStatusNames[status]),
				 errdetail("New users are active, inactive or flagged.")));
}

/*
 * LifecycleTombstoneExists
 *		Whether a purged user of the partner left a tombstone for the
 *		external_id: a probe of its index in a fresh snapshot, else the
 *		lookup register_user makes (which locks the tombstone).
 */
bool
LifecycleTombstoneExists(const char *partner, const char *external_id)
{
	bool		exists;
	Datum		user_id;
	int32		count;
	bool		allowed;

	if (AppendTombstoneExists(partner, external_id, &exists))
		return exists;
	return lookup_tombstone(partner, external_id, &user_id, &count, &allowed);
}

/*
 * A registration's arguments, checked, as the parameters $1-$9 of the
 * statements below: partner, external_id, display_name, email, metadata,
 * tags, status, user_id (to reuse), enrollment_count.
 */
typedef struct Registration
{
	const char *partner;
	const char *external_id;
	const char *email;
	Datum		values[9];
	char		nulls[9];
} Registration;

static Oid	registration_argtypes[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID,
	TEXTARRAYOID, TEXTOID, UUIDOID, INT4OID};

/*
 * read_registration
 *		Checks register_user's arguments (before any access check: a bad
 *		argument is the caller's error whoever calls) and fills r.
 */
static void
read_registration(FunctionCallInfo fcinfo, Registration *r)
{
	Jsonb	   *metadata = NULL;
	UserStatus	status = USER_ACTIVE;

	r->partner = UserlifeRequireText(fcinfo, 0, "partner");
	r->external_id = UserlifeOptionalText(fcinfo, 1);
	r->email = UserlifeOptionalText(fcinfo, 3);
	UserlifeCheckPartnerId(r->partner);
	if (r->external_id != NULL)
		UserlifeCheckExternalId(r->external_id);
	if (r->email != NULL)
		UserlifeCheckEmail(r->email);
	if (!PG_ARGISNULL(4))
	{
		metadata = PG_GETARG_JSONB_P(4);
		LifecycleCheckMetadata(metadata, "metadata");
	}
	if (!PG_ARGISNULL(5))
		LifecycleCheckTags(PG_GETARG_ARRAYTYPE_P(5));
	if (!PG_ARGISNULL(6))
	{
		status = UserlifeStatusFromDatum(PG_GETARG_DATUM(6));
		LifecycleCheckNewStatus(status);
	}

	memset(r->nulls, ' ', sizeof(r->nulls));
	r->values[0] = CStringGetTextDatum(r->partner);
	r->values[1] = r->external_id ? CStringGetTextDatum(r->external_id) : (Datum) 0;
	r->nulls[1] = r->external_id ? ' ' : 'n';
	r->values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	r->nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	r->values[3] = r->email ? CStringGetTextDatum(r->email) : (Datum) 0;
	r->nulls[3] = r->email ? ' ' : 'n';
	r->values[4] = metadata ? JsonbPGetDatum(metadata) :
		DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	r->values[5] = PG_ARGISNULL(5) ? PointerGetDatum(construct_empty_array(TEXTOID)) :
		PG_GETARG_DATUM(5);
	r->values[6] = CStringGetTextDatum(UserStatusNames[status]);
}

/*
 * register_common_case
 *		The common case, a new external_id of an existing partner, in one
 *		statement: the INSERT skips itself when the partner is missing or the
 *		id is tombstoned, and does nothing when the id or the email is taken
 *		(ON CONFLICT); each of those cases takes the slower path, which finds
 *		out which and answers accordingly.  Returns the new row, or (Datum) 0
 *		when nothing was inserted; the write context is then ended.
 */
static Datum
register_common_case(AccessScope *scope, Registration *r)
{
	static SPIPlanPtr plan = NULL;
	Datum		tomb_user_id;
	int32		tomb_count;
	bool		tomb_allowed;
	bool		tombstoned = true;
	Datum		result;

	WriteCtxBegin(scope->caller, NULL, NULL, WRITE_PLAIN);
	UserlifeRun(&plan,
				"INSERT INTO userlife.users AS u (user_id, partner, external_id, display_name, email,"
				" metadata, tags, status, enrollment_count) "
				"SELECT pg_catalog.gen_random_uuid(), $1, $2, $3, $4, $5, $6, $7::userlife.user_status, 1 "
				"WHERE EXISTS (SELECT 1 FROM userlife.partners p WHERE p.partner = $1)"
				" AND NOT EXISTS (SELECT 1 FROM userlife.tombstones t WHERE t.partner = $1"
				"  AND t.external_id_digest = pg_catalog.sha256(pg_catalog.convert_to($2, 'UTF8'))) "
				"ON CONFLICT DO NOTHING RETURNING u",
				7, registration_argtypes, r->values, r->nulls, false, 0, SPI_OK_INSERT_RETURNING);
	if (SPI_processed != 1)
	{
		WriteCtxEnd();
		return (Datum) 0;
	}
	result = first_column();

	/*
	 * The INSERT may have waited for a transaction that purged a user with
	 * this id and wrote its tombstone, which the statement's snapshot did
	 * not show; the answer is then the one the tombstone gives (a fresh
	 * tombstone never allows re-enrollment yet).  The error rolls the
	 * insertion back.
	 */
	if (r->external_id != NULL &&
		(!AppendTombstoneExists(r->partner, r->external_id, &tombstoned) || tombstoned) &&
		lookup_tombstone(r->partner, r->external_id, &tomb_user_id, &tomb_count, &tomb_allowed))
	{
		if (!tomb_allowed)
			LifecycleRefuseReenroll(r->partner, r->external_id);
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("%s was purged by a concurrent transaction",
						UserlifeUserName(r->partner, r->external_id)),
				 errhint("Retry the registration.")));
	}
	return result;
}

/*
 * reenroll_existing
 *		An existing user (locked): re-enroll only when allowed, then reset
 *		the permission.
 */
static Datum
reenroll_existing(AccessScope *scope, Registration *r, UserRow *u)
{
	static SPIPlanPtr plan = NULL;
	Datum		result;

	if (!u->allow_new_enroll)
		LifecycleRefuseReenroll(r->partner, r->external_id);
	if (r->email != NULL)
		require_email_free(r->partner, r->email, u->user_id, true);
	r->values[7] = u->user_id;
	WriteCtxBegin(scope->caller, NULL, "reenroll", WRITE_LIFECYCLE);
	result = update_user_row(&plan,
							 "UPDATE userlife.users u SET display_name = $3, email = $4,"
							 " metadata = $5, tags = $6, status = 'active', suspended_until = NULL,"
							 " enrollment_count = u.enrollment_count + 1, verified_at = NULL,"
							 " verified_attributes = NULL, deleted_at = NULL, purge_after = NULL,"
							 " allow_new_enroll = false "
							 "WHERE u.user_id = $8 AND u.partner = $1 AND u.external_id = $2 "
							 "RETURNING u",
							 8, registration_argtypes, r->values, r->nulls, "re-enrollment");
	return result;
}

/*
 * register_after_tombstone
 *		No user holds the external_id: the partner must exist, a tombstone
 *		of the id must allow re-enrollment (and is then dropped, the new row
 *		keeping its user_id and count), and the email must be free.
 */
static Datum
register_after_tombstone(AccessScope *scope, Registration *r)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr drop_tombstone_plan = NULL;
	Datum		tomb_user_id = (Datum) 0;
	int32		tomb_count = 0;
	bool		tomb_allowed = false;
	bool		from_tombstone = false;

	LifecycleRequirePartner(r->partner);
	if (r->external_id != NULL &&
		lookup_tombstone(r->partner, r->external_id, &tomb_user_id, &tomb_count, &tomb_allowed))
	{
		Oid			dargtypes[2] = {TEXTOID, UUIDOID};
		Datum		dvalues[2];

		if (!tomb_allowed)
			LifecycleRefuseReenroll(r->partner, r->external_id);
		from_tombstone = true;
		dvalues[0] = r->values[0];
		dvalues[1] = tomb_user_id;
		UserlifeRun(&drop_tombstone_plan,
					"DELETE FROM userlife.tombstones t WHERE t.partner = $1 AND t.user_id = $2",
					2, dargtypes, dvalues, NULL, false, 0, SPI_OK_DELETE);
	}

	if (r->email != NULL)
		require_email_free(r->partner, r->email, (Datum) 0, false);

	r->values[7] = from_tombstone ? tomb_user_id : (Datum) 0;
	r->nulls[7] = from_tombstone ? ' ' : 'n';
	r->values[8] = Int32GetDatum(from_tombstone ? tomb_count + 1 : 1);
	if (from_tombstone)
	{
		r->values[6] = CStringGetTextDatum("active");
		WriteCtxBegin(scope->caller, NULL, "reenroll", WRITE_LIFECYCLE);
	}
	else
		WriteCtxBegin(scope->caller, NULL, NULL, WRITE_PLAIN);
	UserlifeRun(&insert_plan,
				"INSERT INTO userlife.users AS u (user_id, partner, external_id, display_name, email,"
				" metadata, tags, status, enrollment_count) "
				"VALUES (coalesce($8, pg_catalog.gen_random_uuid()), $1, $2, $3, $4, $5, $6,"
				" $7::userlife.user_status, $9) RETURNING u",
				9, registration_argtypes, r->values, r->nulls, false, 0, SPI_OK_INSERT_RETURNING);
	return first_column();
}

/*
 * register_user(partner, external_id, display_name, email, metadata, tags,
 * status): a new user, or the re-enrollment of an allowed external_id.
 */
Datum
userlife_register_user(PG_FUNCTION_ARGS)
{
	Registration r;
	AccessScope scope;
	UserRow		u;
	Datum		result;

	read_registration(fcinfo, &r);
	AccessEnter(&scope, ACCESS_DEVELOPER, r.partner);
	result = register_common_case(&scope, &r);
	if (result == (Datum) 0)
	{
		if (r.external_id != NULL && fetch_user(r.partner, r.external_id, LOCK_UPDATE, &u))
			result = reenroll_existing(&scope, &r, &u);
		else
			result = register_after_tombstone(&scope, &r);
	}
	PG_RETURN_DATUM(finish_user_result(&scope, result));
}

/*
 * LifecycleAllowReenroll
 *		Sets the one-shot re-enrollment permission of a user, or of a purged
 *		user's tombstone; P0002 when neither exists.  Returns allow.
 */
bool
LifecycleAllowReenroll(const UserCall *call, bool allow, const char *reason)
{
	static SPIPlanPtr user_plan = NULL;
	static SPIPlanPtr tomb_plan = NULL;
	UserRow		u;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, BOOLOID};
	Datum		values[3];

	Assert(AccessIsEntered());

	values[0] = CStringGetTextDatum(call->partner);
	values[1] = CStringGetTextDatum(call->external_id);
	values[2] = BoolGetDatum(allow);
	if (fetch_user(call->partner, call->external_id, LOCK_UPDATE, &u))
	{
		WriteCtxBegin(call->scope.caller, reason, NULL, WRITE_PLAIN);
		(void) run_user_update(&user_plan,
							   "UPDATE userlife.users u SET allow_new_enroll = $3 "
							   "WHERE u.partner = $1 AND u.external_id = $2 RETURNING u",
							   3, argtypes, values, NULL);
		WriteCtxEnd();
	}
	else
	{
		UserlifeRun(&tomb_plan,
				  "UPDATE userlife.tombstones t SET allow_new_enroll = $3 WHERE t.partner = $1"
				  " AND t.external_id_digest = pg_catalog.sha256(pg_catalog.convert_to($2, 'UTF8'))",
				  3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
		if (SPI_processed == 0)
			user_not_found(call->partner, call->external_id);
	}
	return allow;
}

/*
 * allow_reenroll(partner, external_id, allow, reason): sets the one-shot
 * re-enrollment permission of a user, or of a purged user's tombstone.
 */
Datum
userlife_allow_reenroll(PG_FUNCTION_ARGS)
{
	UserCall	call = AccessUserArgs(fcinfo);
	bool		allow = PG_ARGISNULL(2) ? true : PG_GETARG_BOOL(2);

	AccessEnterUser(&call, ACCESS_COMPLIANCE);
	allow = LifecycleAllowReenroll(&call, allow, UserlifeOptionalText(fcinfo, 3));
	AccessLeave(&call.scope);
	PG_RETURN_BOOL(allow);
}

/*------------------------------------------------------------------------
 * Reading one user
 *------------------------------------------------------------------------
 */

/* get_user(partner, external_id): the user's row; P0002 when absent */
Datum
userlife_get_user(PG_FUNCTION_ARGS)
{
	UserCall	call = AccessUserArgs(fcinfo);
	Datum		row;

	AccessEnterUser(&call, ACCESS_READER);
	row = UserlifeGetUserRow(call.partner, call.external_id);
	AccessLeave(&call.scope);
	PG_RETURN_DATUM(row);
}

/*------------------------------------------------------------------------
 * Profile and verification
 *------------------------------------------------------------------------
 */

/*
 * merge_object
 *		Pushes the RFC 7396 merge of patch (an object) into target (any
 *		container, or NULL) onto state: keys of the patch replace the
 *		target's, a JSON null removes the key, objects merge recursively.
 */
static JsonbValue *
merge_object(JsonbParseState **state, JsonbContainer *target, JsonbContainer *patch)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k;
	JsonbValue	v;

	if (target != NULL && !JsonContainerIsObject(target))
		target = NULL;
	pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
	if (target != NULL)
	{
		it = JsonbIteratorInit(target);
		while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
		{
			if (tok != WJB_KEY)
				continue;
			tok = JsonbIteratorNext(&it, &v, true);
			if (getKeyJsonValueFromContainer(patch, k.val.string.val, k.val.string.len, NULL) == NULL)
			{
				pushJsonbValue(state, WJB_KEY, &k);
				pushJsonbValue(state, WJB_VALUE, &v);
			}
		}
	}
	it = JsonbIteratorInit(patch);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		if (v.type == jbvNull)
			continue;
		pushJsonbValue(state, WJB_KEY, &k);
		if (v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data))
		{
			JsonbContainer *sub = NULL;

			if (target != NULL)
			{
				JsonbValue *tv = getKeyJsonValueFromContainer(target, k.val.string.val,
															  k.val.string.len, NULL);

				if (tv != NULL && tv->type == jbvBinary)
					sub = tv->val.binary.data;
			}
			merge_object(state, sub, v.val.binary.data);
		}
		else
			pushJsonbValue(state, WJB_VALUE, &v);
	}
	return pushJsonbValue(state, WJB_END_OBJECT, NULL);
}

static Jsonb *
merge_patch(Jsonb *target, Jsonb *patch)
{
	JsonbParseState *state = NULL;

	return JsonbValueToJsonb(merge_object(&state, &target->root, &patch->root));
}

static void
require_not_deleted(const char *partner, const char *external_id, const UserRow *u)
{
	LifecycleRequireNotDeleted(partner, external_id, u->status);
}

/* LifecycleRequireNotDeleted: the 55000 of changing the profile of a deleted user */
void
LifecycleRequireNotDeleted(const char *partner, const char *external_id, UserStatus status)
{
	if (status == USER_DELETED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is deleted", UserlifeUserName(partner, external_id)),
				 errhint("Restore the user with userlife.restore_user() first.")));
}

/*
 * update_user(partner, external_id, display_name, email, metadata, tags,
 * expected_version): changes the given profile fields.
 */
Datum
userlife_update_user(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	char	   *email = UserlifeOptionalText(fcinfo, 3);
	UserRow		u;
	Oid			argtypes[6] = {UUIDOID, TEXTOID, TEXTOID, JSONBOID, TEXTARRAYOID, BOOLOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Datum		result;

	UserlifeCheckPartnerId(call.partner);
	if (email != NULL)
		UserlifeCheckEmail(email);
	if (!PG_ARGISNULL(4))
		LifecycleCheckMetadata(PG_GETARG_JSONB_P(4), "metadata patch");
	if (!PG_ARGISNULL(5))
		LifecycleCheckTags(PG_GETARG_ARRAYTYPE_P(5));

	AccessEnter(&call.scope, ACCESS_DEVELOPER, call.partner);
	require_user(call.partner, call.external_id, LOCK_UPDATE, &u);
	if (!PG_ARGISNULL(6) && PG_GETARG_INT64(6) != u.version)
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_VERSION_MISMATCH),
				 errmsg("version of %s does not match", UserlifeUserName(call.partner, call.external_id)),
				 errdetail("The user is at version " INT64_FORMAT ", not " INT64_FORMAT ".",
						   u.version, PG_GETARG_INT64(6)),
				 errhint("Read the user again and retry with its current version.")));
	require_not_deleted(call.partner, call.external_id, &u);
	if (email != NULL)
		require_email_free(call.partner, email, u.user_id, true);

	/* NULL keeps a field: $6 tells whether display_name was given */
	values[0] = u.user_id;
	values[1] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[1] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[2] = email ? CStringGetTextDatum(email) : (Datum) 0;
	nulls[2] = email ? ' ' : 'n';
	values[3] = JsonbPGetDatum(PG_ARGISNULL(4) ? u.metadata :
							   merge_patch(u.metadata, PG_GETARG_JSONB_P(4)));
	values[4] = PG_ARGISNULL(5) ? (Datum) 0 : PG_GETARG_DATUM(5);
	nulls[4] = PG_ARGISNULL(5) ? 'n' : ' ';
	values[5] = BoolGetDatum(!PG_ARGISNULL(2));

	WriteCtxBegin(call.scope.caller, NULL, NULL, WRITE_PLAIN);
	result = run_user_update(&plan,
							 "UPDATE userlife.users u SET"
							 " display_name = CASE WHEN $6 THEN $2 ELSE u.display_name END,"
							 " email = coalesce($3, u.email), metadata = $4,"
							 " tags = coalesce($5, u.tags) "
							 "WHERE u.user_id = $1 RETURNING u",
							 6, argtypes, values, nulls);
	if (result == (Datum) 0)
		result = SPI_datumTransfer(u.row, false, -1);	/* nothing changed */
	PG_RETURN_DATUM(finish_user_result(&call.scope, result));
}

/* mark_verified(partner, external_id, attributes): records verification once */
Datum
userlife_mark_verified(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	UserRow		u;
	Oid			argtypes[2] = {UUIDOID, JSONBOID};
	Datum		values[2];
	Datum		result;

	UserlifeRequireArg(fcinfo, 2, "attributes");
	UserlifeCheckPartnerId(call.partner);
	LifecycleCheckMetadata(PG_GETARG_JSONB_P(2), "attributes");

	AccessEnter(&call.scope, ACCESS_DEVELOPER, call.partner);
	require_user(call.partner, call.external_id, LOCK_UPDATE, &u);
	require_not_deleted(call.partner, call.external_id, &u);
	if (u.verified)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is already verified", UserlifeUserName(call.partner, call.external_id)),
				 errdetail("Verified attributes are recorded once per enrollment.")));
	values[0] = u.user_id;
	values[1] = PG_GETARG_DATUM(2);
	WriteCtxBegin(call.scope.caller, NULL, "verify", WRITE_PLAIN);
	result = update_user_row(&plan,
							 "UPDATE userlife.users u SET verified_at = pg_catalog.now(),"
							 " verified_attributes = $2 WHERE u.user_id = $1 RETURNING u",
							 2, argtypes, values, NULL, "verification");
	PG_RETURN_DATUM(finish_user_result(&call.scope, result));
}

/*------------------------------------------------------------------------
 * Status and fraud flag
 *------------------------------------------------------------------------
 */

/* set_status's UPDATE: only from a status the rules allow ($5, allowed_from) */
#define CHANGE_STATUS_SQL \
	"UPDATE userlife.users u SET status = $3::userlife.user_status, suspended_until = $4 " \
	"WHERE u.partner = $1 AND u.external_id = $2" \
	" AND u.status::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($5) RETURNING u"

/*
 * LifecycleChangeStatus
 *		Moves a user to another status (not deleted), as the transition
 *		rules allow; returns the row after the change, or as it is when it
 *		already has that status.  One UPDATE in the common case, which
 *		changes the row only as the transition rules allow.
 */
Datum
LifecycleChangeStatus(const UserCall *call, UserStatus status, const char *reason, bool has_until, TimestampTz until)
{
	static SPIPlanPtr plan = NULL;
	UserRow		u;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTARRAYOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		has_reason = UserlifeEffectiveReason(reason) != NULL;
	Datum		result;

	Assert(AccessIsEntered());

	if (status == USER_DELETED)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("status \"%s\" cannot be set with set_status", UserStatusNames[USER_DELETED]),
				 errhint("Use userlife.delete_user() to delete a user.")));
	if (has_until && status != USER_SUSPENDED)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"until\" is only allowed with status \"%s\"", UserStatusNames[USER_SUSPENDED]),
				 errdetail("The status asked for is \"%s\".", UserStatusNames[status])));
	/* future by the clock run_maintenance ends suspensions with, not the transaction's start */
	if (has_until && until <= GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"until\" must be in the future")));

	values[0] = CStringGetTextDatum(call->partner);
	values[1] = CStringGetTextDatum(call->external_id);
	values[2] = CStringGetTextDatum(UserStatusNames[status]);
	values[3] = has_until ? TimestampTzGetDatum(until) : (Datum) 0;
	nulls[3] = has_until ? ' ' : 'n';
	values[4] = allowed_from(status, has_reason);

	/*
	 * The rule is checked before the write, by the UPDATE itself: it changes
	 * the row only from a status the rules allow (with the reason given).
	 * When it changes nothing, the user is missing, already has the status
	 * (the row is returned as it is), or the rules refuse the change from
	 * the status it has.  The plain read sees the statement's snapshot,
	 * which may be older than the row the UPDATE saw: a verdict is only
	 * given on the row's last version, read and locked, and a change the
	 * rules allow from there is written then.
	 */
	WriteCtxBegin(call->scope.caller, reason, NULL, WRITE_PLAIN);
	result = run_user_update(&plan, CHANGE_STATUS_SQL, 5, argtypes, values, nulls);
	if (result == (Datum) 0)
	{
		require_user(call->partner, call->external_id, LOCK_NONE, &u);
		if (u.status != status)
			require_user(call->partner, call->external_id, LOCK_UPDATE, &u);
		if (u.status == status)
			result = SPI_datumTransfer(u.row, false, -1);
		else
		{
			LifecycleCheckTransition(UserlifeUserName(call->partner, call->external_id),
									 u.status, status, has_reason);
			/* the rules may have changed since the first UPDATE read them */
			values[4] = allowed_from(status, has_reason);
			result = update_user_row(&plan, CHANGE_STATUS_SQL, 5, argtypes, values, nulls,
									 "status change");
		}
	}
	WriteCtxEnd();
	return result;
}

/*
 * change_status: the body of set_status, enable_user and disable_user, once
 * the call's own arguments are read
 */
static Datum
change_status(FunctionCallInfo fcinfo, UserCall *call, UserStatus status, const char *reason,
			  bool has_until, TimestampTz until)
{
	Datum		result;

	AccessEnterUser(call, ACCESS_COMPLIANCE);
	result = LifecycleChangeStatus(call, status, reason, has_until, until);
	AccessLeave(&call->scope);
	return result;
}

/* set_status(partner, external_id, status, reason, until) */
Datum
userlife_set_status(PG_FUNCTION_ARGS)
{
	UserCall	call = AccessUserArgs(fcinfo);
	UserStatus	status;

	UserlifeRequireArg(fcinfo, 2, "status");
	status = UserlifeStatusFromDatum(PG_GETARG_DATUM(2));
	PG_RETURN_DATUM(change_status(fcinfo, &call, status, UserlifeOptionalText(fcinfo, 3),
								  !PG_ARGISNULL(4),
								  PG_ARGISNULL(4) ? 0 : PG_GETARG_TIMESTAMPTZ(4)));
}

/* fixed_status: enable_user and disable_user, set_status to one status */
static Datum
fixed_status(FunctionCallInfo fcinfo, UserStatus status)
{
	UserCall	call = AccessUserArgs(fcinfo);

	return change_status(fcinfo, &call, status, UserlifeOptionalText(fcinfo, 2), false, 0);
}

/* enable_user(partner, external_id, reason): set_status to active */
Datum
userlife_enable_user(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(fixed_status(fcinfo, USER_ACTIVE));
}

/* disable_user(partner, external_id, reason): set_status to inactive */
Datum
userlife_disable_user(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(fixed_status(fcinfo, USER_INACTIVE));
}

/*
 * end_user_write: ends the write of a call on one user; returns the row the
 * write returned, or the user's row as it is when the write changed nothing
 */
static Datum
end_user_write(const UserCall *call, Datum written)
{
	WriteCtxEnd();
	if (written != (Datum) 0)
		return written;
	return UserlifeGetUserRow(call->partner, call->external_id);
}

/* LifecycleSetFraudFlag: sets or clears the fraud flag; returns the row */
Datum
LifecycleSetFraudFlag(const UserCall *call, bool is_fraudulent, const char *reason)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, BOOLOID};
	Datum		values[3];
	Datum		result;

	Assert(AccessIsEntered());

	values[0] = CStringGetTextDatum(call->partner);
	values[1] = CStringGetTextDatum(call->external_id);
	values[2] = BoolGetDatum(is_fraudulent);
	WriteCtxBegin(call->scope.caller, reason, "fraud_flag", WRITE_PLAIN);
	result = run_user_update(&plan,
							 "UPDATE userlife.users u SET is_fraudulent = $3 "
							 "WHERE u.partner = $1 AND u.external_id = $2"
							 " AND u.is_fraudulent <> $3 RETURNING u",
							 3, argtypes, values, NULL);
	return end_user_write(call, result);
}

/* set_fraud_flag(partner, external_id, is_fraudulent, reason) */
Datum
userlife_set_fraud_flag(PG_FUNCTION_ARGS)
{
	UserCall	call = AccessUserArgs(fcinfo);
	Datum		result;

	UserlifeRequireArg(fcinfo, 2, "is_fraudulent");
	AccessEnterUser(&call, ACCESS_COMPLIANCE);
	result = LifecycleSetFraudFlag(&call, PG_GETARG_BOOL(2), UserlifeOptionalText(fcinfo, 3));
	AccessLeave(&call.scope);
	PG_RETURN_DATUM(result);
}

/*------------------------------------------------------------------------
 * Soft deletion and restore
 *------------------------------------------------------------------------
 */

/*
 * soft_delete
 *		Marks one user deleted; returns true when it did.  With row given,
 *		the new row is copied out of SPI memory into *row.  *found tells a
 *		user already deleted from one that does not exist.  The caller has
 *		entered and begun the write.  The statements' result tables are
 *		freed here, so that a batch of deletions does not keep one per user.
 *
 *		purge_after is now() + retention counted in UTC, so that the
 *		caller's TimeZone (a DST change within the retention) cannot move
 *		it, and with the retention capped at the 100 years check_retention
 *		allows: a partners row written before that check existed, or by a
 *		superuser past the constraint, must not make every deletion fail
 *		with a timestamp overflow.
 */
static bool
soft_delete(const char *partner, const char *external_id, Datum *row, bool *found)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr exists_plan = NULL;
	bool		deleted;

	UserlifeRunForUser(&plan,
					   "UPDATE userlife.users u SET status = 'deleted', deleted_at = pg_catalog.now(),"
					   " purge_after = pg_catalog.timezone('UTC',"
					   " pg_catalog.timezone('UTC', pg_catalog.now())"
					   "  + LEAST(p.retention, '100 years'::pg_catalog.interval)) "
					   "FROM userlife.partners p "
					   "WHERE p.partner = u.partner AND u.partner = $1 AND u.external_id = $2"
					   " AND u.status <> 'deleted' RETURNING u",
					   partner, external_id, false, 0, SPI_OK_UPDATE_RETURNING);
	deleted = SPI_processed > 0;
	if (deleted && row != NULL)
		*row = first_column();
	SPI_freetuptable(SPI_tuptable);
	*found = deleted;
	if (deleted)
		return true;
	UserlifeRunForUser(&exists_plan,
					   "SELECT 1 FROM userlife.users u WHERE u.partner = $1 AND u.external_id = $2",
					   partner, external_id, true, 1, SPI_OK_SELECT);
	*found = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	return false;
}

/* LifecycleDelete: soft-deletes one user (a no-op when deleted); returns the row */
Datum
LifecycleDelete(const UserCall *call, const char *reason)
{
	Datum		result = (Datum) 0;
	bool		found;

	Assert(AccessIsEntered());

	WriteCtxBegin(call->scope.caller, reason, "delete", WRITE_LIFECYCLE);
	if (!soft_delete(call->partner, call->external_id, &result, &found))
		result = (Datum) 0;
	return end_user_write(call, result);
}

/* delete_user(partner, external_id, reason): soft deletion */
Datum
userlife_delete_user(PG_FUNCTION_ARGS)
{
	UserCall	call = AccessUserArgs(fcinfo);
	Datum		result;

	AccessEnterUser(&call, ACCESS_COMPLIANCE);
	result = LifecycleDelete(&call, UserlifeOptionalText(fcinfo, 2));
	AccessLeave(&call.scope);
	PG_RETURN_DATUM(result);
}

/*
 * lock_delete_batch
 *		Locks every existing user of the batch in user_id order before any
 *		is changed.  Two calls over overlapping ids, in whatever input
 *		order, then take their row locks in the same order, so one waits
 *		for the other instead of both deadlocking halfway (the LockRows
 *		node runs above the sort, so rows are locked in sorted order).
 *		Ids that match nothing (NULL, empty, too long) simply lock nothing.
 */
static void
lock_delete_batch(const char *partner, ArrayType *ids)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TEXTOID, TEXTARRAYOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(partner);
	values[1] = PointerGetDatum(ids);
	UserlifeRun(&plan,
				"SELECT u.user_id FROM userlife.users u"
				" WHERE u.partner = $1 AND u.external_id OPERATOR(pg_catalog.=) ANY ($2)"
				" ORDER BY u.user_id FOR NO KEY UPDATE OF u",
				2, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * delete_one
 *		The result of soft-deleting one item of a delete_users batch.
 */
static int
delete_one(const char *partner, Datum elem, bool isnull)
{
	char	   *external_id;
	int			len;
	bool		found = false;

	if (isnull)
		return DELETE_NOT_FOUND;
	external_id = TextDatumGetCString(elem);
	len = strlen(external_id);
	/* longer than any stored external_id can be: no need to look it up */
	if (len == 0 || len > USERLIFE_MAX_EXTERNAL_ID * MAX_MULTIBYTE_CHAR_LEN)
		return DELETE_NOT_FOUND;
	if (soft_delete(partner, external_id, NULL, &found))
		return DELETE_DONE;
	return found ? DELETE_ALREADY : DELETE_NOT_FOUND;
}

/*
 * delete_users(partner, external_ids, reason): one result row per input, in
 * order.  At most DELETE_USERS_MAX ids.  Each item runs in a memory context
 * reset after it, and frees its statements' results, so the memory used is
 * that of one item whatever the batch.
 */
Datum
userlife_delete_users(PG_FUNCTION_ARGS)
{
	static const char *const result_names[3] = {"deleted", "already_deleted", "not_found"};
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AccessScope scope;
	ArrayType  *ids;
	Datum	   *elems;
	bool	   *enulls;
	Datum		results[3];
	MemoryContext item_cxt;
	MemoryContext outer_cxt;
	int			n;
	int			i;

	UserlifeRequireArg(fcinfo, 1, "external_ids");
	UserlifeCheckPartnerId(partner);
	ids = PG_GETARG_ARRAYTYPE_P(1);
	if (ARR_NDIM(ids) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external_ids must be a one-dimensional array")));
	n = ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids));
	UserlifeCheckBatchSize(n, DELETE_USERS_MAX, "external_ids", "delete_users");
	deconstruct_array(ids, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
	for (i = 0; i < 3; i++)
		results[i] = CStringGetTextDatum(result_names[i]);
	InitMaterializedSRF(fcinfo, 0);

	AccessEnter(&scope, ACCESS_COMPLIANCE, partner);
	LifecycleRequirePartner(partner);
	lock_delete_batch(partner, ids);
	outer_cxt = CurrentMemoryContext;
	item_cxt = AllocSetContextCreate(outer_cxt, "delete_users item", ALLOCSET_DEFAULT_SIZES);
	WriteCtxBegin(scope.caller, UserlifeOptionalText(fcinfo, 2), "delete", WRITE_LIFECYCLE);
	for (i = 0; i < n; i++)
	{
		Datum		out[2];
		bool		outnull[2] = {enulls[i], false};

		CHECK_FOR_INTERRUPTS();
		/* an SPI call leaves the SPI procedure context current: switch back per item */
		MemoryContextSwitchTo(item_cxt);
		out[0] = elems[i];
		out[1] = results[delete_one(partner, elems[i], enulls[i])];
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
		MemoryContextSwitchTo(outer_cxt);
		MemoryContextReset(item_cxt);
	}
	WriteCtxEnd();
	MemoryContextDelete(item_cxt);
	AccessLeave(&scope);
	return (Datum) 0;
}

/* restore_user(partner, external_id, reason): deleted -> inactive within retention */
Datum
userlife_restore_user(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	UserRow		u;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];
	Datum		result;

	AccessEnterUser(&call, ACCESS_COMPLIANCE);
	require_user(call.partner, call.external_id, LOCK_UPDATE, &u);
	if (u.status != USER_DELETED)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s is not deleted", UserlifeUserName(call.partner, call.external_id)),
				 errdetail("Only a deleted user can be restored; this one has status \"%s\".",
						   UserStatusNames[u.status])));
	/*
	 * The window closes by the clock: purge may remove the user at any moment
	 * after purge_after, and a transaction opened before then must not
	 * restore it later.
	 */
	if (!u.purge_after_null && u.purge_after <= GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_RETENTION_OVER),
				 errmsg("retention window of %s is over", UserlifeUserName(call.partner, call.external_id)),
				 errdetail("The user's retention period has ended; it is due for purge.")));
	values[0] = u.user_id;
	WriteCtxBegin(call.scope.caller, UserlifeOptionalText(fcinfo, 2), "restore", WRITE_LIFECYCLE);
	result = update_user_row(&plan,
							 "UPDATE userlife.users u SET status = 'inactive', deleted_at = NULL,"
							 " purge_after = NULL WHERE u.user_id = $1 RETURNING u",
							 1, argtypes, values, NULL, "restore");
	PG_RETURN_DATUM(finish_user_result(&call.scope, result));
}

/*------------------------------------------------------------------------
 * Jobs
 *------------------------------------------------------------------------
 */

/*
 * record_job(partner, external_id, job_type, outcome, payload): stores the
 * job; a fraudulent user's jobs fail with fraud_suspected, a user not
 * active fails with user_<status>.
 */
Datum
userlife_record_job(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	char	   *job_type = UserlifeRequireText(fcinfo, 2, "job_type");
	char	   *outcome = PG_ARGISNULL(3) ? "passed" : text_to_cstring(PG_GETARG_TEXT_PP(3));
	const char *failure_reason = NULL;
	UserRow		u;
	Oid			argtypes[6] = {TEXTOID, UUIDOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	Datum		result;

	UserlifeCheckPartnerId(call.partner);
	if (job_type[0] == '\0' || strlen(job_type) > 255)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid job_type \"%s\"", UserlifeMsgValue(job_type)),
				 errdetail("A job_type is 1 to 255 bytes long.")));
	if (strcmp(outcome, "passed") != 0 && strcmp(outcome, "failed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid job outcome \"%s\"", UserlifeMsgValue(outcome)),
				 errdetail("A job outcome is \"passed\" or \"failed\".")));

	AccessEnter(&call.scope, ACCESS_DEVELOPER, call.partner);
	/* FOR SHARE: a fraud flag or status change waits for this job, and vice versa */
	require_user(call.partner, call.external_id, LOCK_SHARE, &u);
	if (u.is_fraudulent)
	{
		outcome = "failed";
		failure_reason = "fraud_suspected";
	}
	else if (u.status != USER_ACTIVE)
	{
		outcome = "failed";
		failure_reason = psprintf("user_%s", UserStatusNames[u.status]);
	}
	values[0] = CStringGetTextDatum(call.partner);
	values[1] = u.user_id;
	values[2] = CStringGetTextDatum(job_type);
	values[3] = CStringGetTextDatum(outcome);
	values[4] = failure_reason ? CStringGetTextDatum(failure_reason) : (Datum) 0;
	nulls[4] = failure_reason ? ' ' : 'n';
	values[5] = PG_ARGISNULL(4) ? DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")) :
		PG_GETARG_DATUM(4);
	UserlifeRun(&plan,
			  "INSERT INTO userlife.jobs AS j (partner, user_id, job_type, outcome, failure_reason, payload) "
			  "VALUES ($1, $2, $3, $4, $5, $6) RETURNING j",
			  6, argtypes, values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	result = first_column();
	AccessLeave(&call.scope);
	PG_RETURN_DATUM(result);
}
