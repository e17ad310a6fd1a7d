/*-------------------------------------------------------------------------
 *
 * listing.c
 *		list_users, count_users and users_page: a partner's users, filtered
 *		and paginated.
 *
 * The WHERE clause is assembled from the filters actually given, so that
 * each filter reaches the planner as a plain indexable condition (status:
 * users_partner_status_created_idx; search: the trigram index
 * user_search_document_idx of the search documents (search.c), joined on
 * user_id; tag: users_tags_idx; created_after/before and keyset
 * pagination: the (partner, created_at, user_id) indexes).  Statements are
 * planned per call with the values known (the plan depends on the search
 * text's selectivity); none of this is on a write path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "userlife.h"
#include "access.h"
#include "catalog.h"
#include "lifecycle.h"
#include "search.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_list_users);
PG_FUNCTION_INFO_V1(userlife_count_users);
PG_FUNCTION_INFO_V1(userlife_users_page);

/*
 * the users whose search document (search.c) matches the pattern $3; in a
 * database not yet updated to 0.2.0, the same expression over the columns
 */
#define SEARCH_CONDITION_BEFORE_0_2 \
	"pg_catalog.lower(coalesce(u.display_name, '') OPERATOR(pg_catalog.||) E'\\x1f'" \
	" OPERATOR(pg_catalog.||) coalesce(u.email, '') OPERATOR(pg_catalog.||) E'\\x1f'" \
	" OPERATOR(pg_catalog.||) u.external_id) LIKE pg_catalog.lower($3)"
#define SEARCH_CONDITION \
	"u.user_id IN (SELECT s.user_id FROM userlife.user_search s" \
	" WHERE s.partner = $1 AND s.document LIKE pg_catalog.lower($3))"

#define MAX_PAGE_SIZE 1000

/* parameter numbers of the assembled statements */
enum
{
	P_PARTNER = 0,
	P_STATUS,
	P_SEARCH,
	P_CREATED_AFTER,
	P_CREATED_BEFORE,
	P_TAG,
	P_AFTER_USER,
	P_LIMIT,
	P_OFFSET,
	P_AFTER_CREATED,
	NUM_PARAMS
};

typedef struct UserFilter
{
	Datum		values[NUM_PARAMS];
	char		nulls[NUM_PARAMS];
	StringInfoData where;
} UserFilter;

static const Oid param_types[NUM_PARAMS] = {
	TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, UUIDOID, INT4OID, INT4OID,
	TIMESTAMPTZOID
};

/* like_pattern: search text as a LIKE pattern matching it literally anywhere */
static char *
like_pattern(const char *search)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '%');
	for (p = search; *p; p++)
	{
		if (*p == '%' || *p == '_' || *p == '\\')
			appendStringInfoChar(&buf, '\\');
		appendStringInfoChar(&buf, *p);
	}
	appendStringInfoChar(&buf, '%');
	return buf.data;
}

/*
 * build_filter
 *		Fills the statement parameters and WHERE clause from the arguments
 *		partner, status, search, created_after, created_before, tag found at
 *		the given argument numbers (-1: not an argument of this function).
 */
static void
build_filter(FunctionCallInfo fcinfo, UserFilter *f, const char *partner,
			 int status_arg, int search_arg, int after_arg, int before_arg, int tag_arg)
{
	memset(f->nulls, 'n', sizeof(f->nulls));
	initStringInfo(&f->where);
	appendStringInfoString(&f->where, "u.partner = $1");
	f->values[P_PARTNER] = CStringGetTextDatum(partner);
	f->nulls[P_PARTNER] = ' ';

	if (status_arg >= 0 && !PG_ARGISNULL(status_arg))
	{
		f->values[P_STATUS] = CStringGetTextDatum(
												  UserStatusNames[UserlifeStatusFromDatum(PG_GETARG_DATUM(status_arg))]);
		f->nulls[P_STATUS] = ' ';
		appendStringInfoString(&f->where, " AND u.status = $2::userlife.user_status");
	}
	if (search_arg >= 0 && !PG_ARGISNULL(search_arg))
	{
		char	   *search = text_to_cstring(PG_GETARG_TEXT_PP(search_arg));

		if (search[0] != '\0')
		{
			f->values[P_SEARCH] = CStringGetTextDatum(like_pattern(search));
			f->nulls[P_SEARCH] = ' ';
			appendStringInfoString(&f->where, SearchDocumentsInstalled() ?
								   " AND " SEARCH_CONDITION : " AND " SEARCH_CONDITION_BEFORE_0_2);
		}
	}
	if (after_arg >= 0 && !PG_ARGISNULL(after_arg))
	{
		f->values[P_CREATED_AFTER] = PG_GETARG_DATUM(after_arg);
		f->nulls[P_CREATED_AFTER] = ' ';
		appendStringInfoString(&f->where, " AND u.created_at > $4");
	}
	if (before_arg >= 0 && !PG_ARGISNULL(before_arg))
	{
		f->values[P_CREATED_BEFORE] = PG_GETARG_DATUM(before_arg);
		f->nulls[P_CREATED_BEFORE] = ' ';
		appendStringInfoString(&f->where, " AND u.created_at < $5");
	}
	if (tag_arg >= 0 && !PG_ARGISNULL(tag_arg))
	{
		f->values[P_TAG] = PG_GETARG_DATUM(tag_arg);
		f->nulls[P_TAG] = ' ';
		appendStringInfoString(&f->where, " AND u.tags OPERATOR(pg_catalog.@>) ARRAY[$6]");
	}
}

static int32
page_size_arg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	int32		size = PG_ARGISNULL(argno) ? 20 : PG_GETARG_INT32(argno);

	if (size < 1 || size > MAX_PAGE_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between 1 and %d", argname, MAX_PAGE_SIZE)));
	return size;
}

static int32
offset_arg(FunctionCallInfo fcinfo, int argno)
{
	int32		offset = PG_ARGISNULL(argno) ? 0 : PG_GETARG_INT32(argno);

	if (offset < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_offset must not be negative")));
	return offset;
}

static int64
count_matching(UserFilter *f)
{
	StringInfoData sql;
	bool		isnull;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT pg_catalog.count(*) FROM userlife.users u WHERE %s", f->where.data);
	if (SPI_execute_with_args(sql.data, NUM_PARAMS, (Oid *) param_types, f->values, f->nulls,
							  true, 0) != SPI_OK_SELECT)
		elog(ERROR, "count failed");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * select_page
 *		Runs the page query of list_users and users_page: the select list
 *		over the users that match the filter, in registration order, $8 of
 *		them from $9 on.
 */
static void
select_page(UserFilter *f, const char *select_list, const char *what)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s FROM userlife.users u WHERE %s "
					 "ORDER BY u.created_at, u.user_id LIMIT $8 OFFSET $9",
					 select_list, f->where.data);
	if (SPI_execute_with_args(sql.data, NUM_PARAMS, (Oid *) param_types, f->values, f->nulls,
							  true, 0) != SPI_OK_SELECT)
		elog(ERROR, "%s query failed", what);
}

/*
 * list_users(partner, status, search, created_after, created_before, tag,
 * page_size, after_user, page_offset): ordered by (created_at, user_id).
 */
Datum
userlife_list_users(PG_FUNCTION_ARGS)
{
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AccessScope scope;
	UserFilter	f;
	int32		page_size;

	UserlifeCheckPartnerId(partner);
	page_size = page_size_arg(fcinfo, 6, "page_size");
	if (!PG_ARGISNULL(7) && !PG_ARGISNULL(8))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after_user and page_offset cannot be used together"),
				 errhint("Use after_user for keyset pagination or page_offset for offset pagination.")));
	(void) offset_arg(fcinfo, 8);
	InitMaterializedSRF(fcinfo, 0);

	AccessEnter(&scope, ACCESS_READER, partner);
	LifecycleRequirePartner(partner);
	build_filter(fcinfo, &f, partner, 1, 2, 3, 4, 5);
	f.values[P_LIMIT] = Int32GetDatum(page_size);
	f.nulls[P_LIMIT] = ' ';
	if (!PG_ARGISNULL(7))
	{
		/* the cursor's position, read once, is a constant of the page's query */
		static SPIPlanPtr after_plan = NULL;
		Oid			argtypes[2] = {UUIDOID, TEXTOID};
		Datum		values[2];
		bool		isnull;

		values[0] = PG_GETARG_DATUM(7);
		values[1] = f.values[P_PARTNER];
		UserlifeRun(&after_plan,
					"SELECT u.created_at FROM userlife.users u WHERE u.user_id = $1 AND u.partner = $2",
					2, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("after_user \"%s\" is not a user of partner \"%s\"",
							DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(7))),
							partner)));
		f.values[P_AFTER_CREATED] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		f.nulls[P_AFTER_CREATED] = ' ';
		f.values[P_AFTER_USER] = PG_GETARG_DATUM(7);
		f.nulls[P_AFTER_USER] = ' ';
		appendStringInfoString(&f.where, " AND (u.created_at, u.user_id) > ($10, $7)");
	}
	f.values[P_OFFSET] = Int32GetDatum(offset_arg(fcinfo, 8));
	f.nulls[P_OFFSET] = ' ';

	select_page(&f, "u", "list_users");
	return AccessLeaveWithRows(&scope, rsinfo);
}

/* count_users(partner, status, search, created_after, created_before, tag) */
Datum
userlife_count_users(PG_FUNCTION_ARGS)
{
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	AccessScope scope;
	UserFilter	f;
	int64		count;

	AccessEnterPartner(&scope, ACCESS_READER, partner);
	LifecycleRequirePartner(partner);
	build_filter(fcinfo, &f, partner, 1, 2, 3, 4, 5);
	count = count_matching(&f);
	AccessLeave(&scope);
	PG_RETURN_INT64(count);
}

static char *
timestamp_json(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : JsonEncodeDateTime(NULL, d, TIMESTAMPTZOID, NULL);
}

/*
 * users_page(partner, page_limit, page_offset, status, search): one page
 * as {"users": [...], "pagination": {"limit", "offset", "total", "hasMore"}}.
 */
Datum
userlife_users_page(PG_FUNCTION_ARGS)
{
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	AccessScope scope;
	UserFilter	f;
	int32		limit;
	int32		offset;
	int64		total;
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res;
	Jsonb	   *result;
	uint64		i;
	uint64		rows;

	UserlifeCheckPartnerId(partner);
	limit = page_size_arg(fcinfo, 1, "page_limit");
	offset = offset_arg(fcinfo, 2);

	AccessEnter(&scope, ACCESS_READER, partner);
	LifecycleRequirePartner(partner);
	build_filter(fcinfo, &f, partner, 3, 4, -1, -1, -1);
	total = count_matching(&f);
	f.values[P_LIMIT] = Int32GetDatum(limit);
	f.nulls[P_LIMIT] = ' ';
	f.values[P_OFFSET] = Int32GetDatum(offset);
	f.nulls[P_OFFSET] = ' ';
	select_page(&f, "u.user_id::pg_catalog.text, u.external_id, u.display_name, u.email,"
				" u.status::pg_catalog.text, u.created_at, u.updated_at", "users_page");
	rows = SPI_processed;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	UserlifePushKey(&state, "users");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < rows; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		UserlifePushKeyString(&state, "userId", SPI_getvalue(tup, desc, 1));
		UserlifePushKeyString(&state, "externalId", SPI_getvalue(tup, desc, 2));
		UserlifePushKeyString(&state, "name", SPI_getvalue(tup, desc, 3));
		UserlifePushKeyString(&state, "email", SPI_getvalue(tup, desc, 4));
		UserlifePushKeyString(&state, "status", SPI_getvalue(tup, desc, 5));
		UserlifePushKeyString(&state, "registeredAt", timestamp_json(tup, desc, 6));
		UserlifePushKeyString(&state, "updatedAt", timestamp_json(tup, desc, 7));
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	UserlifePushKey(&state, "pagination");
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	UserlifePushKeyInt8(&state, "limit", limit);
	UserlifePushKeyInt8(&state, "offset", offset);
	UserlifePushKeyInt8(&state, "total", total);
	v.type = jbvBool;
	v.val.boolean = ((int64) offset + (int64) rows) < total;
	UserlifePushKeyValue(&state, "hasMore", &v);
	pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	result = UserlifeJsonbOutOfSpi(JsonbValueToJsonb(res));
	AccessLeave(&scope);
	PG_RETURN_JSONB_P(result);
}
