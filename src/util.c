/*-------------------------------------------------------------------------
 *
 * util.c
 *		What every SQL-callable function shares: argument checks, the SPI
 *		connection with a fixed search path, kept plans, and small helpers
 *		for JSON and jsonb results.
 *
 * Kept plans: every plan prepared through UserlifePreparePlan is recorded
 * with the address of the static that holds it.  When the schema userlife
 * goes or comes (DROP EXTENSION, CREATE EXTENSION, pg_restore --clean),
 * catalog.c calls UtilRetirePlans and the statics are cleared, so that the
 * next call prepares its statement again: the plan cache would re-analyse
 * a statement whose tables were dropped, but not one whose parameter types
 * were (a rule merge binds userlife.user_status by OID).  A cleared plan
 * may still be running in an outer call, so it is only freed at the end of
 * the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/numeric.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "userlife.h"
#include "catalog.h"
#include "util.h"

/* the statics holding kept plans, and the plans cleared but maybe in use */
static List *plan_slots = NIL;
static List *retired_plans = NIL;

/* userlife.reason: the reason recorded when a function is given none */
static char *userlife_reason = NULL;

static void free_retired_plans(XactEvent event, void *arg);

void
UtilInit(void)
{
	DefineCustomStringVariable("userlife.reason",
							   "Default reason when a function's reason argument is NULL.",
							   NULL,
							   &userlife_reason, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
	RegisterXactCallback(free_retired_plans, NULL);
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

/*
 * UtilRetirePlans
 *		Clears every kept plan's static; the plans themselves are freed at
 *		the end of the transaction.  Called from an invalidation callback:
 *		it only moves pointers.
 */
void
UtilRetirePlans(void)
{
	ListCell   *lc;

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
 * of ours runs any more, so the plans retired by UtilRetirePlans can go.
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

/*
 * keep_plan
 *		Keeps a freshly prepared plan in *cache and records the static, so
 *		that UtilRetirePlans can clear it.
 */
static void
keep_plan(SPIPlanPtr *cache, SPIPlanPtr plan)
{
	MemoryContext old;

	(void) CatalogRememberSchema();	/* so that catalog.c knows its hash */
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

/* UserlifeRequireArg: raises 22004 when a required argument is NULL */
void
UserlifeRequireArg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("argument \"%s\" must not be null", argname)));
}

/*
 * UserlifeCheckBatchSize: 22023 when a batch function is given more than
 * max items (n), naming the argument's items and the function
 */
void
UserlifeCheckBatchSize(int n, int max, const char *items, const char *function)
{
	if (n > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("too many %s for %s", items, function),
				 errdetail("A batch has at most %d %s; %d were given.", max, items, n),
				 errhint("Split the %s into several calls.", items)));
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
 * prepare_plan
 *		Prepares a statement once per backend, with the given cursor options,
 *		and keeps it in *cache.
 */
static SPIPlanPtr
prepare_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes, int options)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		keep_plan(cache, plan);
	}
	return *cache;
}

/*
 * UserlifePreparePlan
 *		Prepares a statement once per backend and keeps it.  Must be called
 *		between UserlifeSpiConnect and UserlifeSpiFinish.
 */
SPIPlanPtr
UserlifePreparePlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	return prepare_plan(cache, sql, nargs, argtypes, 0);
}

/* run_plan: runs plan (of sql); an internal error unless it ends with expected */
static void
run_plan(SPIPlanPtr plan, const char *sql, Datum *values, const char *nulls, bool read_only,
		 long count, int expected)
{
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, count);

	if (rc != expected)
		elog(ERROR, "statement failed (%s): %s", SPI_result_code_string(rc), sql);
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
	run_plan(UserlifePreparePlan(cache, sql, nargs, argtypes), sql, values, nulls, read_only,
			 count, expected);
}

/*
 * UserlifeRunForUser
 *		UserlifeRun for a statement about one user, whose parameters are its
 *		partner ($1) and external_id ($2), as text.
 */
void
UserlifeRunForUser(SPIPlanPtr *cache, const char *sql, const char *partner,
				   const char *external_id, bool read_only, long count, int expected)
{
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(external_id);
	UserlifeRun(cache, sql, 2, argtypes, values, NULL, read_only, count, expected);
}

/*
 * UserlifeRunCustom
 *		Like UserlifeRun, but the statement, prepared once, is planned at
 *		every execution with its parameter values and the table's current
 *		size.  For lookups by user_id in tables that start empty and grow
 *		(audit, events): a generic plan made while they were small would
 *		keep scanning them sequentially.  Used only off the hot path.
 */
void
UserlifeRunCustom(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes, Datum *values,
				  const char *nulls, bool read_only, long count, int expected)
{
	run_plan(prepare_plan(cache, sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN), sql, values,
			 nulls, read_only, count, expected);
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

/*
 * UserlifePushKey
 *		Pushes an object key onto a jsonb being built; the key is not
 *		copied, and must live until the jsonb is made.
 */
void
UserlifePushKey(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
}

/* UserlifePushKeyValue: a key and its value */
void
UserlifePushKeyValue(JsonbParseState **state, const char *key, JsonbValue *v)
{
	UserlifePushKey(state, key);
	pushJsonbValue(state, WJB_VALUE, v);
}

/* UserlifePushKeyString: a key and a string value, or null when value is NULL */
void
UserlifePushKeyString(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	v;

	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	UserlifePushKeyValue(state, key, &v);
}

/* UserlifePushKeyInt8: a key and an integer value */
void
UserlifePushKeyInt8(JsonbParseState **state, const char *key, int64 value)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(value);
	UserlifePushKeyValue(state, key, &v);
}

/*
 * UserlifeJsonbOutOfSpi
 *		A copy of a jsonb built in SPI memory, in the memory of the
 *		function's caller, which outlives UserlifeSpiFinish.
 */
Jsonb *
UserlifeJsonbOutOfSpi(Jsonb *built)
{
	Jsonb	   *result = (Jsonb *) SPI_palloc(VARSIZE(built));

	memcpy(result, built, VARSIZE(built));
	return result;
}

/*
 * UserlifeMsgValue
 *		A value the caller passed, as a message shows it: whole, or its
 *		first USERLIFE_MSG_VALUE_CHARS characters and "...", so that a 10 kB
 *		argument cannot make a 10 kB message or log line.  Cut on a
 *		character boundary; the value is already valid text.
 */
const char *
UserlifeMsgValue(const char *value)
{
	int			len;
	int			cut;

	if (value == NULL)
		return "";
	len = strlen(value);
	cut = pg_mbcharcliplen(value, len, USERLIFE_MSG_VALUE_CHARS);
	if (cut >= len)
		return value;
	return psprintf("%.*s...", cut, value);
}

/*
 * UserlifeUserName
 *		'user "u1" of partner "acme"': the one way a message names a user,
 *		both values bounded by UserlifeMsgValue.  Only for users the caller
 *		may see, or with values the caller passed in itself.
 */
char *
UserlifeUserName(const char *partner, const char *external_id)
{
	return psprintf("user \"%s\" of partner \"%s\"",
					UserlifeMsgValue(external_id), UserlifeMsgValue(partner));
}

/*
 * UserlifeParseIntervalQuietly
 *		The interval a text spells, or NULL when it does not parse: the
 *		error is caught, so a GUC check hook, which must not throw, can use it.
 */
Interval *
UserlifeParseIntervalQuietly(const char *text)
{
	Interval   *iv = NULL;
	MemoryContext oldcontext = CurrentMemoryContext;

	PG_TRY();
	{
		iv = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(text),
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
	return iv;
}
