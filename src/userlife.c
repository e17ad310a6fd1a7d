/*-------------------------------------------------------------------------
 *
 * userlife.c
 *		Module entry point: settings, catalog lookups and the argument
 *		checks every SQL-callable function shares.
 *
 * Memory: cached OIDs and enum labels live in static variables and are
 * reset by a relcache callback when userlife.users or userlife.transitions
 * is invalidated (which DROP EXTENSION does), never by time.
 *
 * Kept plans: every plan prepared through UserlifePreparePlan is recorded
 * with the address of the static that holds it.  When the schema userlife
 * goes or comes (DROP EXTENSION, CREATE EXTENSION, pg_restore --clean),
 * the statics are cleared so that the next call prepares its statement
 * again: the plan cache would re-analyse a statement whose tables were
 * dropped, but not one whose parameter types were (a rule merge binds
 * userlife.user_status by OID).  A cleared plan may still be running in an
 * outer call, so it is only freed at the end of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"
#include "funcapi.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "access/htup_details.h"
#include "catalog/pg_enum.h"

#include "userlife.h"
#include "chain.h"
#include "writectx.h"
#include "webhooks.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

const char *const UserStatusNames[USER_STATUS_COUNT] = {
	"active", "inactive", "suspended", "flagged", "blocked", "deleted"
};

char	   *userlife_actor = NULL;
char	   *userlife_reason = NULL;
char	   *userlife_default_retention = NULL;
bool		userlife_notify = true;
int			userlife_notify_interval_ms = 100;
int			userlife_purge_rate_limit = 0;

static Oid	users_relid = InvalidOid;
static Oid	transitions_relid = InvalidOid;
static Oid	status_typid = InvalidOid;
static Oid	status_enum_oids[USER_STATUS_COUNT];

/* the schema userlife as last looked up, and its pg_namespace cache hash */
static Oid	schema_oid = InvalidOid;
static uint32 schema_hash = 0;

/* the statics holding kept plans, and the plans cleared but maybe in use */
static List *plan_slots = NIL;
static List *retired_plans = NIL;

static bool check_default_retention(char **newval, void **extra, GucSource source);
static void reset_catalog_cache(Datum arg, Oid relid);
static void schema_changed(Datum arg, int cacheid, uint32 hashvalue);
static void free_retired_plans(XactEvent event, void *arg);

/*
 * _PG_init
 *		Defines the settings, reserves their prefix and lets every concern
 *		register its callbacks.
 */
void
_PG_init(void)
{
	DefineCustomStringVariable("userlife.actor",
							   "Application-level actor recorded in the audit.",
							   "An operator email or service name; set it with SET LOCAL.",
							   &userlife_actor, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("userlife.reason",
							   "Default reason when a function's reason argument is NULL.",
							   NULL,
							   &userlife_reason, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("userlife.default_retention",
							   "Retention of deleted users for partners created without one.",
							   NULL,
							   &userlife_default_retention, "30 days",
							   PGC_SUSET, 0, check_default_retention, NULL, NULL);
	DefineCustomBoolVariable("userlife.notify",
							 "Send the userlife_events wake-up notification.",
							 NULL,
							 &userlife_notify, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("userlife.notify_interval",
							"Least time between two notifications of one backend.",
							"0 sends one per transaction that wrote events.",
							&userlife_notify_interval_ms, 100, 0, 3600 * 1000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("userlife.purge_rate_limit",
							"Most users one purge_expired call removes per second.",
							"The purge pauses between users to keep to it, so live traffic keeps "
							"its share of the CPU; 0 purges as fast as it can.",
							&userlife_purge_rate_limit, 0, 0, 1000000,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("userlife.signature_max_age",
							"Allowed clock skew of a signed request's timestamp, either side.",
							NULL,
							&userlife_signature_max_age_s, 300, 1, 24 * 3600,
							PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("userlife.reject_replayed_signatures",
							 "Refuse a signature that was already accepted within its max age.",
							 NULL,
							 &userlife_reject_replayed, true,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("userlife.require_body_signature",
							 "Signed requests must also carry a valid signature_v2 over their body.",
							 "Without one, enrollee_request refuses the request; a signature_v2 "
							 "that is sent must be valid either way.",
							 &userlife_require_body_signature, false,
							 PGC_SUSET, 0, NULL, NULL, NULL);
	WebhooksInit();
	MarkGUCPrefixReserved("userlife");

	CacheRegisterRelcacheCallback(reset_catalog_cache, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, schema_changed, (Datum) 0);
	RegisterXactCallback(free_retired_plans, NULL);

	WriteCtxInit();
	AccessInit();
	AuditInit();
	ChainInit();
	AppendInit();
	LifecycleInit();
	SearchInit();
	MaintenanceInit();
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
	Interval   *iv = NULL;
	Interval	zero = {0, 0, 0};
	Interval	limit = {0, 0, USERLIFE_MAX_RETENTION_MONTHS};
	MemoryContext oldcontext = CurrentMemoryContext;

	if (*newval == NULL)
		return false;
	PG_TRY();
	{
		iv = (Interval *) DatumGetPointer(DirectFunctionCall3(interval_in,
															  CStringGetDatum(*newval),
															  ObjectIdGetDatum(InvalidOid),
															  Int32GetDatum(-1)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
		iv = NULL;
	}
	PG_END_TRY();
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

static void
reset_catalog_cache(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == users_relid || relid == transitions_relid)
	{
		users_relid = InvalidOid;
		transitions_relid = InvalidOid;
		status_typid = InvalidOid;
	}
}

/*
 * schema_changed
 *		pg_namespace changed.  When the entry is the schema userlife (or
 *		the change cannot be told apart, hash 0, or the schema was never
 *		looked up), the extension may have been dropped or created: forget
 *		every cached OID and clear every kept plan.  An invalidation
 *		callback must not fail or read catalogs, so it only moves pointers.
 */
static void
schema_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	ListCell   *lc;

	if (hashvalue != 0 && OidIsValid(schema_oid) && hashvalue != schema_hash)
		return;
	schema_oid = InvalidOid;
	users_relid = InvalidOid;
	transitions_relid = InvalidOid;
	status_typid = InvalidOid;
	foreach(lc, plan_slots)
	{
		SPIPlanPtr *slot = (SPIPlanPtr *) lfirst(lc);

		if (*slot != NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			retired_plans = lappend(retired_plans, *slot);
			MemoryContextSwitchTo(old);
			*slot = NULL;
		}
	}
}

/*
 * free_retired_plans: at the end of the top-level transaction no statement
 * of ours runs any more, so the plans cleared by schema_changed can go.
 */
static void
free_retired_plans(XactEvent event, void *arg)
{
	List	   *plans = retired_plans;
	ListCell   *lc;

	if (plans == NIL || (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
						 event != XACT_EVENT_PARALLEL_COMMIT &&
						 event != XACT_EVENT_PARALLEL_ABORT && event != XACT_EVENT_PREPARE))
		return;
	retired_plans = NIL;
	foreach(lc, plans)
		SPI_freeplan((SPIPlanPtr) lfirst(lc));
	list_free(plans);
}

/* remember_schema: the OID of schema userlife, noting its cache hash for schema_changed */
static Oid
remember_schema(void)
{
	Oid			nsp = get_namespace_oid(USERLIFE_SCHEMA, true);

	if (OidIsValid(nsp) && nsp != schema_oid)
	{
		schema_hash = GetSysCacheHashValue1(NAMESPACEOID, ObjectIdGetDatum(nsp));
		schema_oid = nsp;
	}
	return nsp;
}

static Oid
userlife_namespace(void)
{
	Oid			nsp = remember_schema();

	if (!OidIsValid(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"userlife\" is not installed in this database")));
	return nsp;
}

/*
 * keep_plan
 *		Keeps a freshly prepared plan in *cache and records the static, so
 *		that schema_changed can clear it.
 */
static void
keep_plan(SPIPlanPtr *cache, SPIPlanPtr plan)
{
	MemoryContext old;

	(void) remember_schema();	/* so that schema_changed knows its hash */
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	if (!list_member_ptr(plan_slots, cache))
	{
		old = MemoryContextSwitchTo(TopMemoryContext);
		plan_slots = lappend(plan_slots, cache);
		MemoryContextSwitchTo(old);
	}
	*cache = plan;
}

/* UserlifeRelid: OID of table userlife.<relname>; 55000 when it is missing */
Oid
UserlifeRelid(const char *relname)
{
	Oid			relid = get_relname_relid(relname, userlife_namespace());

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table userlife.%s does not exist", relname)));
	return relid;
}

/* UserlifeUsersRelid: OID of userlife.users, cached until invalidated */
Oid
UserlifeUsersRelid(void)
{
	if (!OidIsValid(users_relid))
		users_relid = UserlifeRelid("users");
	return users_relid;
}

/* UserlifeTransitionsRelid: OID of userlife.transitions, cached until invalidated */
Oid
UserlifeTransitionsRelid(void)
{
	if (!OidIsValid(transitions_relid))
		transitions_relid = UserlifeRelid("transitions");
	return transitions_relid;
}

/* UserlifeStatusTypeOid: OID of userlife.user_status, with its label OIDs */
Oid
UserlifeStatusTypeOid(void)
{
	if (!OidIsValid(status_typid))
	{
		Oid			typid;
		int			i;

		(void) UserlifeUsersRelid();	/* so that the reset callback sees it */
		typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
								CStringGetDatum("user_status"),
								ObjectIdGetDatum(userlife_namespace()));
		if (!OidIsValid(typid))
			elog(ERROR, "type userlife.user_status does not exist");
		for (i = 0; i < USER_STATUS_COUNT; i++)
		{
			HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME,
											  ObjectIdGetDatum(typid),
											  CStringGetDatum(UserStatusNames[i]));

			if (!HeapTupleIsValid(tup))
				elog(ERROR, "label \"%s\" of userlife.user_status does not exist",
					 UserStatusNames[i]);
			status_enum_oids[i] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
			ReleaseSysCache(tup);
		}
		status_typid = typid;
	}
	return status_typid;
}

/* UserlifeStatusFromDatum: the UserStatus of a user_status enum Datum */
UserStatus
UserlifeStatusFromDatum(Datum d)
{
	Oid			label = DatumGetObjectId(d);
	int			i;

	(void) UserlifeStatusTypeOid();
	for (i = 0; i < USER_STATUS_COUNT; i++)
		if (status_enum_oids[i] == label)
			return (UserStatus) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid user status")));
	return USER_ACTIVE;			/* keep compiler quiet */
}

/* UserlifeStatusToDatum: the enum Datum of a UserStatus */
Datum
UserlifeStatusToDatum(UserStatus s)
{
	(void) UserlifeStatusTypeOid();
	return ObjectIdGetDatum(status_enum_oids[s]);
}

/*
 * UserlifeEffectiveReason
 *		The reason to record: the explicit one, else userlife.reason, else
 *		NULL.  An empty string counts as none.
 */
const char *
UserlifeEffectiveReason(const char *explicit_reason)
{
	if (explicit_reason != NULL && explicit_reason[0] != '\0')
		return explicit_reason;
	if (userlife_reason != NULL && userlife_reason[0] != '\0')
		return userlife_reason;
	return NULL;
}

/* UserlifeRequireArg: raises 22004 when a required argument is NULL */
void
UserlifeRequireArg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", argname)));
}

/* UserlifeRequireText: a required text argument as a C string */
char *
UserlifeRequireText(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	UserlifeRequireArg(fcinfo, argno, argname);
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* UserlifeOptionalText: an optional text argument, NULL when SQL NULL */
char *
UserlifeOptionalText(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* UserlifeCheckPartnerId: 1-64 characters of [A-Za-z0-9_.-], else 22023 */
void
UserlifeCheckPartnerId(const char *partner)
{
	size_t		len = strlen(partner);
	size_t		i;

	for (i = 0; i < len && i <= USERLIFE_MAX_PARTNER_ID; i++)
	{
		char		c = partner[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			break;
	}
	if (len == 0 || len > USERLIFE_MAX_PARTNER_ID || i != len)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid partner id \"%s\"", UserlifeMsgValue(partner)),
				 errdetail("A partner id is 1 to %d characters of A-Z, a-z, 0-9, \"_\", \".\" and \"-\".",
						   USERLIFE_MAX_PARTNER_ID)));
}

/* UserlifeCheckExternalId: 1-255 characters, else 22023 */
void
UserlifeCheckExternalId(const char *external_id)
{
	int			len = pg_mbstrlen(external_id);

	if (len == 0 || len > USERLIFE_MAX_EXTERNAL_ID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid external_id \"%s\"", UserlifeMsgValue(external_id)),
				 errdetail("An external_id is 1 to %d characters long; this one has %d.",
						   USERLIFE_MAX_EXTERNAL_ID, len)));
}

/*
 * unicode_white_space
 *		Whether a code point is white space by Unicode's White_Space
 *		property, or one of the zero-width spaces U+200B and U+FEFF that
 *		read as nothing.  Fixed, so that the verdict is the same in every
 *		database whatever its locale.
 */
static bool
unicode_white_space(pg_wchar c)
{
	return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
		c == 0x1680 || (c >= 0x2000 && c <= 0x200B) || c == 0x2028 ||
		c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

/*
 * email_white_space
 *		The first white space character of the address as a Unicode code
 *		point, or 0.  The address is read as UTF-8 whatever the database
 *		encoding; bytes that are not UTF-8 (SQL_ASCII) are skipped.
 */
static pg_wchar
email_white_space(const char *email, size_t len)
{
	const unsigned char *p = (const unsigned char *)
	pg_server_to_any(email, (int) len, PG_UTF8);
	const unsigned char *end = p + strlen((const char *) p);

	while (p < end)
	{
		int			l = pg_utf_mblen(p);
		pg_wchar	c;

		if (l > end - p || !pg_utf8_islegal(p, l))
		{
			p++;
			continue;
		}
		c = utf8_to_unicode(p);
		if (unicode_white_space(c))
			return c;
		p += l;
	}
	return 0;
}

/*
 * UserlifeCheckEmail
 *		An address must look like local@domain.tld: one "@", something on
 *		both sides, a dot inside the domain, no white space, at most 254
 *		bytes.  Deliverability is the partner's business.
 *
 *		The users_email_format constraint is checked here too, with its own
 *		regular expression under the collation of users.email (the
 *		database's, which no session setting changes): whatever the
 *		constraint's [[:space:]] would refuse under the database's locale
 *		is refused here first, with 22023 from the function instead of 23514
 *		from an internal INSERT.  Unicode white space is refused in every
 *		locale, also where [[:space:]] does not match it (U+00A0, U+0085, a
 *		database with the C locale).
 */
void
UserlifeCheckEmail(const char *email)
{
	size_t		len = strlen(email);
	const char *at = strchr(email, '@');
	const char *dot;
	pg_wchar	space;
	bool		ok = true;

	if (len == 0 || len > USERLIFE_MAX_EMAIL || at == NULL || at == email ||
		strchr(at + 1, '@') != NULL)
		ok = false;
	if (ok)
	{
		dot = strrchr(at + 1, '.');
		if (dot == NULL || dot == at + 1 || dot[1] == '\0')
			ok = false;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid email address"),
				 errdetail("An email address looks like name@example.com and has at most %d bytes.",
						   USERLIFE_MAX_EMAIL)));
	space = email_white_space(email, len);
	if (space != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid email address"),
				 errdetail("An email address cannot contain white space, and this one contains U+%04X.",
						   (unsigned int) space)));
	/* the constraint's own test; the regex is compiled once and cached */
	if (!DatumGetBool(DirectFunctionCall2Coll(textregexeq, DEFAULT_COLLATION_OID,
											  CStringGetTextDatum(email),
											  CStringGetTextDatum(USERLIFE_EMAIL_PATTERN))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid email address"),
				 errdetail("An email address cannot contain white space.")));
}

/*
 * UserlifePreparePlan
 *		Prepares a statement once per backend and keeps it.  Must be called
 *		between UserlifeSpiConnect and UserlifeSpiFinish.
 */
SPIPlanPtr
UserlifePreparePlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		keep_plan(cache, plan);
	}
	return *cache;
}

/*
 * UserlifePrepareCustomPlan
 *		Like UserlifePreparePlan, but every execution is planned with its
 *		parameter values and the table's current size.  For lookups by
 *		user_id in tables that start empty and grow (audit, events): a
 *		generic plan made while they were small would keep scanning them
 *		sequentially.  Used only off the hot path.
 */
SPIPlanPtr
UserlifePrepareCustomPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		keep_plan(cache, plan);
	}
	return *cache;
}

/*
 * UserlifeRun
 *		Runs a statement prepared once per backend (see UserlifePreparePlan)
 *		and raises an internal error unless it ends with the expected SPI
 *		result code.
 */
void
UserlifeRun(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes, Datum *values,
			const char *nulls, bool read_only, long count, int expected)
{
	int			rc = SPI_execute_plan(UserlifePreparePlan(cache, sql, nargs, argtypes),
									  values, nulls, read_only, count);

	if (rc != expected)
		elog(ERROR, "statement failed (%s): %s", SPI_result_code_string(rc), sql);
}

/*
 * UserlifeStoreCompositeRows
 *		Puts column 1 of every row of the last SPI result, a composite of
 *		the function's result type, into the set-returning function's
 *		tuplestore (set up by InitMaterializedSRF).
 */
void
UserlifeStoreCompositeRows(ReturnSetInfo *rsinfo)
{
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTupleHeader td = DatumGetHeapTupleHeader(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, 1, &isnull));
		HeapTupleData tuple;

		tuple.t_len = HeapTupleHeaderGetDatumLength(td);
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = td;
		tuplestore_puttuple(rsinfo->setResult, &tuple);
	}
}

/*
 * UserlifeSpiConnect
 *		Connects to SPI with pg_catalog as the only schema on the search
 *		path, so that no object a caller put on its search_path can stand in
 *		for a built-in operator or function in our statements.
 */
void
UserlifeSpiConnect(void)
{
	OverrideSearchPath path = {0};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	path.schemas = NIL;
	path.addCatalog = true;
	path.addTemp = false;
	PushOverrideSearchPath(&path);
}

void
UserlifeSpiFinish(void)
{
	PopOverrideSearchPath();
	SPI_finish();
}
