/*-------------------------------------------------------------------------
 *
 * append.c
 *		Writes an audit row and its event straight into the heap and the
 *		indexes of userlife.audit and userlife.events, without planning or
 *		starting an executor for an INSERT statement.
 *
 * The users triggers append two rows for every change (and a registration
 * a third, its search document in user_search); doing that through
 * SPI costs an executor start-up, a snapshot and a command counter bump per
 * change, which is most of the difference to a single SQL statement doing
 * the same writes.  Here the rows are formed from the values the trigger
 * already has, the identity values are taken from the columns' sequences,
 * and table_tuple_insert plus ExecInsertIndexTuples do what the executor's
 * INSERT does for a table without triggers, rules or extra constraints.
 *
 * That last condition is checked, not assumed: when a DBA has added an
 * INSERT trigger, a rule, a CHECK constraint, a column, or a NOT NULL that
 * a value would violate, AppendAuditAndEvent returns false and the caller
 * uses its SQL statement instead, which runs all of them.  The check runs
 * once per relcache invalidation of either table.
 *
 * Reading the newest row_hash of a user (the chain head, needed when the
 * users row does not carry it yet) is likewise one backward probe of
 * audit_user_idx, while that index is (user_id, audit_id) as installed;
 * and whether an external_id has a tombstone, one probe of
 * tombstones_pkey.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "userlife.h"
#include "append.h"
#include "chain.h"
#include "catalog.h"

typedef struct ColumnShape
{
	const char *name;
	Oid			type;
} ColumnShape;

static const ColumnShape audit_shape[AUDIT_NATTS] = {
	{"audit_id", INT8OID}, {"at", TIMESTAMPTZOID}, {"partner", TEXTOID},
	{"user_id", UUIDOID}, {"external_id", TEXTOID}, {"action", TEXTOID},
	{"db_role", TEXTOID}, {"actor", TEXTOID}, {"reason", TEXTOID},
	{"changed_fields", TEXTARRAYOID}, {"old_values", JSONBOID},
	{"new_values", JSONBOID}, {"txid", XID8OID}, {"prev_hash", BYTEAOID},
	{"row_hash", BYTEAOID}, {"redacted_fields", TEXTARRAYOID},
	{"hash_version", INT2OID}
};

static const ColumnShape events_shape[EVENTS_NATTS] = {
	{"event_id", INT8OID}, {"at", TIMESTAMPTZOID}, {"partner", TEXTOID},
	{"user_id", UUIDOID}, {"audit_id", INT8OID}, {"event_type", TEXTOID},
	{"payload", JSONBOID}, {"claimed_at", TIMESTAMPTZOID},
	{"delivered_at", TIMESTAMPTZOID}
};

/* the CHECK constraints of the install script; their conditions hold by construction */
static const char *const known_checks[] = {"audit_action_known", "audit_hash_version_known",
	"events_type_known", "audit_keys_length"};

static const ColumnShape search_shape[3] = {
	{"user_id", UUIDOID}, {"partner", TEXTOID}, {"document", TEXTOID}
};

static const ColumnShape keys_shape[2] = {
	{"user_id", UUIDOID}, {"digest_key", BYTEAOID}
};

typedef struct AppendTarget
{
	const char *relname;
	const ColumnShape *shape;
	int			natts;
	bool		has_identity;	/* the first column is an identity */
	Oid			relid;			/* InvalidOid until looked up */
	Oid			identity_seq;
	bool		checked;		/* direct_ok is up to date */
	bool		direct_ok;
} AppendTarget;

/* audit_user_idx, for reading a user's newest audit row */
static Oid	head_index = InvalidOid;
static bool head_index_checked = false;

/* tombstones_pkey, for probing an external_id's tombstone */
static Oid	tombstone_index = InvalidOid;
static Oid	tombstone_relid = InvalidOid;
static bool tombstone_index_checked = false;

static AppendTarget audit_target = {"audit", audit_shape, AUDIT_NATTS, true, InvalidOid, InvalidOid, false, false};
static AppendTarget events_target = {"events", events_shape, EVENTS_NATTS, true, InvalidOid, InvalidOid, false, false};
static AppendTarget search_target = {"user_search", search_shape, 3, false, InvalidOid, InvalidOid, false, false};
static AppendTarget keys_target = {"audit_keys", keys_shape, 2, false, InvalidOid, InvalidOid, false, false};

/*
 * forget_target: the table is looked up by name again, not only checked
 * again: an invalidation may mean it was dropped (DROP EXTENSION, then
 * CREATE EXTENSION makes a table of the same name with another OID).
 */
static void
forget_target(AppendTarget *t, Oid relid)
{
	if (relid == InvalidOid || relid == t->relid)
	{
		t->checked = false;
		t->relid = InvalidOid;
	}
}

static void
reset_targets(Datum arg, Oid relid)
{
	/* before forget_target clears the audit table's OID */
	if (relid == InvalidOid || relid == head_index || relid == audit_target.relid)
	{
		head_index_checked = false;
		head_index = InvalidOid;
	}
	forget_target(&audit_target, relid);
	forget_target(&events_target, relid);
	forget_target(&search_target, relid);
	forget_target(&keys_target, relid);
	if (relid == InvalidOid || relid == tombstone_index || relid == tombstone_relid)
	{
		tombstone_index_checked = false;
		tombstone_index = InvalidOid;
		tombstone_relid = InvalidOid;
	}
}

void
AppendInit(void)
{
	CacheRegisterRelcacheCallback(reset_targets, (Datum) 0);
}

static bool
known_check(const char *name)
{
	int			i;

	for (i = 0; i < (int) lengthof(known_checks); i++)
		if (strcmp(known_checks[i], name) == 0)
			return true;
	return false;
}

/* shape_allows_direct: the table is as the install script made it */
static bool
shape_allows_direct(Relation rel, const AppendTarget *t)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trig = rel->trigdesc;
	int			i;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhasrules)
		return false;
	if (trig != NULL &&
		(trig->trig_insert_before_row || trig->trig_insert_after_row ||
		 trig->trig_insert_instead_row || trig->trig_insert_before_statement ||
		 trig->trig_insert_after_statement || trig->trig_insert_new_table))
		return false;
	if (desc->natts != t->natts)
		return false;
	for (i = 0; i < t->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated != '\0' ||
			att->atttypid != t->shape[i].type ||
			strcmp(NameStr(att->attname), t->shape[i].name) != 0)
			return false;
		/* only the first column is an identity, and it is, where one is */
		if ((i == 0 && t->has_identity) != (att->attidentity != '\0'))
			return false;
	}
	if (desc->constr != NULL)
	{
		for (i = 0; i < desc->constr->num_check; i++)
			if (!known_check(desc->constr->check[i].ccname))
				return false;
	}
	return true;
}

/* open_target: opens the table for insertion; false when it must go through SQL */
static bool
open_target(AppendTarget *t, Relation *rel)
{
	Oid			relid = t->relid;

	if (!OidIsValid(relid))
		relid = UserlifeRelid(t->relname);
	*rel = try_relation_open(relid, RowExclusiveLock);
	if (*rel == NULL)
	{
		/* dropped after it was looked up (a concurrent DROP EXTENSION) */
		relid = UserlifeRelid(t->relname);
		*rel = table_open(relid, RowExclusiveLock);
	}

	/*
	 * Taking the lock reads pending invalidations, which may have cleared
	 * t->relid and t->checked meanwhile: the relation now open is the truth.
	 */
	if (t->relid != relid)
	{
		t->relid = relid;
		t->checked = false;
	}
	if (!t->checked)
	{
		t->direct_ok = shape_allows_direct(*rel, t);
		if (t->direct_ok && t->has_identity)
			t->identity_seq = getIdentitySequence(relid, 1, false);
		t->checked = true;
	}
	if (!t->direct_ok)
	{
		table_close(*rel, NoLock);
		*rel = NULL;
		return false;
	}
	return true;
}

/* nulls_allowed: no NULL goes into a NOT NULL column (else SQL reports it) */
static bool
nulls_allowed(Relation rel, const bool *nulls)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	for (i = 0; i < desc->natts; i++)
		if (nulls[i] && TupleDescAttr(desc, i)->attnotnull)
			return false;
	return true;
}

/* insert_row: heap insert plus index entries, as the executor's INSERT does */
static void
insert_row(EState *estate, Relation rel, Datum *values, bool *nulls)
{
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot;
	HeapTuple	tuple;

	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsHeapTuple);
	tuple = heap_form_tuple(RelationGetDescr(rel), values, nulls);
	ExecStoreHeapTuple(tuple, slot, true);
	table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, NULL);
	if (rri->ri_NumIndices > 0)
		list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));
	ExecDropSingleTupleTableSlot(slot);
	ExecCloseIndices(rri);
	ResetPerTupleExprContext(estate);
}

/*
 * AppendAuditAndEvent
 *		Inserts the audit row and its event.  The values are in the tables'
 *		column order; the identity columns (audit_id, event_id), the
 *		event's audit_id and its payload, payload(audit_id, payload_arg),
 *		are filled in here.  Returns false, having written nothing, when
 *		the tables no longer allow writing them directly.
 */
bool
AppendAuditAndEvent(Datum *audit_values, bool *audit_nulls,
					Datum *event_values, bool *event_nulls,
					AppendPayloadFn payload, const void *payload_arg)
{
	Relation	audit_rel;
	Relation	events_rel;
	EState	   *estate;
	int64		audit_id;

	if (!open_target(&audit_target, &audit_rel))
		return false;
	if (!open_target(&events_target, &events_rel))
	{
		table_close(audit_rel, NoLock);
		return false;
	}
	audit_nulls[AUDIT_ATT_AUDIT_ID] = false;
	event_nulls[EVENTS_ATT_EVENT_ID] = false;
	event_nulls[EVENTS_ATT_AUDIT_ID] = false;
	event_nulls[EVENTS_ATT_PAYLOAD] = false;
	if (!nulls_allowed(audit_rel, audit_nulls) || !nulls_allowed(events_rel, event_nulls))
	{
		table_close(events_rel, NoLock);
		table_close(audit_rel, NoLock);
		return false;
	}

	audit_id = nextval_internal(audit_target.identity_seq, false);
	audit_values[AUDIT_ATT_AUDIT_ID] = Int64GetDatum(audit_id);
	estate = CreateExecutorState();
	insert_row(estate, audit_rel, audit_values, audit_nulls);

	event_values[EVENTS_ATT_EVENT_ID] = Int64GetDatum(nextval_internal(events_target.identity_seq, false));
	event_values[EVENTS_ATT_AUDIT_ID] = Int64GetDatum(audit_id);
	event_values[EVENTS_ATT_PAYLOAD] = payload(audit_id, payload_arg);
	insert_row(estate, events_rel, event_values, event_nulls);
	FreeExecutorState(estate);

	table_close(events_rel, NoLock);
	table_close(audit_rel, NoLock);
	return true;
}

/* append_plain_row: one row into a table without identity; false when it must go through SQL */
static bool
append_plain_row(AppendTarget *t, Datum *values, bool *nulls)
{
	Relation	rel;
	EState	   *estate;

	if (!open_target(t, &rel))
		return false;
	estate = CreateExecutorState();
	insert_row(estate, rel, values, nulls);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	return true;
}

/*
 * AppendSearchDocument
 *		Inserts a user's search document into userlife.user_search.  Returns
 *		false, having written nothing, when the table no longer allows
 *		writing it directly.
 */
bool
AppendSearchDocument(Datum user_id, Datum partner, Datum document)
{
	Datum		values[3] = {user_id, partner, document};
	bool		nulls[3] = {false, false, false};

	return append_plain_row(&search_target, values, nulls);
}

/*
 * AppendAuditKey
 *		Inserts a new user's digest key into userlife.audit_keys.  Returns
 *		false, having written nothing, when the table is missing (a database
 *		not yet updated) or no longer allows writing it directly.
 */
bool
AppendAuditKey(Datum user_id, Datum key)
{
	Datum		values[2] = {user_id, key};
	bool		nulls[2] = {false, false};

	return append_plain_row(&keys_target, values, nulls);
}

/*
 * find_key_index
 *		The index called name on the table relid when it is a valid, plain
 *		ascending B-tree on exactly the two columns given, of the types
 *		given; InvalidOid otherwise.
 */
static Oid
find_key_index(const char *name, Oid relid, AttrNumber first, Oid first_type,
			   AttrNumber second, Oid second_type)
{
	Oid			indexid = get_relname_relid(name, get_rel_namespace(relid));
	Relation	index;
	Form_pg_index form;
	bool		usable;

	if (!OidIsValid(indexid))
		return InvalidOid;
	index = index_open(indexid, AccessShareLock);
	form = index->rd_index;
	usable = form->indrelid == relid &&
		index->rd_rel->relam == BTREE_AM_OID &&
		form->indnkeyatts == 2 &&
		form->indkey.values[0] == first && form->indkey.values[1] == second &&
		TupleDescAttr(RelationGetDescr(index), 0)->atttypid == first_type &&
		TupleDescAttr(RelationGetDescr(index), 1)->atttypid == second_type &&
		form->indisvalid && form->indisready &&
		RelationGetIndexPredicate(index) == NIL &&
		RelationGetIndexExpressions(index) == NIL &&
		(index->rd_indoption[0] & INDOPTION_DESC) == 0 &&
		(index->rd_indoption[1] & INDOPTION_DESC) == 0;
	index_close(index, NoLock);
	return usable ? indexid : InvalidOid;
}

/*
 * AppendUserScanBegin
 *		Opens the index indexid of rel (its first column user_id) and begins
 *		a scan of the user's rows in the active snapshot.
 */
void
AppendUserScanBegin(UserScan *us, Relation rel, Oid indexid, Datum user_id)
{
	us->index = index_open(indexid, AccessShareLock);
	us->slot = table_slot_create(rel, NULL);
	ScanKeyInit(&us->key, 1, BTEqualStrategyNumber, F_UUID_EQ, user_id);
	us->scan = index_beginscan(rel, us->index, GetActiveSnapshot(), 1, 0);
	index_rescan(us->scan, &us->key, 1, NULL, 0);
}

/* AppendUserScanEnd: ends the scan and closes the index, releasing lockmode */
void
AppendUserScanEnd(UserScan *us, LOCKMODE lockmode)
{
	index_endscan(us->scan);
	ExecDropSingleTupleTableSlot(us->slot);
	index_close(us->index, lockmode);
}

/*
 * AppendReadChainHead
 *		The row_hash of the user's newest audit row, in the active snapshot
 *		(which shows every change of the user committed before its row was
 *		locked, and this transaction's own), found with one backward probe
 *		of audit_user_idx.  Sets *found; returns false, having read nothing,
 *		when the audit table or the index is not as installed.
 */
bool
AppendReadChainHead(Datum user_id, bytea **row_hash, bool *found)
{
	Relation	audit_rel;
	UserScan	us;

	if (!open_target(&audit_target, &audit_rel))
		return false;
	if (!head_index_checked)
	{
		/* (user_id, audit_id) */
		head_index = find_key_index("audit_user_idx", RelationGetRelid(audit_rel), 4, UUIDOID, 1, INT8OID);
		head_index_checked = true;
	}
	if (!OidIsValid(head_index))
	{
		table_close(audit_rel, NoLock);
		return false;
	}

	AppendUserScanBegin(&us, audit_rel, head_index, user_id);
	*found = false;
	if (index_getnext_slot(us.scan, BackwardScanDirection, us.slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(us.slot, AUDIT_ATT_ROW_HASH + 1, &isnull);

		if (!isnull)
		{
			*row_hash = DatumGetByteaPCopy(d);
			*found = true;
		}
	}
	AppendUserScanEnd(&us, NoLock);
	table_close(audit_rel, NoLock);
	return true;
}

/*
 * AppendTombstoneExists
 *		Whether the external_id of the partner has a tombstone, in a fresh
 *		snapshot: one written by a transaction that committed a moment ago
 *		counts.  Sets *exists; returns false, having read nothing, when
 *		tombstones_pkey is not as installed.
 */
bool
AppendTombstoneExists(const char *partner, const char *external_id, bool *exists)
{
	Relation	rel;
	Relation	index;
	IndexScanDesc scan;
	ScanKeyData keys[2];
	TupleTableSlot *slot;
	bytea	   *digest_datum;
	Snapshot	snapshot;

	if (!tombstone_index_checked)
	{
		/* (partner, external_id_digest); set together, after the lookup's own invalidations */
		Oid			relid = UserlifeRelid("tombstones");
		Oid			indexid = find_key_index("tombstones_pkey", relid, 1, TEXTOID, 2, BYTEAOID);

		tombstone_relid = relid;
		tombstone_index = indexid;
		tombstone_index_checked = true;
	}
	/* the digest is of the UTF-8 bytes; other server encodings go through SQL */
	if (!OidIsValid(tombstone_index) || GetDatabaseEncoding() != PG_UTF8)
		return false;

	digest_datum = ChainSha256(external_id, strlen(external_id));

	rel = table_open(tombstone_relid, AccessShareLock);
	index = index_open(tombstone_index, AccessShareLock);
	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], F_TEXTEQ, CStringGetTextDatum(partner));
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[1], F_BYTEAEQ, PointerGetDatum(digest_datum));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, index, snapshot, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	*exists = index_getnext_slot(scan, ForwardScanDirection, slot);
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	return true;
}
