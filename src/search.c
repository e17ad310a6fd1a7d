/*-------------------------------------------------------------------------
 *
 * search.c
 *		The search document of each user, kept in userlife.user_search by
 *		the users_search_* triggers.
 *
 * Why a table of its own: a status change can never be a HOT update
 * (status is an index key and in index predicates), so every index of
 * users takes a new entry on every status change.  The trigram index
 * costs by far the most of those entries, and more the larger the table
 * grows; beside the users heap it is written only when what it indexes
 * changes: registration, a changed name, e-mail or external_id, and the
 * row's removal.
 *
 * The document is lower(display_name || E'\x1f' || email || E'\x1f' ||
 * external_id), as list_users matches it (listing.c).  Normally the users
 * triggers of audit.c keep it: the registration trigger writes it, the
 * guard rewrites it when the final row (BEFORE triggers included) changes
 * one of its columns, and removes it with the row, so a status change
 * costs nothing here.  Those triggers are off in replica mode; there
 * users_search_replica (enabled REPLICA) does the same, so a restore
 * rebuilds the table from the restored users (it is not dumped) and a
 * purge or erasure run in replica mode still removes the personal data it
 * holds.  TRUNCATE empties it in every mode (users_search_truncate,
 * enabled ALWAYS).
 *
 * The writes run as the owner of users, the only role with rights on
 * user_search, whoever changed the row.  A database still at version 0.1.0
 * (library installed, ALTER EXTENSION UPDATE not yet run) has no
 * user_search: its users are written without documents, and list_users
 * matches their columns directly.
 *
 * rebuild_search repairs the table from users: under a SHARE lock on users
 * (writers wait, readers go on) it removes documents without a user and
 * writes every missing or stale one.  The lock is what makes the result
 * whole: a registration committed while it runs could otherwise miss both
 * the rebuild's snapshot and, written before the rebuild's upsert, be
 * overwritten by an older version of the row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "userlife.h"
#include "access.h"
#include "append.h"
#include "catalog.h"
#include "search.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_users_search_sync);
PG_FUNCTION_INFO_V1(userlife_rebuild_search);

/* column of users the document is built from */
typedef enum SearchColumn
{
	SEARCH_USER_ID,
	SEARCH_PARTNER,
	SEARCH_DISPLAY_NAME,
	SEARCH_EMAIL,
	SEARCH_EXTERNAL_ID,
	SEARCH_NCOLUMNS
} SearchColumn;

static const char *const search_column_names[SEARCH_NCOLUMNS] = {
	"user_id", "partner", "display_name", "email", "external_id"
};

static const Oid search_column_types[SEARCH_NCOLUMNS] = {
	UUIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID
};

#define DOCUMENT_EXPRESSION \
	"pg_catalog.lower(coalesce($3, '') OPERATOR(pg_catalog.||) E'\\x1f'" \
	" OPERATOR(pg_catalog.||) coalesce($4, '') OPERATOR(pg_catalog.||) E'\\x1f'" \
	" OPERATOR(pg_catalog.||) $5)"

/* OID of userlife.user_search, cached until a relcache invalidation */
static Oid	search_relid = InvalidOid;

/* attribute numbers in users of the columns above, for users_attnums_relid */
static AttrNumber users_attnums[SEARCH_NCOLUMNS];
static Oid	users_attnums_relid = InvalidOid;

void
SearchInit(void)
{
	CatalogForgetOnChange(&search_relid);
	CatalogForgetOnChange(&users_attnums_relid);
}

/* SearchDocumentsInstalled: whether userlife.user_search exists (0.2.0 on) */
bool
SearchDocumentsInstalled(void)
{
	if (!OidIsValid(search_relid))
		search_relid = get_relname_relid("user_search", get_rel_namespace(UserlifeUsersRelid()));
	return OidIsValid(search_relid);
}

/*
 * row_arguments
 *		The statement arguments $1..$5 (user_id, partner, display_name,
 *		email, external_id) from a users row.
 */
static void
row_arguments(HeapTuple tuple, TupleDesc desc, Datum *values, char *nulls)
{
	Oid			users = UserlifeUsersRelid();
	int			i;

	if (users_attnums_relid != users)
	{
		for (i = 0; i < SEARCH_NCOLUMNS; i++)
		{
			int			attnum = SPI_fnumber(desc, search_column_names[i]);

			if (attnum <= 0 || SPI_gettypeid(desc, attnum) != search_column_types[i])
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("userlife.users has no column \"%s\" of the installed type",
								search_column_names[i])));
			users_attnums[i] = attnum;
		}
		users_attnums_relid = users;
	}
	for (i = 0; i < SEARCH_NCOLUMNS; i++)
	{
		bool		isnull;

		values[i] = heap_getattr(tuple, users_attnums[i], desc, &isnull);
		nulls[i] = isnull ? 'n' : ' ';
	}
}

/* search_enter / search_leave: SPI as the owner of users, around a write */
static void
search_enter(Relation users, Oid *saved_user, int *saved_sec)
{
	GetUserIdAndSecContext(saved_user, saved_sec);
	SetUserIdAndSecContext(users->rd_rel->relowner, *saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	UserlifeSpiConnect();
}

static void
search_leave(Oid saved_user, int saved_sec)
{
	UserlifeSpiFinish();
	SetUserIdAndSecContext(saved_user, saved_sec);
}

static void
write_document(HeapTuple tuple, TupleDesc desc, bool replace)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr upsert_plan = NULL;
	Oid			argtypes[SEARCH_NCOLUMNS];
	Datum		values[SEARCH_NCOLUMNS];
	char		nulls[SEARCH_NCOLUMNS];

	memcpy(argtypes, search_column_types, sizeof(argtypes));
	row_arguments(tuple, desc, values, nulls);
	if (nulls[SEARCH_USER_ID] == 'n' || nulls[SEARCH_PARTNER] == 'n' || nulls[SEARCH_EXTERNAL_ID] == 'n')
		return;					/* a NOT NULL constraint refuses the row anyway */
	if (replace)
		UserlifeRun(&upsert_plan,
					"INSERT INTO userlife.user_search AS s (user_id, partner, document)"
					" VALUES ($1, $2, " DOCUMENT_EXPRESSION ")"
					" ON CONFLICT (user_id) DO UPDATE SET partner = excluded.partner,"
					" document = excluded.document",
					SEARCH_NCOLUMNS, argtypes, values, nulls, false, 0, SPI_OK_INSERT);
	else
		UserlifeRun(&insert_plan,
					"INSERT INTO userlife.user_search (user_id, partner, document)"
					" VALUES ($1, $2, " DOCUMENT_EXPRESSION ")",
					SEARCH_NCOLUMNS, argtypes, values, nulls, false, 0, SPI_OK_INSERT);
}

static void
drop_document(HeapTuple tuple, TupleDesc desc)
{
	static SPIPlanPtr delete_plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[SEARCH_NCOLUMNS];
	char		nulls[SEARCH_NCOLUMNS];

	row_arguments(tuple, desc, values, nulls);
	if (nulls[SEARCH_USER_ID] == 'n')
		return;
	UserlifeRun(&delete_plan, "DELETE FROM userlife.user_search s WHERE s.user_id = $1",
				1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
}

static void
drop_all_documents(void)
{
	if (SPI_execute("TRUNCATE userlife.user_search", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not empty userlife.user_search");
}

/*
 * SearchDocumentChanged
 *		Whether the update from oldtup to newtup changes the document or
 *		the user it belongs to.
 */
bool
SearchDocumentChanged(TupleDesc desc, HeapTuple oldtup, HeapTuple newtup)
{
	Datum		old_values[SEARCH_NCOLUMNS];
	char		old_nulls[SEARCH_NCOLUMNS];
	Datum		new_values[SEARCH_NCOLUMNS];
	char		new_nulls[SEARCH_NCOLUMNS];
	int			i;

	if (!SearchDocumentsInstalled())
		return false;
	row_arguments(oldtup, desc, old_values, old_nulls);
	row_arguments(newtup, desc, new_values, new_nulls);
	for (i = 0; i < SEARCH_NCOLUMNS; i++)
	{
		if (old_nulls[i] != new_nulls[i])
			return true;
		if (old_nulls[i] == ' ' &&
			!datumIsEqual(old_values[i], new_values[i], false,
						  i == SEARCH_USER_ID ? UUID_LEN : -1))
			return true;
	}
	return false;
}

/* document_of: the document built from row arguments, as DOCUMENT_EXPRESSION does */
static Datum
document_of(const Datum *values, const char *nulls)
{
	StringInfoData buf;
	text	   *t;

	initStringInfo(&buf);
	if (nulls[SEARCH_DISPLAY_NAME] == ' ')
		appendStringInfoString(&buf, TextDatumGetCString(values[SEARCH_DISPLAY_NAME]));
	appendStringInfoChar(&buf, '\x1f');
	if (nulls[SEARCH_EMAIL] == ' ')
		appendStringInfoString(&buf, TextDatumGetCString(values[SEARCH_EMAIL]));
	appendStringInfoChar(&buf, '\x1f');
	appendStringInfoString(&buf, TextDatumGetCString(values[SEARCH_EXTERNAL_ID]));
	t = cstring_to_text_with_len(buf.data, buf.len);
	pfree(buf.data);
	return DirectFunctionCall1Coll(lower, DEFAULT_COLLATION_OID, PointerGetDatum(t));
}

/*
 * SearchWriteDocument
 *		Writes the document of a new (replace false) or changed users row.
 *		A new one goes straight into the table (append.c) while it is as
 *		installed, else through the INSERT statement.
 */
void
SearchWriteDocument(Relation users, HeapTuple tuple, bool replace)
{
	Oid			saved_user;
	int			saved_sec;

	if (!SearchDocumentsInstalled())
		return;
	if (!replace)
	{
		Datum		values[SEARCH_NCOLUMNS];
		char		nulls[SEARCH_NCOLUMNS];

		row_arguments(tuple, RelationGetDescr(users), values, nulls);
		if (nulls[SEARCH_USER_ID] == 'n' || nulls[SEARCH_PARTNER] == 'n' || nulls[SEARCH_EXTERNAL_ID] == 'n')
			return;
		if (AppendSearchDocument(values[SEARCH_USER_ID], values[SEARCH_PARTNER], document_of(values, nulls)))
			return;
	}
	search_enter(users, &saved_user, &saved_sec);
	write_document(tuple, RelationGetDescr(users), replace);
	search_leave(saved_user, saved_sec);
}

/* SearchDropDocument: removes the document of a deleted users row */
void
SearchDropDocument(Relation users, HeapTuple tuple)
{
	Oid			saved_user;
	int			saved_sec;

	if (!SearchDocumentsInstalled())
		return;
	search_enter(users, &saved_user, &saved_sec);
	drop_document(tuple, RelationGetDescr(users));
	search_leave(saved_user, saved_sec);
}

/*
 * users_search_sync: the trigger function of users_search_replica (AFTER
 * INSERT, UPDATE or DELETE, for each row, in replica mode) and of
 * users_search_truncate (AFTER TRUNCATE, for each statement).
 */
Datum
userlife_users_search_sync(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	Oid			saved_user;
	int			saved_sec;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.users_search_sync can only be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.users_search_sync must be fired after the change")));
	if (RelationGetRelid(trigdata->tg_relation) != UserlifeUsersRelid())
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.users_search_sync must be fired on userlife.users")));
	if (!TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event) && !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.users_search_sync must be fired for each row, or for TRUNCATE")));

	desc = RelationGetDescr(trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) &&
		!SearchDocumentChanged(desc, trigdata->tg_trigtuple, trigdata->tg_newtuple))
		return PointerGetDatum(NULL);

	search_enter(trigdata->tg_relation, &saved_user, &saved_sec);
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		drop_all_documents();
	else if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		write_document(trigdata->tg_trigtuple, desc, true);
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		Datum		old_values[SEARCH_NCOLUMNS];
		char		old_nulls[SEARCH_NCOLUMNS];
		Datum		new_values[SEARCH_NCOLUMNS];
		char		new_nulls[SEARCH_NCOLUMNS];

		/* a user_id changed by hand takes its document along */
		row_arguments(trigdata->tg_trigtuple, desc, old_values, old_nulls);
		row_arguments(trigdata->tg_newtuple, desc, new_values, new_nulls);
		if (old_nulls[SEARCH_USER_ID] != 'n' &&
			(new_nulls[SEARCH_USER_ID] == 'n' ||
			 !datumIsEqual(old_values[SEARCH_USER_ID], new_values[SEARCH_USER_ID], false, UUID_LEN)))
			drop_document(trigdata->tg_trigtuple, desc);
		write_document(trigdata->tg_newtuple, desc, true);
	}
	else
		drop_document(trigdata->tg_trigtuple, desc);
	search_leave(saved_user, saved_sec);
	return PointerGetDatum(NULL);
}

/*
 * rebuild_search(): the owner's repair of the search documents; returns
 * the number of users, each of whom now has the document of its row.
 * Documents already right are left alone, so that a repair of a sound
 * table writes nothing (no dead tuples, no index entries).
 */
Datum
userlife_rebuild_search(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr orphans_plan = NULL;
	static SPIPlanPtr upsert_plan = NULL;
	static SPIPlanPtr count_plan = NULL;
	AccessScope scope;
	bool		isnull;
	int64		users;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	if (!SearchDocumentsInstalled())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("userlife.user_search does not exist"),
				 errdetail("The search documents were added in version 0.2.0."),
				 errhint("Run ALTER EXTENSION userlife UPDATE.")));
	UserlifeRun(&lock_plan, "LOCK TABLE userlife.users IN SHARE MODE",
				0, NULL, NULL, NULL, false, 0, SPI_OK_UTILITY);
	UserlifeRun(&orphans_plan,
				"DELETE FROM userlife.user_search s WHERE NOT EXISTS"
				" (SELECT 1 FROM userlife.users u WHERE u.user_id OPERATOR(pg_catalog.=) s.user_id)",
				0, NULL, NULL, NULL, false, 0, SPI_OK_DELETE);
	UserlifeRun(&upsert_plan,
				"INSERT INTO userlife.user_search AS s (user_id, partner, document)"
				" SELECT u.user_id, u.partner,"
				" pg_catalog.lower(coalesce(u.display_name, '') OPERATOR(pg_catalog.||) E'\\x1f'"
				" OPERATOR(pg_catalog.||) coalesce(u.email, '') OPERATOR(pg_catalog.||) E'\\x1f'"
				" OPERATOR(pg_catalog.||) u.external_id)"
				" FROM userlife.users u"
				" ON CONFLICT (user_id) DO UPDATE SET partner = excluded.partner, document = excluded.document"
				" WHERE s.partner OPERATOR(pg_catalog.<>) excluded.partner"
				" OR s.document OPERATOR(pg_catalog.<>) excluded.document",
				0, NULL, NULL, NULL, false, 0, SPI_OK_INSERT);
	UserlifeRun(&count_plan, "SELECT pg_catalog.count(*) FROM userlife.users u",
				0, NULL, NULL, NULL, true, 1, SPI_OK_SELECT);
	users = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	AccessLeave(&scope);
	PG_RETURN_INT64(users);
}
