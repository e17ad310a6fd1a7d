/*-------------------------------------------------------------------------
 *
 * import.c
 *		import_users: pre-loading a partner's roster, up to 10,000 users a
 *		call, with one result per item and one bad item never stopping the
 *		others.
 *
 * Flow.  Every item is read and checked in C first (the checks and
 * messages register_user uses, shared from lifecycle.c), then duplicates
 * inside the batch are found by sorting the valid items on external_id and
 * on lower(email): the first occurrence goes on, the later ones get the
 * 23505 register_user would give them.  The valid items are then written
 * in external_id order, in chunks of IMPORT_CHUNK: one multi-row INSERT
 * into userlife.users per chunk, ON CONFLICT DO NOTHING.  The users
 * triggers give each new row exactly what register_user's INSERT gives it
 * (bookkeeping columns, search document, digest key, "register" audit row
 * with its chain, event, notification), and they write those rows straight
 * into the heap and indexes when the tables are as installed (append.c).
 *
 * Against the table, the INSERT's own unique-index arbiters are the
 * duplicate check: a row that meets an existing external_id or e-mail
 * (committed, or committed by a concurrent registration it waited for) is
 * left out, and only those items are looked up, in one query per kind,
 * in the next round: an existing user is then an error, skipped or
 * updated as on_conflict says, a taken e-mail an error.  Tombstones of
 * purged users are probed before and, for races with a purge, after the
 * INSERT.  Writing in external_id order means two imports over the same
 * ids take their index locks in the same order and serialize instead of
 * deadlocking; results still come back in input order.
 *
 * Isolation.  Each chunk runs in a subtransaction.  When it fails (a
 * CHECK a DBA added, an e-mail the C check let through but the constraint
 * refuses), it is rolled back and its halves are tried again, down to
 * single items, so a bad item costs about 2 log2(IMPORT_CHUNK)
 * subtransactions and the good ones are written.  Errors that are not an
 * item's (cancel, read-only standby, serialization failure or deadlock,
 * out of memory, internal errors) abort the call.  The pure checks (no
 * buffer, lock or catalog tuple is held when they raise) are caught
 * without a subtransaction.
 *
 * Memory: the items of the call (at most 10,000 small structs pointing
 * into the input) live in one context; each chunk's statement arguments
 * and results in another, reset after the chunk.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "userlife.h"
#include "access.h"
#include "catalog.h"
#include "lifecycle.h"
#include "util.h"
#include "writectx.h"

PG_FUNCTION_INFO_V1(userlife_import_users);

#define IMPORT_MAX_ITEMS	10000
#define IMPORT_CHUNK		1000
/* rounds of "write, then look up what conflicted"; more only under churn */
#define IMPORT_ROUNDS		3

typedef enum ConflictMode
{
	CONFLICT_ERROR,
	CONFLICT_SKIP,
	CONFLICT_UPDATE
} ConflictMode;

typedef enum ItemState
{
	ITEM_PENDING,				/* valid, not yet written */
	ITEM_CREATED,
	ITEM_UPDATED,
	ITEM_SKIPPED,
	ITEM_ERROR
} ItemState;

static const char *const state_names[] = {
	NULL, "created", "updated", "skipped", "error"
};

typedef enum ItemOp
{
	OP_NONE,
	OP_CREATE,
	OP_UPDATE
} ItemOp;

typedef struct ImportItem
{
	ItemState	state;
	ItemOp		op;
	char	   *external_id;	/* NULL when not a JSON string */
	char	   *display_name;	/* NULL: not given */
	char	   *email;			/* NULL: not given */
	char	   *email_key;		/* lower(email), as the unique index has it */
	Jsonb	   *metadata;		/* NULL: not given */
	ArrayType  *tags;			/* NULL: not given */
	UserStatus	status;
	bool		has_created_at;
	TimestampTz created_at;
	bool		has_user_id;
	pg_uuid_t	user_id;
	bool		exists;			/* round lookups: an existing user ... */
	bool		deleted;		/* ... that is soft-deleted */
	int			sqlerrcode;
	char	   *message;
} ImportItem;

typedef struct ImportBatch
{
	const char *partner;
	ConflictMode mode;
	const char *reason;
	Oid			caller;
	int			nitems;
	ImportItem *items;
	MemoryContext cxt;			/* the items and their results */
	MemoryContext chunk_cxt;	/* one chunk's arguments, reset after it */
} ImportBatch;

typedef void (*ItemCheck) (ImportBatch *b, ImportItem *it, void *arg);

/* the import's item array, for the sort comparators */
static ImportItem *sort_items = NULL;

/*------------------------------------------------------------------------
 * Errors of one item
 *------------------------------------------------------------------------
 */

/* fail_item: the item's result is the error */
static void
fail_item(ImportItem *it, int sqlerrcode, const char *message)
{
	it->state = ITEM_ERROR;
	it->op = OP_NONE;
	it->sqlerrcode = sqlerrcode;
	it->message = pstrdup(message);
}

/*
 * item_failure: whether an error raised while writing items belongs to
 * them.  A cancel, a read-only transaction, a serialization failure or
 * deadlock, lack of resources or an internal error is the call's.
 */
static bool
item_failure(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_TO_CATEGORY(ERRCODE_INVALID_TRANSACTION_STATE):
		case ERRCODE_TO_CATEGORY(ERRCODE_TRANSACTION_ROLLBACK):
		case ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES):
		case ERRCODE_TO_CATEGORY(ERRCODE_PROGRAM_LIMIT_EXCEEDED):
		case ERRCODE_TO_CATEGORY(ERRCODE_OPERATOR_INTERVENTION):
		case ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR):
		case ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR):
			return false;
		default:
			return true;
	}
}

/*
 * check_item
 *		Runs a check of one item that raises the item's error, and records
 *		that error as the item's result.  Only for checks that hold no
 *		buffer pin, lock or catalog tuple when they raise (parsing, the
 *		lifecycle checks, messages): catching their error needs no
 *		subtransaction.  Errors that are not the item's are raised again.
 */
static void
check_item(ImportBatch *b, ImportItem *it, ItemCheck check, void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		check(b, it, arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(b->cxt);
		edata = CopyErrorData();
		if (!item_failure(edata->sqlerrcode))
			PG_RE_THROW();
		FlushErrorState();
		fail_item(it, edata->sqlerrcode, edata->message);
		FreeErrorData(edata);
		MemoryContextSwitchTo(cxt);
	}
	PG_END_TRY();
}

/*------------------------------------------------------------------------
 * Reading an item
 *------------------------------------------------------------------------
 */

/* digits: whether s starts with n ASCII digits */
static bool
digits(const char *s, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * iso_timestamp_with_offset
 *		Whether s is YYYY-MM-DD, "T" or a space, HH:MM[:SS[.ffffff]], then
 *		"Z" or an offset +HH[[:]MM].  Only such a text means the same
 *		instant whatever the session's TimeZone and DateStyle.
 */
static bool
iso_timestamp_with_offset(const char *s)
{
	const char *p = s;
	int			n;

	if (!digits(p, 4) || p[4] != '-' || !digits(p + 5, 2) || p[7] != '-' || !digits(p + 8, 2))
		return false;
	p += 10;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return false;
	p++;
	if (!digits(p, 2) || p[2] != ':' || !digits(p + 3, 2))
		return false;
	p += 5;
	if (*p == ':')
	{
		if (!digits(p + 1, 2))
			return false;
		p += 3;
		if (*p == '.')
		{
			for (n = 0, p++; *p >= '0' && *p <= '9'; p++)
				n++;
			if (n < 1 || n > 6)
				return false;
		}
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return true;
	if ((*p != '+' && *p != '-') || !digits(p + 1, 2))
		return false;
	p += 3;
	if (*p == ':')
		p++;
	if (*p != '\0' && (!digits(p, 2) || p[2] != '\0'))
		return false;
	return true;
}

/* read_created_at: the original registration time of an item; not after now */
static TimestampTz
read_created_at(const char *s)
{
	TimestampTz t;

	if (!iso_timestamp_with_offset(s))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
				 errmsg("invalid created_at \"%s\"", UserlifeMsgValue(s)),
				 errdetail("created_at is an ISO 8601 timestamp with a UTC offset, such as 2024-05-01T12:00:00Z.")));
	t = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
												ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	if (t > GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("created_at \"%s\" is in the future", UserlifeMsgValue(s)),
				 errdetail("created_at is the original registration time, at the latest the time of the import.")));
	return t;
}

static char *
json_string(const JsonbValue *v)
{
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static void
wrong_type(const char *key, const char *type)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be a JSON %s", key, type)));
}

/*
 * read_tags
 *		The tags of an item as text[].  A JSON null element becomes a NULL
 *		element, so that register_user's check refuses it with its message.
 */
static ArrayType *
read_tags(JsonbValue *v)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	e;
	Datum	   *elems;
	bool	   *nulls;
	int			n = 0;
	int			dims[1];
	int			lbs[1] = {1};

	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		wrong_type("tags", "array of strings");
	dims[0] = JsonContainerSize(v->val.binary.data);
	elems = palloc(sizeof(Datum) * (dims[0] + 1));
	nulls = palloc(sizeof(bool) * (dims[0] + 1));
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
	{
		if (tok != WJB_ELEM)
			continue;
		if (e.type != jbvString && e.type != jbvNull)
			wrong_type("tags", "array of strings");
		nulls[n] = (e.type == jbvNull);
		elems[n] = nulls[n] ? (Datum) 0 :
			PointerGetDatum(cstring_to_text_with_len(e.val.string.val, e.val.string.len));
		n++;
	}
	dims[0] = n;
	return construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT);
}

/* read_status: the status of a new user, by its label */
static UserStatus
read_status(const char *label)
{
	UserStatus	status = UserlifeStatusFromDatum(DirectFunctionCall2(enum_in, CStringGetDatum(label),
																	 ObjectIdGetDatum(UserlifeStatusTypeOid())));

	LifecycleCheckNewStatus(status);
	return status;
}

/* read_field: one key of an item; JSON null is the same as the key left out */
static void
read_field(ImportItem *it, const char *key, JsonbValue *v)
{
	if (strcmp(key, "external_id") == 0)
	{
		if (v->type == jbvString)
			it->external_id = json_string(v);
		else if (v->type != jbvNull)
			wrong_type(key, "string");
		return;
	}
	if (v->type == jbvNull)
		return;
	if (strcmp(key, "metadata") == 0)
	{
		it->metadata = JsonbValueToJsonb(v);
		LifecycleCheckMetadata(it->metadata, "metadata");
	}
	else if (strcmp(key, "tags") == 0)
		it->tags = read_tags(v);
	else if (strcmp(key, "display_name") != 0 && strcmp(key, "email") != 0 &&
			 strcmp(key, "status") != 0 && strcmp(key, "created_at") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown key \"%s\" in import item", UserlifeMsgValue(key)),
				 errhint("An item has the keys external_id, display_name, email, metadata, tags, status and created_at.")));
	else if (v->type != jbvString)
		wrong_type(key, "string");
	else if (key[0] == 'd')
		it->display_name = json_string(v);
	else if (key[0] == 'e')
		it->email = json_string(v);
	else if (key[0] == 's')
		it->status = read_status(json_string(v));
	else
	{
		it->created_at = read_created_at(json_string(v));
		it->has_created_at = true;
	}
}

/*
 * read_item: check of one item (arg: its JsonbValue).  Fills the item or
 * raises its error, the one register_user would raise where it has one.
 */
static void
read_item(ImportBatch *b, ImportItem *it, void *arg)
{
	JsonbValue *elem = (JsonbValue *) arg;
	JsonbIterator *iter;
	JsonbIteratorToken tok;
	JsonbValue	k;
	JsonbValue	v;

	if (elem->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("import item must not be null")));
	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("import item must be a JSON object")));
	/* the external_id first, so that an error below still names it */
	if (getKeyJsonValueFromContainer(elem->val.binary.data, "external_id", 11, &v) != NULL)
		read_field(it, "external_id", &v);
	iter = JsonbIteratorInit(elem->val.binary.data);
	while ((tok = JsonbIteratorNext(&iter, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = json_string(&k);
		(void) JsonbIteratorNext(&iter, &v, true);
		read_field(it, key, &v);
	}
	if (it->external_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("external_id of an import item must not be null")));
	UserlifeCheckExternalId(it->external_id);
	if (it->email != NULL)
	{
		UserlifeCheckEmail(it->email);
		it->email_key = TextDatumGetCString(DirectFunctionCall1Coll(lower, DEFAULT_COLLATION_OID,
																	CStringGetTextDatum(it->email)));
	}
	if (it->tags != NULL)
		LifecycleCheckTags(it->tags);
}

/* read_items: every item of the users array, checked; in input order */
static void
read_items(ImportBatch *b, Jsonb *users)
{
	JsonbIterator *iter = JsonbIteratorInit(&users->root);
	JsonbIteratorToken tok;
	JsonbValue	v;
	int			i = 0;

	while ((tok = JsonbIteratorNext(&iter, &v, true)) != WJB_DONE)
	{
		ImportItem *it;

		if (tok != WJB_ELEM)
			continue;
		CHECK_FOR_INTERRUPTS();
		it = &b->items[i++];
		it->state = ITEM_PENDING;
		it->status = USER_ACTIVE;
		check_item(b, it, read_item, &v);
	}
	Assert(i == b->nitems);
}

/*------------------------------------------------------------------------
 * Duplicates inside the batch
 *------------------------------------------------------------------------
 */

/*
 * by_key: the order of items ia and ib by their keys, and by their place in
 * the batch when the keys are equal, so that the earlier one sorts first
 */
static int
by_key(int ia, int ib, const char *ka, const char *kb)
{
	int			c = strcmp(ka, kb);

	return c != 0 ? c : (ia > ib) - (ia < ib);
}

static int
by_external_id(const void *a, const void *b)
{
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;

	return by_key(ia, ib, sort_items[ia].external_id, sort_items[ib].external_id);
}

static int
by_email(const void *a, const void *b)
{
	int			ia = *(const int *) a;
	int			ib = *(const int *) b;

	return by_key(ia, ib, sort_items[ia].email_key, sort_items[ib].email_key);
}

static void
refuse_taken_id(ImportBatch *b, ImportItem *it, void *arg)
{
	LifecycleRefuseReenroll(b->partner, it->external_id);
}

static void
refuse_taken_email(ImportBatch *b, ImportItem *it, void *arg)
{
	LifecycleEmailTaken(b->partner);
}

/*
 * refuse_batch_duplicates
 *		Among the valid items, a later item with the external_id or the
 *		e-mail (case-insensitively) of an earlier one gets the 23505 that
 *		registering it after the earlier one would give.
 */
static void
refuse_batch_duplicates(ImportBatch *b)
{
	int		   *idx = palloc(sizeof(int) * (b->nitems + 1));
	int			n = 0;
	int			i;

	sort_items = b->items;
	for (i = 0; i < b->nitems; i++)
		if (b->items[i].state == ITEM_PENDING)
			idx[n++] = i;
	qsort(idx, n, sizeof(int), by_external_id);
	for (i = 1; i < n; i++)
		if (strcmp(b->items[idx[i]].external_id, b->items[idx[i - 1]].external_id) == 0)
			check_item(b, &b->items[idx[i]], refuse_taken_id, NULL);

	n = 0;
	for (i = 0; i < b->nitems; i++)
		if (b->items[i].state == ITEM_PENDING && b->items[i].email_key != NULL)
			idx[n++] = i;
	qsort(idx, n, sizeof(int), by_email);
	for (i = 1; i < n; i++)
		if (strcmp(b->items[idx[i]].email_key, b->items[idx[i - 1]].email_key) == 0)
			check_item(b, &b->items[idx[i]], refuse_taken_email, NULL);
	pfree(idx);
}

/*------------------------------------------------------------------------
 * Writing
 *------------------------------------------------------------------------
 */

/* find_item: the pending item of ops (sorted by external_id) with the external_id; -1 if none */
static int
find_item(ImportBatch *b, const int *ops, int n, const char *external_id)
{
	int			lo = 0;
	int			hi = n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;
		int			c = strcmp(b->items[ops[mid]].external_id, external_id);

		if (c == 0)
			return ops[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return -1;
}

static Datum
text_array(Datum *elems, bool *nulls, int n)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};

	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, TEXTOID, -1, false,
											  TYPALIGN_INT));
}

/* CreateArgs: the columns of the rows one INSERT writes, as arrays */
typedef struct CreateArgs
{
	int			n;
	Datum	   *external_id;
	Datum	   *display_name;
	bool	   *display_name_null;
	Datum	   *email;
	bool	   *email_null;
	Datum	   *metadata;
	bool	   *metadata_null;
	Datum	   *status;
	Datum	   *tags_from;
	Datum	   *tags_to;
	Datum	   *created_at;
	bool	   *created_at_null;
	int			ntags;
	Datum	   *tags;			/* every item's tags, one after the other */
} CreateArgs;

static void
add_create(CreateArgs *a, ImportItem *it, int max_tags)
{
	int			i = a->n++;

	a->external_id[i] = CStringGetTextDatum(it->external_id);
	a->display_name_null[i] = (it->display_name == NULL);
	a->display_name[i] = it->display_name ? CStringGetTextDatum(it->display_name) : (Datum) 0;
	a->email_null[i] = (it->email == NULL);
	a->email[i] = it->email ? CStringGetTextDatum(it->email) : (Datum) 0;
	a->metadata_null[i] = (it->metadata == NULL);
	a->metadata[i] = it->metadata ? JsonbPGetDatum(it->metadata) : (Datum) 0;
	a->status[i] = CStringGetTextDatum(UserStatusNames[it->status]);
	a->created_at_null[i] = !it->has_created_at;
	a->created_at[i] = TimestampTzGetDatum(it->created_at);
	a->tags_from[i] = Int32GetDatum(a->ntags + 1);
	if (it->tags != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			j;

		deconstruct_array(it->tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (j = 0; j < n && a->ntags < max_tags; j++)
			a->tags[a->ntags++] = elems[j];
	}
	a->tags_to[i] = Int32GetDatum(a->ntags);
}

/* create_args: the arguments of the INSERT for the items of ops to create */
static void
create_args(ImportBatch *b, const int *ops, int n, CreateArgs *a)
{
	int			ntags = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		ImportItem *it = &b->items[ops[i]];

		if (it->op == OP_CREATE && it->tags != NULL)
			ntags += ArrayGetNItems(ARR_NDIM(it->tags), ARR_DIMS(it->tags));
	}
	memset(a, 0, sizeof(*a));
	a->external_id = palloc(sizeof(Datum) * n);
	a->display_name = palloc(sizeof(Datum) * n);
	a->display_name_null = palloc(sizeof(bool) * n);
	a->email = palloc(sizeof(Datum) * n);
	a->email_null = palloc(sizeof(bool) * n);
	a->metadata = palloc(sizeof(Datum) * n);
	a->metadata_null = palloc(sizeof(bool) * n);
	a->status = palloc(sizeof(Datum) * n);
	a->tags_from = palloc(sizeof(Datum) * n);
	a->tags_to = palloc(sizeof(Datum) * n);
	a->created_at = palloc(sizeof(Datum) * n);
	a->created_at_null = palloc(sizeof(bool) * n);
	a->tags = palloc(sizeof(Datum) * (ntags + 1));
	for (i = 0; i < n; i++)
		if (b->items[ops[i]].op == OP_CREATE)
			add_create(a, &b->items[ops[i]], ntags);
}

/* partner_has_tombstones: whether any purged user of the partner left one (fresh snapshot) */
static bool
partner_has_tombstones(ImportBatch *b)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];
	bool		found;

	MemoryContext cxt = CurrentMemoryContext;

	values[0] = CStringGetTextDatum(b->partner);
	UserlifeRun(&plan, "SELECT 1 FROM userlife.tombstones t WHERE t.partner = $1 LIMIT 1",
				1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	found = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	MemoryContextSwitchTo(cxt);
	return found;
}

/*
 * insert_creates
 *		One INSERT of every item of ops to create.  A row that meets an
 *		existing external_id or e-mail is left out (ON CONFLICT DO NOTHING,
 *		which waits for a concurrent inserter's outcome) and its item stays
 *		pending, for the next round to tell why.  A purge that committed
 *		while the INSERT waited for it may have left a tombstone of an id
 *		just created: that item fails, as register_user does.
 */
static void
insert_creates(ImportBatch *b, const int *ops, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[10] = {TEXTOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, JSONBARRAYOID,
		TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		values[10];
	CreateArgs	a;
	int			dims[1];
	int			lbs[1] = {1};
	uint64		i;
	int			created = 0;
	MemoryContext cxt = CurrentMemoryContext;

	create_args(b, ops, n, &a);
	if (a.n == 0)
		return;
	dims[0] = a.n;
	values[0] = CStringGetTextDatum(b->partner);
	values[1] = text_array(a.external_id, NULL, a.n);
	values[2] = text_array(a.display_name, a.display_name_null, a.n);
	values[3] = text_array(a.email, a.email_null, a.n);
	values[4] = PointerGetDatum(construct_md_array(a.metadata, a.metadata_null, 1, dims, lbs,
												   JSONBOID, -1, false, TYPALIGN_INT));
	values[5] = text_array(a.status, NULL, a.n);
	values[6] = text_array(a.tags, NULL, a.ntags);
	values[7] = PointerGetDatum(construct_array(a.tags_from, a.n, INT4OID, 4, true, TYPALIGN_INT));
	values[8] = PointerGetDatum(construct_array(a.tags_to, a.n, INT4OID, 4, true, TYPALIGN_INT));
	values[9] = PointerGetDatum(construct_md_array(a.created_at, a.created_at_null, 1, dims, lbs,
												   TIMESTAMPTZOID, sizeof(TimestampTz),
												   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	UserlifeRun(&plan,
				"INSERT INTO userlife.users AS u (user_id, partner, external_id, display_name, email,"
				" metadata, tags, status, enrollment_count, created_at) "
				"SELECT pg_catalog.gen_random_uuid(), $1, i.e, i.d, i.m,"
				" coalesce(i.md, '{}'::pg_catalog.jsonb), $7[i.tf:i.tt], i.s::userlife.user_status, 1, i.c "
				"FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3), pg_catalog.unnest($4),"
				" pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($8),"
				" pg_catalog.unnest($9), pg_catalog.unnest($10)) AS i(e, d, m, md, s, tf, tt, c) "
				"ON CONFLICT DO NOTHING RETURNING u.external_id, u.user_id",
				10, argtypes, values, NULL, false, 0, SPI_OK_INSERT_RETURNING);
	/* SPI leaves its procedure context current; this chunk's is ours */
	MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *external_id = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i],
																	SPI_tuptable->tupdesc, 1, &isnull));
		int			k = find_item(b, ops, n, external_id);

		if (k < 0)
			elog(ERROR, "import_users created an unexpected user \"%s\"", external_id);
		b->items[k].state = ITEM_CREATED;
		b->items[k].has_user_id = true;
		memcpy(&b->items[k].user_id,
			   DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)),
			   sizeof(pg_uuid_t));
		created++;
	}
	SPI_freetuptable(SPI_tuptable);
	if (created > 0 && partner_has_tombstones(b))
	{
		for (i = 0; i < (uint64) n; i++)
		{
			ImportItem *it = &b->items[ops[i]];

			if (it->state == ITEM_CREATED &&
				LifecycleTombstoneExists(b->partner, it->external_id))
				LifecycleRefuseReenroll(b->partner, it->external_id);
		}
	}
}

/*
 * update_one
 *		on_conflict => 'update': the profile fields the item gives replace
 *		the stored ones, audited as "update"; the user is locked.  An item
 *		that changes nothing (the users trigger then skips the row) is
 *		skipped.
 */
static void
update_one(ImportBatch *b, ImportItem *it)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[5] = {UUIDOID, TEXTOID, TEXTOID, JSONBOID, TEXTARRAYOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	it->state = ITEM_SKIPPED;
	if (it->display_name == NULL && it->email == NULL && it->metadata == NULL && it->tags == NULL)
		return;
	values[0] = UUIDPGetDatum(&it->user_id);
	values[1] = it->display_name ? CStringGetTextDatum(it->display_name) : (Datum) 0;
	nulls[1] = it->display_name ? ' ' : 'n';
	values[2] = it->email ? CStringGetTextDatum(it->email) : (Datum) 0;
	nulls[2] = it->email ? ' ' : 'n';
	values[3] = it->metadata ? JsonbPGetDatum(it->metadata) : (Datum) 0;
	nulls[3] = it->metadata ? ' ' : 'n';
	values[4] = it->tags ? PointerGetDatum(it->tags) : (Datum) 0;
	nulls[4] = it->tags ? ' ' : 'n';
	UserlifeRun(&plan,
				"UPDATE userlife.users u SET display_name = coalesce($2, u.display_name),"
				" email = coalesce($3, u.email), metadata = coalesce($4, u.metadata),"
				" tags = coalesce($5, u.tags) WHERE u.user_id = $1 RETURNING u.user_id",
				5, argtypes, values, nulls, false, 0, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed > 0)
		it->state = ITEM_UPDATED;
	SPI_freetuptable(SPI_tuptable);
}

/* write_ops: the writes of ops, announced to the users triggers */
static void
write_ops(ImportBatch *b, const int *ops, int n)
{
	int			i;

	WriteCtxBegin(b->caller, b->reason, NULL, WRITE_KEEP_CREATED);
	insert_creates(b, ops, n);
	WriteCtxEnd();
	WriteCtxBegin(b->caller, b->reason, "update", WRITE_PLAIN);
	for (i = 0; i < n; i++)
	{
		if (b->items[ops[i]].op == OP_UPDATE)
		{
			CHECK_FOR_INTERRUPTS();
			MemoryContextSwitchTo(b->chunk_cxt);
			update_one(b, &b->items[ops[i]]);
		}
	}
	WriteCtxEnd();
}

/*
 * try_ops
 *		Writes ops in a subtransaction, as PL/pgSQL runs a block with an
 *		exception handler; returns NULL, or the error (copied into the
 *		batch's context) after rolling all of them back and putting their
 *		items back to pending.  An error that is not the items' is raised
 *		again.
 */
static ErrorData *
try_ops(ImportBatch *b, const int *ops, int n)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(b->chunk_cxt);
	PG_TRY();
	{
		write_ops(b, ops, n);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		int			i;

		MemoryContextSwitchTo(b->cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (!item_failure(edata->sqlerrcode))
			ReThrowError(edata);
		for (i = 0; i < n; i++)
		{
			ImportItem *it = &b->items[ops[i]];

			it->state = ITEM_PENDING;
			if (it->op == OP_CREATE)
				it->has_user_id = false;
		}
	}
	PG_END_TRY();
	return edata;
}

/*
 * run_ops
 *		Writes ops (sorted by external_id); when that fails, each half
 *		again, down to the one item whose write fails, which gets the
 *		error as its result.
 */
static void
run_ops(ImportBatch *b, const int *ops, int n)
{
	ErrorData  *edata;

	CHECK_FOR_INTERRUPTS();
	edata = try_ops(b, ops, n);
	MemoryContextReset(b->chunk_cxt);
	if (edata == NULL)
		return;
	if (n == 1)
		fail_item(&b->items[ops[0]], edata->sqlerrcode, edata->message);
	else
	{
		run_ops(b, ops, n / 2);
		run_ops(b, ops + n / 2, n - n / 2);
	}
	FreeErrorData(edata);
}

/*------------------------------------------------------------------------
 * The items a round left pending: what they conflicted with
 *------------------------------------------------------------------------
 */

/*
 * lookup_existing
 *		Marks the items of ops whose external_id a user of the partner has,
 *		with its user_id and whether it is deleted.  For on_conflict =>
 *		'update' the users are locked, in user_id order, so that imports
 *		and other writers over the same users wait for each other instead
 *		of deadlocking.
 */
static void
lookup_existing(ImportBatch *b, const int *ops, int n)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	Oid			argtypes[2] = {TEXTOID, TEXTARRAYOID};
	Datum		values[2];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	MemoryContext cxt = CurrentMemoryContext;
	bool		lock = (b->mode == CONFLICT_UPDATE);
	uint64		i;

	for (i = 0; i < (uint64) n; i++)
	{
		ids[i] = CStringGetTextDatum(b->items[ops[i]].external_id);
		b->items[ops[i]].exists = false;
	}
	values[0] = CStringGetTextDatum(b->partner);
	values[1] = text_array(ids, NULL, n);
	UserlifeRun(lock ? &lock_plan : &plan, lock ?
				"SELECT u.external_id, u.user_id, u.status = 'deleted' FROM userlife.users u"
				" WHERE u.partner = $1 AND u.external_id = ANY ($2)"
				" ORDER BY u.user_id FOR NO KEY UPDATE OF u" :
				"SELECT u.external_id, u.user_id, u.status = 'deleted' FROM userlife.users u"
				" WHERE u.partner = $1 AND u.external_id = ANY ($2)",
				2, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int			k = find_item(b, ops, n, TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull)));

		if (k < 0)
			continue;
		b->items[k].exists = true;
		b->items[k].has_user_id = true;
		memcpy(&b->items[k].user_id, DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull)),
			   sizeof(pg_uuid_t));
		b->items[k].deleted = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
}

static void
refuse_deleted(ImportBatch *b, ImportItem *it, void *arg)
{
	LifecycleRequireNotDeleted(b->partner, it->external_id, USER_DELETED);
}

/*
 * resolve_conflict
 *		An item whose external_id is taken, by a user (exists) or by the
 *		tombstone of a purged one: on_conflict decides.  import_users never
 *		re-enrolls; register_user does that.
 */
static void
resolve_conflict(ImportBatch *b, ImportItem *it)
{
	it->op = OP_NONE;
	if (b->mode == CONFLICT_SKIP)
		it->state = ITEM_SKIPPED;
	else if (b->mode == CONFLICT_ERROR || !it->exists)
		check_item(b, it, refuse_taken_id, NULL);
	else if (it->deleted)
		check_item(b, it, refuse_deleted, NULL);
	else
		it->op = OP_UPDATE;
}

/*
 * refuse_taken_emails
 *		The items of ops about to be created, or updated with an e-mail,
 *		whose address (case-insensitively) a live user of the partner other
 *		than themselves has: 23505.
 */
static void
refuse_taken_emails(ImportBatch *b, int *ops, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {TEXTOID, TEXTARRAYOID};
	Datum		values[2];
	int		   *idx = palloc(sizeof(int) * (n + 1));
	Datum	   *keys = palloc(sizeof(Datum) * (n + 1));
	MemoryContext cxt = CurrentMemoryContext;
	int			m = 0;
	uint64		i;

	for (i = 0; i < (uint64) n; i++)
		if (b->items[ops[i]].op != OP_NONE && b->items[ops[i]].email_key != NULL)
			idx[m++] = ops[i];
	if (m == 0)
		return;
	sort_items = b->items;
	qsort(idx, m, sizeof(int), by_email);
	for (i = 0; i < (uint64) m; i++)
		keys[i] = CStringGetTextDatum(b->items[idx[i]].email_key);
	values[0] = CStringGetTextDatum(b->partner);
	values[1] = text_array(keys, NULL, m);
	UserlifeRun(&plan,
				"SELECT pg_catalog.lower(u.email), u.user_id FROM userlife.users u"
				" WHERE u.partner = $1 AND pg_catalog.lower(u.email) = ANY ($2)"
				" AND u.email IS NOT NULL AND u.status <> 'deleted'",
				2, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	MemoryContextSwitchTo(cxt);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *key = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		pg_uuid_t  *owner = DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		int			j;

		/* the batch has each address once (refuse_batch_duplicates) */
		for (j = 0; j < m; j++)
		{
			ImportItem *it = &b->items[idx[j]];

			if (strcmp(it->email_key, key) != 0)
				continue;
			if (it->op == OP_CREATE ||
				memcmp(&it->user_id, owner, sizeof(pg_uuid_t)) != 0)
				check_item(b, it, refuse_taken_email, NULL);
			break;
		}
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * prepare_round
 *		Decides what to do with each pending item of ops: in the first
 *		round every one is created (the INSERT finds what conflicts); in
 *		the later ones, the items it left out are looked up.
 */
static void
prepare_round(ImportBatch *b, int *ops, int n, int round)
{
	MemoryContext cxt = CurrentMemoryContext;
	bool		tombstones = partner_has_tombstones(b);
	int			i;

	if (round > 0)
		lookup_existing(b, ops, n);
	for (i = 0; i < n; i++)
	{
		ImportItem *it = &b->items[ops[i]];

		CHECK_FOR_INTERRUPTS();
		it->op = OP_CREATE;
		if (it->exists ||
			(tombstones && LifecycleTombstoneExists(b->partner, it->external_id)))
			resolve_conflict(b, it);
		MemoryContextSwitchTo(cxt);
	}
	if (round > 0)
		refuse_taken_emails(b, ops, n);
}

/* pending_ops: the pending items, sorted by external_id, into ops; returns how many */
static int
pending_ops(ImportBatch *b, int *ops, bool with_op)
{
	int			n = 0;
	int			i;

	for (i = 0; i < b->nitems; i++)
		if (b->items[i].state == ITEM_PENDING && (!with_op || b->items[i].op != OP_NONE))
			ops[n++] = i;
	sort_items = b->items;
	qsort(ops, n, sizeof(int), by_external_id);
	return n;
}

/*
 * write_items
 *		Rounds of: decide, then write in chunks.  An item the INSERT left
 *		out is pending again; the next round finds out why.  A third round
 *		is only needed when the conflicting row changed again meanwhile.
 */
static void
write_items(ImportBatch *b)
{
	int		   *ops = palloc(sizeof(int) * (b->nitems + 1));
	int			round;
	int			i;

	for (round = 0; round < IMPORT_ROUNDS; round++)
	{
		int			n;
		int			start;

		MemoryContextSwitchTo(b->cxt);
		n = pending_ops(b, ops, false);
		if (n == 0)
			break;
		prepare_round(b, ops, n, round);
		n = pending_ops(b, ops, true);
		for (start = 0; start < n; start += IMPORT_CHUNK)
			run_ops(b, ops + start, Min(IMPORT_CHUNK, n - start));
	}
	MemoryContextSwitchTo(b->cxt);
	for (i = 0; i < b->nitems; i++)
		if (b->items[i].state == ITEM_PENDING)
			fail_item(&b->items[i], ERRCODE_T_R_SERIALIZATION_FAILURE,
					  psprintf("user \"%s\" of partner \"%s\" kept changing during the import",
							   b->items[i].external_id, b->partner));
	pfree(ops);
}

/*------------------------------------------------------------------------
 * The SQL function
 *------------------------------------------------------------------------
 */
static ConflictMode
conflict_mode(const char *mode)
{
	if (strcmp(mode, "error") == 0)
		return CONFLICT_ERROR;
	if (strcmp(mode, "skip") == 0)
		return CONFLICT_SKIP;
	if (strcmp(mode, "update") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid on_conflict \"%s\"", UserlifeMsgValue(mode)),
				 errdetail("on_conflict is \"error\", \"skip\" or \"update\".")));
	return CONFLICT_UPDATE;
}

/* check_users: users must be a JSON array of at most IMPORT_MAX_ITEMS items */
static int
check_users(Jsonb *users)
{
	int			n;

	if (!JB_ROOT_IS_ARRAY(users) || JB_ROOT_IS_SCALAR(users))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("users must be a JSON array")));
	n = JB_ROOT_COUNT(users);
	UserlifeCheckBatchSize(n, IMPORT_MAX_ITEMS, "users", "import_users");
	return n;
}

/* emit_results: one row per item, in input order */
static void
emit_results(ImportBatch *b, ReturnSetInfo *rsinfo)
{
	int			i;

	for (i = 0; i < b->nitems; i++)
	{
		ImportItem *it = &b->items[i];
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		values[0] = Int32GetDatum(i + 1);
		nulls[1] = (it->external_id == NULL);
		values[1] = nulls[1] ? (Datum) 0 : CStringGetTextDatum(it->external_id);
		values[2] = CStringGetTextDatum(state_names[it->state]);
		nulls[3] = !(it->has_user_id && it->state != ITEM_ERROR);
		values[3] = nulls[3] ? (Datum) 0 : UUIDPGetDatum(&it->user_id);
		nulls[4] = nulls[5] = (it->state != ITEM_ERROR);
		values[4] = nulls[4] ? (Datum) 0 : CStringGetTextDatum(unpack_sql_state(it->sqlerrcode));
		values[5] = nulls[5] ? (Datum) 0 : CStringGetTextDatum(it->message);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * import_users(partner, users, on_conflict, reason): pre-loads a roster;
 * one result row per item, in input order (see the banner).
 */
Datum
userlife_import_users(PG_FUNCTION_ARGS)
{
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AccessScope scope;
	ImportBatch b;
	Jsonb	   *users;
	MemoryContext oldcontext;

	UserlifeRequireArg(fcinfo, 1, "users");
	UserlifeCheckPartnerId(partner);
	memset(&b, 0, sizeof(b));
	b.mode = PG_ARGISNULL(2) ? CONFLICT_ERROR : conflict_mode(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	users = PG_GETARG_JSONB_P(1);
	b.nitems = check_users(users);
	b.partner = partner;
	b.reason = UserlifeOptionalText(fcinfo, 3);
	InitMaterializedSRF(fcinfo, 0);

	AccessEnter(&scope, ACCESS_DEVELOPER, partner);
	LifecycleRequirePartner(partner);
	b.caller = scope.caller;
	b.cxt = AllocSetContextCreate(CurrentMemoryContext, "import_users", ALLOCSET_DEFAULT_SIZES);
	b.chunk_cxt = AllocSetContextCreate(b.cxt, "import_users chunk", ALLOCSET_DEFAULT_SIZES);
	oldcontext = MemoryContextSwitchTo(b.cxt);
	b.items = palloc0(sizeof(ImportItem) * (b.nitems + 1));
	read_items(&b, users);
	refuse_batch_duplicates(&b);
	write_items(&b);
	MemoryContextSwitchTo(b.cxt);
	emit_results(&b, rsinfo);
	MemoryContextSwitchTo(oldcontext);
	MemoryContextDelete(b.cxt);
	AccessLeave(&scope);
	return (Datum) 0;
}
