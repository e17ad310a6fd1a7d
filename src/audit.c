/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The users triggers: status machine enforcement for every path,
 *		bookkeeping columns, the per-user audit hash chain, change events
 *		and the wake-up notification; and the functions reading the audit.
 *
 * Flow.  BEFORE INSERT fills the bookkeeping columns of a new user; AFTER
 * INSERT writes its "register" (or "reenroll") audit row, so that a row
 * discarded by INSERT ... ON CONFLICT is never audited.  BEFORE UPDATE and
 * BEFORE DELETE do everything in one pass: by then the executor holds the
 * row lock, so the chain head read from the old row is the newest one and
 * the audit row goes in the same transaction as the change.  The same
 * triggers keep the user's search document (search.c): written after the
 * insert, rewritten by the guard when the final row changes a column it
 * is built from, removed before the delete.
 *
 * Chain.  Each audit row stores prev_hash (the user's previous row_hash)
 * and row_hash = SHA-256 over prev_hash, the row's identifying columns and
 * one SHA-256 digest per changed value.  Hashing digests of the values,
 * not the values, is what lets redaction replace a personal value by its
 * digest and leave the chain verifiable.  The newest row_hash is kept in
 * users.audit_head, so appending needs no lookup.  A registration's row is
 * sealed by BEFORE INSERT, so the inserted row carries its head (and
 * register_user returns it); AFTER INSERT writes that sealed row, and its
 * digest key, only once the insert happened.  A row registered before
 * 0.3.0 may still lack the head; its first update reads it once.
 *
 * Memory: everything is allocated in the trigger's (per-tuple) context or
 * inside SPI; the only static state is plans, attribute numbers (reset by
 * relcache callback) and the notification bookkeeping of this backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/xid8.h"

#include "userlife.h"
#include "access.h"
#include "append.h"
#include "audit.h"
#include "catalog.h"
#include "chain.h"
#include "lifecycle.h"
#include "retention.h"
#include "search.h"
#include "util.h"
#include "writectx.h"

PG_FUNCTION_INFO_V1(userlife_users_guard);
PG_FUNCTION_INFO_V1(userlife_users_audit_insert);
PG_FUNCTION_INFO_V1(userlife_user_history);
PG_FUNCTION_INFO_V1(userlife_verify_audit);


/* columns of users whose changes are audited, in changed_fields order */
typedef enum TrackedColumn
{
	COL_EXTERNAL_ID,
	COL_DISPLAY_NAME,
	COL_EMAIL,
	COL_STATUS,
	COL_STATUS_REASON,
	COL_SUSPENDED_UNTIL,
	COL_IS_FRAUDULENT,
	COL_ALLOW_NEW_ENROLL,
	COL_ENROLLMENT_COUNT,
	COL_LEGAL_HOLD,
	COL_METADATA,
	COL_TAGS,
	COL_VERIFIED_AT,
	COL_VERIFIED_ATTRIBUTES,
	COL_DELETED_AT,
	COL_PURGE_AFTER,
	NUM_TRACKED,
	/* bookkeeping and identity columns, never listed as changed */
	COL_USER_ID = NUM_TRACKED,
	COL_PARTNER,
	COL_VERSION,
	COL_CREATED_AT,
	COL_UPDATED_AT,
	COL_STATUS_CHANGED_AT,
	COL_AUDIT_HEAD,
	NUM_COLUMNS
} TrackedColumn;

static const char *const column_names[NUM_COLUMNS] = {
	"external_id", "display_name", "email", "status", "status_reason",
	"suspended_until", "is_fraudulent", "allow_new_enroll", "enrollment_count",
	"legal_hold", "metadata", "tags", "verified_at", "verified_attributes",
	"deleted_at", "purge_after",
	"user_id", "partner", "version", "created_at", "updated_at",
	"status_changed_at", "audit_head"
};

StaticAssertDecl(NUM_TRACKED <= CHAIN_MAX_FIELDS, "every tracked column fits an audit row");

static Oid	attnum_relid = InvalidOid;
static AttrNumber attnums[NUM_COLUMNS];

static SPIPlanPtr head_plan = NULL;

/*
 * A registration's audit row, sealed by the BEFORE INSERT trigger (whose
 * row then carries its hash as audit_head) and written by the AFTER INSERT
 * trigger once the row is known to be inserted, by user_id.  Entries live
 * for the transaction at most; their data is freed whenever none is left.
 */
typedef struct PendingRegistration
{
	pg_uuid_t	user_id;		/* hash key */
	AuditRecord rec;
	bool		store_key;		/* key was made for this row, not stored yet */
	uint8		key[CHAIN_KEY_LEN];
} PendingRegistration;

static HTAB *pending = NULL;
static MemoryContext pending_cxt = NULL;

/* settings */
static char *userlife_actor = NULL;
static bool userlife_notify = true;
static int	userlife_notify_interval_ms = 100;

/* notification state of this backend */
static bool notified_in_xact = false;
static SubTransactionId notified_subid = InvalidSubTransactionId;	/* queued it */
static TimestampTz last_notify_at = 0;
static TimestampTz last_notify_before_xact = 0;


static void notify_xact_callback(XactEvent event, void *arg);
static void notify_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);

void
AuditInit(void)
{
	DefineCustomStringVariable("userlife.actor",
							   "Application-level actor recorded in the audit.",
							   "An operator email or service name; set it with SET LOCAL.",
							   &userlife_actor, "",
							   PGC_USERSET, 0, NULL, NULL, NULL);
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
	CatalogForgetOnChange(&attnum_relid);
	RegisterXactCallback(notify_xact_callback, NULL);
	RegisterSubXactCallback(notify_subxact_callback, NULL);
}

static void
notify_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			pending = NULL;		/* went with TopTransactionContext */
			pending_cxt = NULL;
			notified_in_xact = false;
			last_notify_before_xact = last_notify_at;
			break;
		case XACT_EVENT_ABORT:
			/* the queued notification died with the transaction */
			pending = NULL;
			pending_cxt = NULL;
			notified_in_xact = false;
			last_notify_at = last_notify_before_xact;
			break;
		default:
			break;
	}
}

/*
 * notify_subxact_callback
 *		The notification belongs to the subtransaction that queued it:
 *		PostgreSQL drops it when that subtransaction (or an ancestor) aborts,
 *		and the next change of the transaction must queue it again.
 */
static void
notify_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (!notified_in_xact)
		return;
	if (event == SUBXACT_EVENT_ABORT_SUB && notified_subid >= mySubid)
	{
		notified_in_xact = false;
		last_notify_at = last_notify_before_xact;
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB && notified_subid == mySubid)
		notified_subid = parentSubid;
}

static void
load_attnums(Relation rel)
{
	int			i;

	if (attnum_relid == RelationGetRelid(rel))
		return;
	for (i = 0; i < NUM_COLUMNS; i++)
	{
		attnums[i] = SPI_fnumber(RelationGetDescr(rel), column_names[i]);
		if (attnums[i] <= 0)
			elog(ERROR, "column \"%s\" of userlife.users does not exist", column_names[i]);
	}
	attnum_relid = RelationGetRelid(rel);
}

static Datum
col(HeapTuple tup, TupleDesc desc, TrackedColumn c, bool *isnull)
{
	return heap_getattr(tup, attnums[c], desc, isnull);
}

static char *
col_text(HeapTuple tup, TupleDesc desc, TrackedColumn c)
{
	bool		isnull;
	Datum		d = col(tup, desc, c, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* row_user_name: UserlifeUserName for a row of userlife.users */
static char *
row_user_name(HeapTuple tup, TupleDesc desc)
{
	return UserlifeUserName(col_text(tup, desc, COL_PARTNER),
							col_text(tup, desc, COL_EXTERNAL_ID));
}

static char *
col_uuid(HeapTuple tup, TupleDesc desc, TrackedColumn c)
{
	bool		isnull;
	Datum		d = col(tup, desc, c, &isnull);

	return isnull ? NULL : DatumGetCString(DirectFunctionCall1(uuid_out, d));
}

/*------------------------------------------------------------------------
 * JSON values of columns
 *------------------------------------------------------------------------
 */

/* timestamps are written in UTC: the session's TimeZone must not change what is stored */
static const int utc_offset = 0;
static void
push_string(JsonbParseState **state, JsonbIteratorToken seq, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, seq, &v);
}

static void
push_jsonb(JsonbParseState **state, JsonbIteratorToken seq, Jsonb *jb)
{
	JsonbValue	v;

	if (JB_ROOT_IS_SCALAR(jb))
	{
		JsonbExtractScalar(&jb->root, &v);
		pushJsonbValue(state, seq, &v);
		return;
	}
	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	pushJsonbValue(state, seq, &v);
}

static Oid
get_type_output_function_oid(Oid typid)
{
	Oid			outfunc;
	bool		isvarlena;

	getTypeOutputInfo(typid, &outfunc, &isvarlena);
	return outfunc;
}

/* push_column_value: a users column value as JSON, the way to_jsonb shows it */
static void
push_column_value(JsonbParseState **state, Oid typid, Datum d, bool isnull)
{
	JsonbValue	v;

	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(state, WJB_VALUE, &v);
		return;
	}
	switch (typid)
	{
		case TEXTOID:
			push_string(state, WJB_VALUE, TextDatumGetCString(d));
			break;
		case UUIDOID:
			push_string(state, WJB_VALUE, DatumGetCString(DirectFunctionCall1(uuid_out, d)));
			break;
		case BOOLOID:
			v.type = jbvBool;
			v.val.boolean = DatumGetBool(d);
			pushJsonbValue(state, WJB_VALUE, &v);
			break;
		case INT4OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric, d));
			pushJsonbValue(state, WJB_VALUE, &v);
			break;
		case INT8OID:
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, d));
			pushJsonbValue(state, WJB_VALUE, &v);
			break;
		case TIMESTAMPTZOID:
			push_string(state, WJB_VALUE, JsonEncodeDateTime(NULL, d, TIMESTAMPTZOID, &utc_offset));
			break;
		case JSONBOID:
			push_jsonb(state, WJB_VALUE, DatumGetJsonbP(d));
			break;
		case TEXTARRAYOID:
			{
				ArrayType  *arr = DatumGetArrayTypeP(d);
				Datum	   *elems;
				bool	   *enulls;
				int			n;
				int			i;

				deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
				pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
				for (i = 0; i < n; i++)
				{
					if (enulls[i])
					{
						v.type = jbvNull;
						pushJsonbValue(state, WJB_ELEM, &v);
					}
					else
						push_string(state, WJB_ELEM, TextDatumGetCString(elems[i]));
				}
				pushJsonbValue(state, WJB_END_ARRAY, NULL);
				break;
			}
		default:
			if (typid == UserlifeStatusTypeOid())
				push_string(state, WJB_VALUE,
							UserStatusNames[UserlifeStatusFromDatum(d)]);
			else
				push_string(state, WJB_VALUE,
							OidOutputFunctionCall(get_type_output_function_oid(typid), d));
			break;
	}
}

/*
 * values_equal
 *		Whether two values of a users column are the same.  Varlena values
 *		are compared detoasted: a value read back from a TOASTed row is
 *		compressed or external where the same value just assigned is not.
 */
static bool
values_equal(TupleDesc desc, int attnum, Datum a, bool anull, Datum b, bool bnull)
{
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);

	if (anull || bnull)
		return anull && bnull;
	if (att->attlen == -1)
	{
		struct varlena *va = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(a));
		struct varlena *vb = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(b));

		return VARSIZE_ANY_EXHDR(va) == VARSIZE_ANY_EXHDR(vb) &&
			memcmp(VARDATA_ANY(va), VARDATA_ANY(vb), VARSIZE_ANY_EXHDR(va)) == 0;
	}
	return datumIsEqual(a, b, att->attbyval, att->attlen);
}

/*
 * diff_rows
 *		Fills rec->changed, old_values and new_values with the tracked
 *		columns that differ between oldtup and newtup (oldtup NULL: every
 *		non-null column of newtup).  Returns the number of changed columns.
 */
static int
diff_rows(AuditRecord *rec, TupleDesc desc, HeapTuple oldtup, HeapTuple newtup)
{
	JsonbParseState *ostate = NULL;
	JsonbParseState *nstate = NULL;
	JsonbValue *ores;
	JsonbValue *nres;
	int			c;

	rec->nchanged = 0;
	pushJsonbValue(&ostate, WJB_BEGIN_OBJECT, NULL);
	pushJsonbValue(&nstate, WJB_BEGIN_OBJECT, NULL);
	for (c = 0; c < NUM_TRACKED; c++)
	{
		bool		onull = true;
		bool		nnull;
		Datum		o = (Datum) 0;
		Datum		n = col(newtup, desc, c, &nnull);
		Oid			typid = TupleDescAttr(desc, attnums[c] - 1)->atttypid;

		if (oldtup != NULL)
		{
			o = col(oldtup, desc, c, &onull);
			if (values_equal(desc, attnums[c], o, onull, n, nnull))
				continue;
		}
		else if (nnull)
			continue;
		rec->changed[rec->nchanged++] = column_names[c];
		if (oldtup != NULL)
		{
			push_string(&ostate, WJB_KEY, column_names[c]);
			push_column_value(&ostate, typid, o, onull);
		}
		push_string(&nstate, WJB_KEY, column_names[c]);
		push_column_value(&nstate, typid, n, nnull);
	}
	ores = pushJsonbValue(&ostate, WJB_END_OBJECT, NULL);
	nres = pushJsonbValue(&nstate, WJB_END_OBJECT, NULL);
	rec->old_values = JsonbValueToJsonb(ores);
	rec->new_values = JsonbValueToJsonb(nres);
	return rec->nchanged;
}

/*------------------------------------------------------------------------
 * Hash chain (chain.c computes; here the writer's side)
 *------------------------------------------------------------------------
 */

/*
 * seal_row
 *		Hashes a row being written, in the version the audit table takes,
 *		with the user's digest key when a personal value changed: a new
 *		user's key is made here, another user's read, or made for one
 *		registered before 0.3.0 or re-enrolled after erasure.  A key made
 *		here is stored at once, unless unstored_key is given: then it is
 *		put there and true returned, and the caller stores it once the row
 *		is known to be written (ChainStoreUserKey).
 */
static bool
seal_row(AuditRecord *rec, Datum user_id, bool new_user, uint8 *unstored_key)
{
	uint8		fresh[CHAIN_KEY_LEN];
	bool		deferred = false;

	rec->version = ChainWriteVersion();
	rec->redacted_form = false;
	rec->key = NULL;
	if (ChainNeedsKey(rec))
	{
		if (!new_user)
			rec->key = ChainUserKey(user_id);
		if (rec->key == NULL && unstored_key != NULL)
		{
			ChainNewUserKey(unstored_key);
			rec->key = unstored_key;
			deferred = true;
		}
		else if (rec->key == NULL)
		{
			ChainCreateUserKey(user_id, fresh);
			rec->key = fresh;
		}
	}
	if (!ChainComputeRowHash(rec))
		elog(ERROR, "the audit row of user %s cannot be hashed", rec->user_id);
	if (!deferred)
		rec->key = NULL;		/* fresh is about to go out of scope */
	return deferred;
}

/*
 * load_chain_head
 *		The newest row_hash of the user, read from the audit: by a probe of
 *		its index (append.c), or by a query when the index is not as
 *		installed.
 */
static void
load_chain_head(AuditRecord *rec, Datum user_id)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {user_id};
	bool		isnull;
	bytea	   *head;
	bool		found;

	if (AppendReadChainHead(user_id, &head, &found))
	{
		rec->has_prev = found && ChainHashFromBytea(PointerGetDatum(head), rec->prev_hash);
		return;
	}
	UserlifeSpiConnect();
	UserlifeRunCustom(&head_plan,
					  "SELECT a.row_hash FROM userlife.audit a "
					  "WHERE a.user_id = $1 ORDER BY a.audit_id DESC LIMIT 1",
					  1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	rec->has_prev = false;
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			rec->has_prev = ChainHashFromBytea(d, rec->prev_hash);
	}
	UserlifeSpiFinish();
}

/*------------------------------------------------------------------------
 * Writing
 *------------------------------------------------------------------------
 */
static const char *
event_type_for(const char *action)
{
	if (strcmp(action, "status") == 0 || strcmp(action, "fraud_flag") == 0)
		return "user.status.updated";
	return "user.data.updated";
}

static Datum
changed_fields_array(const AuditRecord *rec)
{
	Datum	   *elems = palloc(sizeof(Datum) * (rec->nchanged + 1));
	int			i;

	for (i = 0; i < rec->nchanged; i++)
		elems[i] = CStringGetTextDatum(rec->changed[i]);
	return PointerGetDatum(construct_array(elems, rec->nchanged, TEXTOID, -1, false, TYPALIGN_INT));
}

static void
push_int8(JsonbParseState **state, int64 n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, Int64GetDatum(n)));
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * event_payload
 *		The payload of the change's event (SPEC §8); audit_id is left out
 *		when it is not known yet (audit_id 0: the SQL statement adds it).
 */
static Jsonb *
event_payload(const AuditRecord *rec, int64 audit_id)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	int			i;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_string(&state, WJB_KEY, "partner");
	push_string(&state, WJB_VALUE, rec->partner);
	push_string(&state, WJB_KEY, "external_id");
	if (rec->external_id)
		push_string(&state, WJB_VALUE, rec->external_id);
	else
	{
		JsonbValue	v = {.type = jbvNull};

		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	push_string(&state, WJB_KEY, "user_id");
	push_string(&state, WJB_VALUE, rec->user_id);
	push_string(&state, WJB_KEY, "changed_fields");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (i = 0; i < rec->nchanged; i++)
		push_string(&state, WJB_ELEM, rec->changed[i]);
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	push_string(&state, WJB_KEY, "status");
	push_string(&state, WJB_VALUE, rec->status);
	push_string(&state, WJB_KEY, "at");
	push_string(&state, WJB_VALUE, JsonEncodeDateTime(NULL, TimestampTzGetDatum(rec->at),
													  TIMESTAMPTZOID, &utc_offset));
	/* what happened, and which audit row says so in full */
	push_string(&state, WJB_KEY, "action");
	push_string(&state, WJB_VALUE, rec->action);
	if (audit_id > 0)
	{
		push_string(&state, WJB_KEY, "audit_id");
		push_int8(&state, audit_id);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/* event_payload_fn: event_payload as append.c calls it, with the new audit_id */
static Datum
event_payload_fn(int64 audit_id, const void *arg)
{
	return JsonbPGetDatum(event_payload((const AuditRecord *) arg, audit_id));
}

/*
 * maybe_notify
 *		Queues the wake-up notification at most once per transaction and
 *		per userlife.notify_interval; PostgreSQL delivers it at commit and
 *		drops it on rollback, of the transaction or of the subtransaction
 *		that queued it.
 */
static void
maybe_notify(const char *partner)
{
	TimestampTz now;

	if (!userlife_notify || notified_in_xact)
		return;
	now = GetCurrentTimestamp();
	if (userlife_notify_interval_ms > 0 && last_notify_at != 0 &&
		!TimestampDifferenceExceeds(last_notify_at, now, userlife_notify_interval_ms))
		return;
	Async_Notify("userlife_events", partner);
	notified_in_xact = true;
	notified_subid = GetCurrentSubTransactionId();
	last_notify_at = now;
}

/*
 * append_audit_sql
 *		The audit row and its event through an INSERT statement, for tables
 *		no longer as installed; a database not yet updated to 0.3.0 has no
 *		hash_version column, and its rows are version 1.
 */
static void
append_audit_sql(Datum *a, bool *an, Datum *e)
{
	static SPIPlanPtr plan_v1 = NULL;
	static SPIPlanPtr plan_v2 = NULL;
	bool		v2 = DatumGetInt16(a[16]) >= CHAIN_V2;
	Oid			argtypes[17] = {TIMESTAMPTZOID, TEXTOID, UUIDOID, TEXTOID, TEXTOID,
		TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, JSONBOID, JSONBOID, XID8OID,
	BYTEAOID, BYTEAOID, TEXTOID, JSONBOID, INT2OID};
	Datum		values[17];
	char		nulls[17];
	int			i;

	/* $1..$14 are audit columns 1..14, $15 and $16 the event's type and payload, $17 the version */
	for (i = 0; i < 14; i++)
	{
		values[i] = a[i + 1];
		nulls[i] = an[i + 1] ? 'n' : ' ';
	}
	values[14] = e[5];
	values[15] = e[6];
	values[16] = a[16];
	nulls[14] = nulls[15] = nulls[16] = ' ';
	UserlifeSpiConnect();
	UserlifeRun(v2 ? &plan_v2 : &plan_v1, v2 ?
				"WITH a AS ("
				" INSERT INTO userlife.audit (at, partner, user_id, external_id, action,"
				"  db_role, actor, reason, changed_fields, old_values, new_values, txid,"
				"  prev_hash, row_hash, hash_version)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $17)"
				" RETURNING audit_id) "
				"INSERT INTO userlife.events (at, partner, user_id, audit_id, event_type, payload) "
				"SELECT $1, $2, $3, a.audit_id, $15, $16 OPERATOR(pg_catalog.||)"
				" pg_catalog.jsonb_build_object('audit_id', a.audit_id) FROM a" :
				"WITH a AS ("
				" INSERT INTO userlife.audit (at, partner, user_id, external_id, action,"
				"  db_role, actor, reason, changed_fields, old_values, new_values, txid,"
				"  prev_hash, row_hash)"
				" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
				" RETURNING audit_id) "
				"INSERT INTO userlife.events (at, partner, user_id, audit_id, event_type, payload) "
				"SELECT $1, $2, $3, a.audit_id, $15, $16 OPERATOR(pg_catalog.||)"
				" pg_catalog.jsonb_build_object('audit_id', a.audit_id) FROM a",
				v2 ? 17 : 16, argtypes, values, nulls, false, 0, SPI_OK_INSERT);
	UserlifeSpiFinish();
}

/*
 * append_audit
 *		Inserts the audit row and its event: straight into the tables when
 *		they are as installed (append.c), else with an INSERT statement so
 *		that whatever a DBA added to them runs.
 */
static void
append_audit(AuditRecord *rec, Datum user_id)
{
	Datum		a[AUDIT_NATTS];
	bool		an[AUDIT_NATTS];
	Datum		e[EVENTS_NATTS];
	bool		en[EVENTS_NATTS];

	memset(an, 0, sizeof(an));
	memset(en, 0, sizeof(en));
	a[1] = TimestampTzGetDatum(rec->at);
	a[2] = CStringGetTextDatum(rec->partner);
	a[3] = user_id;
	an[4] = (rec->external_id == NULL);
	a[4] = an[4] ? (Datum) 0 : CStringGetTextDatum(rec->external_id);
	a[5] = CStringGetTextDatum(rec->action);
	a[6] = CStringGetTextDatum(rec->db_role);
	an[7] = (rec->actor == NULL);
	a[7] = an[7] ? (Datum) 0 : CStringGetTextDatum(rec->actor);
	an[8] = (rec->reason == NULL);
	a[8] = an[8] ? (Datum) 0 : CStringGetTextDatum(rec->reason);
	a[9] = changed_fields_array(rec);
	a[10] = JsonbPGetDatum(rec->old_values);
	a[11] = JsonbPGetDatum(rec->new_values);
	a[12] = FullTransactionIdGetDatum(FullTransactionIdFromU64(rec->txid));
	an[13] = !rec->has_prev;
	a[13] = rec->has_prev ? PointerGetDatum(ChainHashToBytea(rec->prev_hash)) : (Datum) 0;
	a[14] = PointerGetDatum(ChainHashToBytea(rec->row_hash));
	a[15] = PointerGetDatum(construct_empty_array(TEXTOID));
	a[16] = Int16GetDatum(rec->version);

	e[1] = a[1];
	e[2] = a[2];
	e[3] = user_id;
	e[5] = CStringGetTextDatum(event_type_for(rec->action));
	en[7] = en[8] = true;
	e[7] = e[8] = (Datum) 0;

	if (!AppendAuditAndEvent(a, an, e, en, event_payload_fn, rec))
	{
		e[6] = JsonbPGetDatum(event_payload(rec, 0));
		append_audit_sql(a, an, e);
	}
	maybe_notify(rec->partner);
}

/* fill_identity: the columns every audit row of this change shares */
static void
fill_identity(AuditRecord *rec, HeapTuple tup, TupleDesc desc, const char *action)
{
	const WriteFrame *w = WriteCtxCurrent();
	bool		isnull;

	rec->at = GetCurrentTransactionStartTimestamp();
	rec->partner = col_text(tup, desc, COL_PARTNER);
	rec->user_id = col_uuid(tup, desc, COL_USER_ID);
	rec->external_id = col_text(tup, desc, COL_EXTERNAL_ID);
	rec->action = action;
	rec->db_role = GetUserNameFromId(w ? w->caller : GetUserId(), false);
	if (w && w->actor != NULL)
		rec->actor = w->actor;
	else if (userlife_actor != NULL && userlife_actor[0] != '\0')
		rec->actor = userlife_actor;
	else
		rec->actor = NULL;
	rec->txid = U64FromFullTransactionId(GetTopFullTransactionId());
	rec->status = UserStatusNames[UserlifeStatusFromDatum(col(tup, desc, COL_STATUS, &isnull))];
	rec->nredacted = 0;
	rec->redacted = NULL;
}

/*------------------------------------------------------------------------
 * Registrations: sealed before the insert, written after it
 *------------------------------------------------------------------------
 */

static const char *
pending_strdup(const char *str)
{
	return str ? MemoryContextStrdup(pending_cxt, str) : NULL;
}

static Jsonb *
pending_jsonb(const Jsonb *jb)
{
	Jsonb	   *copy = MemoryContextAlloc(pending_cxt, VARSIZE(jb));

	memcpy(copy, jb, VARSIZE(jb));
	return copy;
}

/*
 * stash_registration
 *		Keeps the sealed audit row of a row about to be inserted until the
 *		AFTER INSERT trigger writes it; key is the unstored digest key, if
 *		seal_row made one.
 */
static void
stash_registration(Datum user_id, const AuditRecord *rec, const uint8 *key)
{
	PendingRegistration *entry;
	bool		found;

	if (pending == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(pg_uuid_t);
		ctl.entrysize = sizeof(PendingRegistration);
		ctl.hcxt = TopTransactionContext;
		pending = hash_create("userlife pending registrations", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		pending_cxt = AllocSetContextCreate(TopTransactionContext,
											"userlife pending registration rows",
											ALLOCSET_SMALL_SIZES);
	}
	entry = hash_search(pending, DatumGetUUIDP(user_id), HASH_ENTER, &found);
	entry->rec = *rec;
	entry->rec.partner = pending_strdup(rec->partner);
	entry->rec.user_id = pending_strdup(rec->user_id);
	entry->rec.external_id = pending_strdup(rec->external_id);
	entry->rec.action = pending_strdup(rec->action);
	entry->rec.db_role = pending_strdup(rec->db_role);
	entry->rec.actor = pending_strdup(rec->actor);
	entry->rec.reason = pending_strdup(rec->reason);
	entry->rec.old_values = pending_jsonb(rec->old_values);
	entry->rec.new_values = pending_jsonb(rec->new_values);
	entry->rec.key = NULL;
	entry->store_key = (key != NULL);
	if (key != NULL)
		memcpy(entry->key, key, CHAIN_KEY_LEN);
}

/*
 * write_registration
 *		Writes the stashed audit row of the inserted user (and stores its
 *		digest key); false when there is none (the row's user_id was
 *		changed after our BEFORE trigger).
 */
static bool
write_registration(Datum user_id)
{
	PendingRegistration *entry;

	if (pending == NULL)
		return false;
	entry = hash_search(pending, DatumGetUUIDP(user_id), HASH_FIND, NULL);
	if (entry == NULL)
		return false;
	if (entry->store_key)
		ChainStoreUserKey(user_id, entry->key);
	append_audit(&entry->rec, user_id);
	hash_search(pending, DatumGetUUIDP(user_id), HASH_REMOVE, NULL);
	/* rows discarded by ON CONFLICT leave entries behind until the transaction ends */
	if (hash_get_num_entries(pending) == 0)
		MemoryContextReset(pending_cxt);
	return true;
}

/*
 * seal_registration
 *		The "register" (or "reenroll") audit row of a new row, sealed; the
 *		row, with audit_head set to its hash, is returned.
 */
static HeapTuple
seal_registration(HeapTuple newtup, TupleDesc desc)
{
	const WriteFrame *w = WriteCtxCurrent();
	bool		reenroll = w && w->action && strcmp(w->action, "reenroll") == 0;
	AuditRecord rec;
	uint8		key[CHAIN_KEY_LEN];
	bool		isnull;
	Datum		user_id;
	int			cols[1];
	Datum		values[1];
	bool		nulls[1] = {false};

	memset(&rec, 0, sizeof(rec));
	diff_rows(&rec, desc, NULL, newtup);
	fill_identity(&rec, newtup, desc, reenroll ? "reenroll" : "register");
	rec.reason = UserlifeEffectiveReason(w ? w->reason : NULL);
	user_id = col(newtup, desc, COL_USER_ID, &isnull);

	/* a re-enrolled tombstone keeps its user_id, so its chain goes on */
	if (reenroll)
		load_chain_head(&rec, user_id);
	stash_registration(user_id, &rec,
					   seal_row(&rec, user_id, !reenroll, key) ? key : NULL);
	cols[0] = attnums[COL_AUDIT_HEAD];
	values[0] = PointerGetDatum(ChainHashToBytea(rec.row_hash));
	return heap_modify_tuple_by_cols(newtup, desc, 1, cols, values, nulls);
}

/*------------------------------------------------------------------------
 * Triggers
 *------------------------------------------------------------------------
 */
static TriggerData *
check_trigger_call(FunctionCallInfo fcinfo, const char *name)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport_as_caller(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s can only be called as a trigger", name)));
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport_as_caller(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be fired for each row", name)));
	return trigdata;
}

/* infer_action: the audit action a change stands for, when the caller did not say */
static const char *
infer_action(TupleDesc desc, HeapTuple oldtup, HeapTuple newtup, UserStatus from, UserStatus to)
{
	bool		n1,
				n2;
	int32		oc = DatumGetInt32(col(oldtup, desc, COL_ENROLLMENT_COUNT, &n1));
	int32		nc = DatumGetInt32(col(newtup, desc, COL_ENROLLMENT_COUNT, &n2));

	if (nc > oc)
		return "reenroll";
	if (from != USER_DELETED && to == USER_DELETED)
		return "delete";
	if (from == USER_DELETED && to != USER_DELETED)
		return "restore";
	if (from != to)
		return "status";
	if (DatumGetBool(col(oldtup, desc, COL_IS_FRAUDULENT, &n1)) !=
		DatumGetBool(col(newtup, desc, COL_IS_FRAUDULENT, &n2)))
		return "fraud_flag";
	if (DatumGetBool(col(oldtup, desc, COL_LEGAL_HOLD, &n1)) !=
		DatumGetBool(col(newtup, desc, COL_LEGAL_HOLD, &n2)))
		return "legal_hold";
	(void) col(oldtup, desc, COL_VERIFIED_AT, &n1);
	(void) col(newtup, desc, COL_VERIFIED_AT, &n2);
	if (n1 && !n2)
		return "verify";
	return "update";
}

static void
refuse_identity_change(TupleDesc desc, HeapTuple oldtup, HeapTuple newtup)
{
	static const TrackedColumn fixed[] = {COL_USER_ID, COL_PARTNER, COL_CREATED_AT};
	int			i;

	for (i = 0; i < (int) lengthof(fixed); i++)
	{
		bool		onull,
					nnull;
		Datum		o = col(oldtup, desc, fixed[i], &onull);
		Datum		n = col(newtup, desc, fixed[i], &nnull);

		if (!values_equal(desc, attnums[fixed[i]], o, onull, n, nnull))
			ereport_as_caller(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of %s cannot be changed",
							column_names[fixed[i]], row_user_name(oldtup, desc))));
	}
}

/* transition_passes: whether LifecycleCheckTransition would let it pass */
static bool
transition_passes(UserStatus from, UserStatus to, bool has_reason)
{
	bool		requires_reason = false;

	if (from == USER_DELETED || to == USER_DELETED)
		return false;
	return LifecycleTransitionAllowed(from, to, &requires_reason) &&
		(has_reason || !requires_reason);
}

/*
 * check_status_change
 *		Returns the reason to record for a status change, checked here
 *		against the rules on the final row, unless a lifecycle function
 *		(delete, restore, re-enrollment, suspension end) made it.
 */
static const char *
check_status_change(TupleDesc desc, HeapTuple oldtup, HeapTuple newtup,
					UserStatus from, UserStatus to)
{
	const WriteFrame *w = WriteCtxCurrent();
	const char *reason;

	if (w)
		reason = UserlifeEffectiveReason(w->reason);
	else
	{
		bool		onull,
					nnull;
		Datum		o = col(oldtup, desc, COL_STATUS_REASON, &onull);
		Datum		n = col(newtup, desc, COL_STATUS_REASON, &nnull);

		if (!values_equal(desc, attnums[COL_STATUS_REASON], o, onull, n, nnull) && !nnull)
			reason = UserlifeEffectiveReason(TextDatumGetCString(n));
		else
			reason = UserlifeEffectiveReason(NULL);
	}

	/*
	 * Only the lifecycle functions may move a user outside the rules (into
	 * or out of 'deleted').  Any other function's statement is checked
	 * again here, on the final row: set_status checked the change it asked
	 * for, but a DBA's BEFORE trigger may have rewritten the status since,
	 * and update_user or mark_verified ask for no status change at all.
	 */
	if (w && w->lifecycle_path)
		return reason;
	/* a refusal is reported in the context of the function's call */
	if (w && !transition_passes(from, to, reason != NULL))
		WriteCtxReportAsCaller();
	LifecycleCheckTransition(row_user_name(oldtup, desc), from, to, reason != NULL);
	return reason;
}

/*
 * require_identity
 *		The trigger reads user_id, partner and status before PostgreSQL's
 *		NOT NULL constraints are checked: refuse NULLs there first.
 */
static void
require_identity(HeapTuple tup, TupleDesc desc)
{
	static const TrackedColumn required[] = {COL_USER_ID, COL_PARTNER, COL_STATUS};
	int			i;

	for (i = 0; i < (int) lengthof(required); i++)
	{
		bool		isnull;

		(void) col(tup, desc, required[i], &isnull);
		if (isnull)
			ereport_as_caller(ERROR,
							  (errcode(ERRCODE_NOT_NULL_VIOLATION),
							   errmsg("null value in column \"%s\" of relation \"users\" violates not-null constraint",
									  column_names[required[i]])));
	}
}

static HeapTuple
guard_insert(TriggerData *trigdata, TupleDesc desc)
{
	HeapTuple	newtup = trigdata->tg_trigtuple;
	int			cols[8];
	Datum		values[8];
	bool		nulls[8];
	int			n = 0;
	bool		isnull;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	UserStatus	status;
	const WriteFrame *w = WriteCtxCurrent();
	bool		lifecycle = w && w->lifecycle_path;
	Datum		created;

	require_identity(newtup, desc);
	status = UserlifeStatusFromDatum(col(newtup, desc, COL_STATUS, &isnull));

	/*
	 * register_user and import_users checked the status they asked for, but
	 * a DBA's BEFORE trigger may have rewritten it since: check the row's.
	 */
	if (!lifecycle)
	{
		if (w && status != USER_ACTIVE && status != USER_INACTIVE && status != USER_FLAGGED)
			WriteCtxReportAsCaller();
		LifecycleCheckNewStatus(status);
	}

	(void) col(newtup, desc, COL_EXTERNAL_ID, &isnull);
	if (isnull)
	{
		Datum		uid = col(newtup, desc, COL_USER_ID, &isnull);

		cols[n] = attnums[COL_EXTERNAL_ID];
		values[n] = CStringGetTextDatum(DatumGetCString(DirectFunctionCall1(uuid_out, uid)));
		nulls[n++] = false;
	}
	cols[n] = attnums[COL_VERSION];
	values[n] = Int64GetDatum(1);
	nulls[n++] = false;
	/* import_users keeps the original registration time, never one after now */
	created = col(newtup, desc, COL_CREATED_AT, &isnull);
	if (!(w && w->keep_created_at) || isnull ||
		DatumGetTimestampTz(created) > now)
		created = TimestampTzGetDatum(now);
	cols[n] = attnums[COL_CREATED_AT];
	values[n] = created;
	nulls[n++] = false;
	cols[n] = attnums[COL_UPDATED_AT];
	values[n] = TimestampTzGetDatum(now);
	nulls[n++] = false;
	cols[n] = attnums[COL_STATUS_CHANGED_AT];
	values[n] = TimestampTzGetDatum(now);
	nulls[n++] = false;
	if (!lifecycle)
	{
		cols[n] = attnums[COL_ENROLLMENT_COUNT];
		values[n] = Int32GetDatum(1);
		nulls[n++] = false;
	}
	if (status != USER_SUSPENDED)
	{
		cols[n] = attnums[COL_SUSPENDED_UNTIL];
		values[n] = (Datum) 0;
		nulls[n++] = true;
	}
	return seal_registration(heap_modify_tuple_by_cols(newtup, desc, n, cols, values, nulls), desc);
}

/*
 * append_after_row_head
 *		Seals rec onto the user's chain and appends it, for an UPDATE or a
 *		DELETE of the users row oldtup: the chain's head is the row's
 *		audit_head, or read from the audit when the row has none.
 */
static void
append_after_row_head(AuditRecord *rec, HeapTuple oldtup, TupleDesc desc)
{
	bool		isnull;
	bool		hnull;
	Datum		user_id = col(oldtup, desc, COL_USER_ID, &isnull);
	Datum		head = col(oldtup, desc, COL_AUDIT_HEAD, &hnull);

	if (hnull || !ChainHashFromBytea(head, rec->prev_hash))
		load_chain_head(rec, user_id);
	else
		rec->has_prev = true;
	seal_row(rec, user_id, false, NULL);
	append_audit(rec, user_id);
}

static HeapTuple
guard_update(TriggerData *trigdata, TupleDesc desc)
{
	HeapTuple	oldtup = trigdata->tg_trigtuple;
	HeapTuple	newtup = trigdata->tg_newtuple;
	bool		isnull;
	bool		onull,
				nnull;
	UserStatus	from;
	UserStatus	to;
	const WriteFrame *w = WriteCtxCurrent();
	bool		lifecycle = w && w->lifecycle_path;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const char *status_reason = NULL;
	AuditRecord rec;
	int			cols[8];
	Datum		values[8];
	bool		nulls[8];
	int			n = 0;
	HeapTuple	result;
	Datum		o,
				nv;

	require_identity(newtup, desc);
	from = UserlifeStatusFromDatum(col(oldtup, desc, COL_STATUS, &isnull));
	to = UserlifeStatusFromDatum(col(newtup, desc, COL_STATUS, &isnull));
	refuse_identity_change(desc, oldtup, newtup);

	if (from != to)
	{
		status_reason = check_status_change(desc, oldtup, newtup, from, to);
		cols[n] = attnums[COL_STATUS_REASON];
		values[n] = status_reason ? CStringGetTextDatum(status_reason) : (Datum) 0;
		nulls[n++] = (status_reason == NULL);
		cols[n] = attnums[COL_STATUS_CHANGED_AT];
		values[n] = TimestampTzGetDatum(now);
		nulls[n++] = false;
		if (to != USER_SUSPENDED)
		{
			cols[n] = attnums[COL_SUSPENDED_UNTIL];
			values[n] = (Datum) 0;
			nulls[n++] = true;
		}
	}

	/* verified attributes are read-only once verified, until re-enrollment */
	o = col(oldtup, desc, COL_VERIFIED_AT, &onull);
	if (!onull && !lifecycle)
	{
		o = col(oldtup, desc, COL_VERIFIED_ATTRIBUTES, &onull);
		nv = col(newtup, desc, COL_VERIFIED_ATTRIBUTES, &nnull);
		if (!values_equal(desc, attnums[COL_VERIFIED_ATTRIBUTES], o, onull, nv, nnull))
			ereport_as_caller(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("verified attributes of %s cannot be changed", row_user_name(oldtup, desc)),
					 errdetail("The user was verified; its verified attributes stay as recorded until re-enrollment.")));
	}

	if (n > 0)
		newtup = heap_modify_tuple_by_cols(newtup, desc, n, cols, values, nulls);

	memset(&rec, 0, sizeof(rec));
	if (diff_rows(&rec, desc, oldtup, newtup) == 0)
		return NULL;			/* nothing changed: suppress the update */

	fill_identity(&rec, newtup, desc,
				  (w && w->action) ? w->action :
				  infer_action(desc, oldtup, newtup, from, to));
	if (from != to)
		rec.reason = status_reason;
	else
		rec.reason = UserlifeEffectiveReason(w ? w->reason : NULL);

	append_after_row_head(&rec, oldtup, desc);

	n = 0;
	cols[n] = attnums[COL_VERSION];
	values[n] = Int64GetDatum(DatumGetInt64(col(oldtup, desc, COL_VERSION, &isnull)) + 1);
	nulls[n++] = false;
	cols[n] = attnums[COL_UPDATED_AT];
	values[n] = TimestampTzGetDatum(now);
	nulls[n++] = false;
	cols[n] = attnums[COL_AUDIT_HEAD];
	values[n] = PointerGetDatum(ChainHashToBytea(rec.row_hash));
	nulls[n++] = false;
	result = heap_modify_tuple_by_cols(newtup, desc, n, cols, values, nulls);
	if (SearchDocumentChanged(desc, oldtup, result))
		SearchWriteDocument(trigdata->tg_relation, result, true);
	return result;
}

static HeapTuple
guard_delete(TriggerData *trigdata, TupleDesc desc)
{
	HeapTuple	oldtup = trigdata->tg_trigtuple;
	const WriteFrame *w = WriteCtxCurrent();
	AuditRecord rec;
	bool		isnull;

	if (DatumGetBool(col(oldtup, desc, COL_LEGAL_HOLD, &isnull)))
	{
		WriteCtxReportAsCaller();
		RetentionRefuseLegalHold(row_user_name(oldtup, desc));
	}

	memset(&rec, 0, sizeof(rec));
	fill_identity(&rec, oldtup, desc, (w && w->action) ? w->action : "erase");
	rec.reason = UserlifeEffectiveReason(w ? w->reason : NULL);
	rec.nchanged = 0;
	rec.old_values = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	rec.new_values = rec.old_values;

	append_after_row_head(&rec, oldtup, desc);
	SearchDropDocument(trigdata->tg_relation, oldtup);
	return oldtup;
}

/*
 * users_guard: BEFORE ROW trigger on userlife.users for INSERT, UPDATE and
 * DELETE.  Returns the row to write, or NULL to skip an update that
 * changes nothing.
 */
Datum
userlife_users_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = check_trigger_call(fcinfo, "userlife.users_guard");
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	HeapTuple	result;

	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		elog(ERROR, "userlife.users_guard must be fired before the change");
	load_attnums(trigdata->tg_relation);
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		result = guard_insert(trigdata, desc);
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		result = guard_update(trigdata, desc);
	else
		result = guard_delete(trigdata, desc);
	return PointerGetDatum(result);
}

/*
 * users_audit_insert: AFTER INSERT trigger writing the registration's audit
 * row, the one the BEFORE trigger sealed; a row whose user_id was changed
 * in between (a DBA's later BEFORE trigger) is sealed here instead.
 */
Datum
userlife_users_audit_insert(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = check_trigger_call(fcinfo, "userlife.users_audit_insert");
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	HeapTuple	newtup = trigdata->tg_trigtuple;
	const WriteFrame *w = WriteCtxCurrent();
	AuditRecord rec;
	bool		isnull;
	Datum		user_id;
	bool		reenroll;

	load_attnums(trigdata->tg_relation);
	user_id = col(newtup, desc, COL_USER_ID, &isnull);
	if (!write_registration(user_id))
	{
		reenroll = w && w->action && strcmp(w->action, "reenroll") == 0;
		memset(&rec, 0, sizeof(rec));
		diff_rows(&rec, desc, NULL, newtup);
		fill_identity(&rec, newtup, desc, reenroll ? "reenroll" : "register");
		rec.reason = UserlifeEffectiveReason(w ? w->reason : NULL);
		if (reenroll)
			load_chain_head(&rec, user_id);
		seal_row(&rec, user_id, !reenroll, NULL);
		append_audit(&rec, user_id);
	}
	SearchWriteDocument(trigdata->tg_relation, newtup, false);
	return PointerGetDatum(NULL);
}

/*------------------------------------------------------------------------
 * Reading the audit
 *------------------------------------------------------------------------
 */

/*
 * find_user_id
 *		The user_id of (partner, external_id): from users, else from the
 *		tombstone of a purged user.  Raises P0002 when neither exists.
 */
static Datum
find_user_id(const char *partner, const char *external_id)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;

	UserlifeRunForUser(&plan,
					   "SELECT u.user_id FROM userlife.users u "
					   "WHERE u.partner = $1 AND u.external_id = $2 "
					   "UNION ALL "
					   "SELECT t.user_id FROM userlife.tombstones t "
					   "WHERE t.partner = $1 "
					   "AND t.external_id_digest = pg_catalog.sha256(pg_catalog.convert_to($2, 'UTF8')) "
					   "LIMIT 1",
					   partner, external_id, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("%s does not exist", UserlifeUserName(partner, external_id))));
	return SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							 false, 16);
}

/* user_history(partner, external_id): the user's audit rows, oldest first */
Datum
userlife_user_history(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	UserCall	call = AccessUserArgs(fcinfo);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];

	UserlifeCheckPartnerId(call.partner);
	InitMaterializedSRF(fcinfo, 0);
	AccessEnter(&call.scope, ACCESS_COMPLIANCE, call.partner);
	values[0] = find_user_id(call.partner, call.external_id);
	UserlifeRunCustom(&plan,
					  "SELECT a FROM userlife.audit a WHERE a.user_id = $1 ORDER BY a.audit_id",
					  1, argtypes, values, NULL, true, 0, SPI_OK_SELECT);
	return AccessLeaveWithRows(&call.scope, rsinfo);
}

/*
 * verify_audit(partner, external_id): whether the user's audit chain is
 * whole (chain.c says what that takes).
 */
Datum
userlife_verify_audit(PG_FUNCTION_ARGS)
{
	UserCall	call = AccessUserArgs(fcinfo);
	bool		ok;

	AccessEnterUser(&call, ACCESS_COMPLIANCE);
	ok = ChainVerifyUser(find_user_id(call.partner, call.external_id));
	AccessLeave(&call.scope);
	PG_RETURN_BOOL(ok);
}
