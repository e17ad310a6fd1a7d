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
 * external_id), as list_users matches it (listing.c).  The triggers are
 * enabled ALWAYS: a restore (which runs in replica mode) rebuilds the
 * table from the restored users, so it is not dumped, and a purge or
 * erasure run in replica mode still removes the personal data it holds.
 * The update trigger's WHEN clause compares the final row, BEFORE
 * triggers included, so a status change does not even queue an event.
 *
 * The writes run as the owner of users, the only role with rights on
 * user_search, whoever changed the row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "utils/uuid.h"

#include "userlife.h"

PG_FUNCTION_INFO_V1(userlife_users_search_sync);

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

/*
 * row_arguments
 *		The statement arguments $1..$5 (user_id, partner, display_name,
 *		email, external_id) from a users row.
 */
static void
row_arguments(HeapTuple tuple, TupleDesc desc, Datum *values, char *nulls)
{
	int			i;

	for (i = 0; i < SEARCH_NCOLUMNS; i++)
	{
		int			attnum = SPI_fnumber(desc, search_column_names[i]);
		bool		isnull;

		if (attnum <= 0 || SPI_gettypeid(desc, attnum) != search_column_types[i])
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("userlife.users has no column \"%s\" of the installed type",
							search_column_names[i])));
		values[i] = SPI_getbinval(tuple, desc, attnum, &isnull);
		nulls[i] = isnull ? 'n' : ' ';
	}
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
 * users_search_sync: AFTER trigger on userlife.users.  For each row on
 * INSERT (writes the document), UPDATE of what the document is built from
 * (rewrites it) and DELETE (removes it); for each statement on TRUNCATE
 * (empties the table).
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
	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(trigdata->tg_relation->rd_rel->relowner,
						   saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	UserlifeSpiConnect();
	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		drop_all_documents();
	else if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		write_document(trigdata->tg_trigtuple, desc, false);
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		bool		old_null;
		bool		new_null;
		Datum		old_id = heap_getattr(trigdata->tg_trigtuple, SPI_fnumber(desc, "user_id"), desc, &old_null);
		Datum		new_id = heap_getattr(trigdata->tg_newtuple, SPI_fnumber(desc, "user_id"), desc, &new_null);

		/* a user_id changed by hand takes its document along */
		if (!old_null && (new_null || !datumIsEqual(old_id, new_id, false, UUID_LEN)))
			drop_document(trigdata->tg_trigtuple, desc);
		write_document(trigdata->tg_newtuple, desc, true);
	}
	else
		drop_document(trigdata->tg_trigtuple, desc);
	UserlifeSpiFinish();
	SetUserIdAndSecContext(saved_user, saved_sec);
	return PointerGetDatum(NULL);
}
