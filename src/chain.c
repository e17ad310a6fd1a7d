/*-------------------------------------------------------------------------
 *
 * chain.c
 *		The per-user audit hash chain: the digests of values, the row hash,
 *		the per-user digest keys, verification, redaction, and the guard
 *		that keeps the audit append-only.
 *
 * Row hash.  row_hash = SHA-256 over the hash version (from version 2),
 * prev_hash, the row's identifying columns and, per changed field, its
 * name and a digest of its old and of its new value.  Hashing digests,
 * not values, is what lets redaction replace a personal value by its
 * digest and leave the chain verifiable.
 *
 * Keyed digests (version 2).  The digest of a personal value (display
 * name, e-mail, external_id, metadata, verified attributes) is
 * HMAC-SHA256 under the user's digest key, a random key kept in
 * userlife.audit_keys, which no role but the extension owner reads.
 * Erasure replaces each personal value by its keyed digest and deletes
 * the key: the chain still verifies, and a guessed value can no longer be
 * confirmed by hashing it.  Other values (status, flags, dates) are not
 * personal and stay in clear; their digests are plain SHA-256.
 *
 * Columns outside the hash are checked by rule.  Which fields are
 * redacted follows from the chain itself: every row up to the user's last
 * purge or erase row has exactly its non-null personal fields redacted
 * and no external_id; every row after it none redacted and the
 * external_id the user had after that change.  The newest row hash is
 * kept on the users row, or on the tombstone of a purged user, so a
 * removed tail is detected.
 *
 * Upgrades.  Rows written before 0.3.0 are version 1 and verify as they
 * were written.  Redacting a chain that verifies rewrites all its rows as
 * version 2 (re-seals it), so no unkeyed digest of a personal value stays
 * behind; a chain that does not verify is redacted but not re-sealed, and
 * keeps failing verification.
 *
 * Memory: rows are read and written through SPI, inside the caller's SPI
 * connection; the only static state is plans, the cached relation whose
 * columns decide the hash version, and the redaction flag of this backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <string.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "userlife.h"
#include "append.h"
#include "catalog.h"
#include "chain.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_audit_guard);

/*
 * Personal fields.  Hash version 2 adds tags, which partners fill with
 * labels about the person; version 1 rows keep the list they were
 * redacted by.  Reasons are the operators' words, recorded in clear.
 */
static const char *const personal_fields[] = {
	"display_name", "email", "external_id", "metadata", "verified_attributes", "tags"
};
#define V1_PERSONAL_FIELDS 5

/* the audit table whose columns decided write_version, and that version */
static Oid	version_relid = InvalidOid;
static int16 write_version = 0;

/* set only while ChainRedactUser rewrites a user's rows */
static bool redaction_in_progress = false;

/* one audit row read back, with the hash stored on it */
typedef struct ChainRow
{
	AuditRecord rec;
	bool		stored_ok;
	uint8		stored[CHAIN_HASH_LEN];
} ChainRow;

static void reset_redaction(XactEvent event, void *arg);
static void reset_redaction_subxact(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);

void
ChainInit(void)
{
	CatalogForgetOnChange(&version_relid);
	RegisterXactCallback(reset_redaction, NULL);
	RegisterSubXactCallback(reset_redaction_subxact, NULL);
}

static void
reset_redaction(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT)
		redaction_in_progress = false;
}

static void
reset_redaction_subxact(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		redaction_in_progress = false;
}

/*
 * ChainWriteVersion
 *		The hash version new rows get: 2 once the audit table has its
 *		hash_version column (0.3.0), 1 in a database not yet updated.
 */
int16
ChainWriteVersion(void)
{
	if (!OidIsValid(version_relid))
	{
		Oid			relid = UserlifeRelid("audit");

		write_version = (get_attnum(relid, "hash_version") != InvalidAttrNumber) ? CHAIN_V2 : CHAIN_V1;
		version_relid = relid;
	}
	return write_version;
}

/* is_personal: whether the field (len bytes) holds personal data in the hash version */
static bool
is_personal(const char *field, int len, int16 version)
{
	int			n = version >= CHAIN_V2 ? (int) lengthof(personal_fields) : V1_PERSONAL_FIELDS;
	int			i;

	for (i = 0; i < n; i++)
		if ((int) strlen(personal_fields[i]) == len && strncmp(personal_fields[i], field, len) == 0)
			return true;
	return false;
}

/*------------------------------------------------------------------------
 * Digests
 *------------------------------------------------------------------------
 */
/*
 * The digests of one row share one SHA-256 and one HMAC context: creating
 * a context costs more than hashing a few hundred bytes.  A context left
 * behind by an error is released with the resource owner.
 */
typedef struct DigestContexts
{
	pg_cryptohash_ctx *sha;
	pg_hmac_ctx *hmac;
} DigestContexts;

static void
sha256_bytes(DigestContexts *dc, const void *data, size_t len, uint8 *out)
{
	pg_cryptohash_ctx *ctx = dc ? dc->sha : pg_cryptohash_create(PG_SHA256);

	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, data, len) < 0 ||
		pg_cryptohash_final(ctx, out, CHAIN_HASH_LEN) < 0)
		elog(ERROR, "could not compute SHA-256: %s", pg_cryptohash_error(ctx));
	if (dc == NULL)
		pg_cryptohash_free(ctx);
}

/* keyed_digest: HMAC-SHA256(key, field || NUL || text), so equal values of two fields differ */
static void
keyed_digest(DigestContexts *dc, const uint8 *key, const char *field, const char *text, uint8 *out)
{
	pg_hmac_ctx *ctx = dc ? dc->hmac : pg_hmac_create(PG_SHA256);

	if (pg_hmac_init(ctx, key, CHAIN_KEY_LEN) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) field, strlen(field) + 1) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) text, strlen(text)) < 0 ||
		pg_hmac_final(ctx, out, CHAIN_HASH_LEN) < 0)
		elog(ERROR, "could not compute HMAC-SHA256: %s", pg_hmac_error(ctx));
	if (dc == NULL)
		pg_hmac_free(ctx);
}

/* value_text: the JSON text of one value, which is what its digest covers */
static char *
value_text(JsonbValue *v)
{
	Jsonb	   *scalar;

	if (v->type == jbvBinary)
		return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	scalar = JsonbValueToJsonb(v);
	return JsonbToCString(NULL, &scalar->root, VARSIZE(scalar));
}

static bool
is_hex_digest(const JsonbValue *v)
{
	int			i;

	if (v->type != jbvString || v->val.string.len != CHAIN_HASH_LEN * 2)
		return false;
	for (i = 0; i < CHAIN_HASH_LEN * 2; i++)
	{
		char		c = v->val.string.val[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

/*
 * value_digest
 *		The digest of values[field] as the row hash covers it; false when it
 *		cannot be had (a redacted value that is not a digest, a keyed value
 *		without the user's key).  A missing key digests as the empty string,
 *		JSON null as its text: neither holds personal data.
 */
static bool
value_digest(DigestContexts *dc, const AuditRecord *rec, Jsonb *values, const char *field,
			 uint8 *out)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&values->root, field, strlen(field), NULL);

	if (v == NULL)
	{
		sha256_bytes(dc, "", 0, out);
		return true;
	}
	if (v->type != jbvNull && is_personal(field, strlen(field), rec->version))
	{
		if (rec->redacted_form)
		{
			if (!is_hex_digest(v))
				return false;
			hex_decode(v->val.string.val, CHAIN_HASH_LEN * 2, (char *) out);
			return true;
		}
		if (rec->version >= CHAIN_V2)
		{
			if (rec->key == NULL)
				return false;
			if (dc->hmac == NULL)
				dc->hmac = pg_hmac_create(PG_SHA256);
			keyed_digest(dc, rec->key, field, value_text(v), out);
			return true;
		}
	}
	{
		char	   *text = value_text(v);

		sha256_bytes(dc, text, strlen(text), out);
	}
	return true;
}

/* ChainNeedsKey: whether hashing rec as written needs the user's digest key */
bool
ChainNeedsKey(const AuditRecord *rec)
{
	int			i;

	if (rec->version < CHAIN_V2)
		return false;
	for (i = 0; i < rec->nchanged; i++)
		if (is_personal(rec->changed[i], strlen(rec->changed[i]), rec->version))
			return true;
	return false;
}

/* length-prefixed, so that no two different field lists hash alike */
static void
hash_append_str(StringInfo buf, const char *s)
{
	int32		len = s ? (int32) strlen(s) : -1;

	appendBinaryStringInfo(buf, (char *) &len, sizeof(len));
	if (s)
		appendBinaryStringInfo(buf, s, len);
}

/*
 * ChainComputeRowHash
 *		Fills rec->row_hash from prev_hash and the content, in rec->version.
 *		Returns false when a value's digest cannot be had.
 */
bool
ChainComputeRowHash(AuditRecord *rec)
{
	StringInfoData buf;
	DigestContexts dc = {pg_cryptohash_create(PG_SHA256), NULL};
	int64		at = rec->at;
	bool		ok = true;
	int			i;

	initStringInfo(&buf);
	if (rec->version >= CHAIN_V2)
		appendBinaryStringInfo(&buf, (char *) &rec->version, sizeof(rec->version));
	if (rec->has_prev)
		appendBinaryStringInfo(&buf, (char *) rec->prev_hash, CHAIN_HASH_LEN);
	hash_append_str(&buf, rec->user_id);
	hash_append_str(&buf, rec->partner);
	hash_append_str(&buf, rec->action);
	hash_append_str(&buf, rec->db_role);
	hash_append_str(&buf, rec->actor);
	hash_append_str(&buf, rec->reason);
	appendBinaryStringInfo(&buf, (char *) &at, sizeof(at));
	appendBinaryStringInfo(&buf, (char *) &rec->txid, sizeof(rec->txid));
	for (i = 0; ok && i < rec->nchanged; i++)
	{
		uint8		d[CHAIN_HASH_LEN];

		hash_append_str(&buf, rec->changed[i]);
		ok = value_digest(&dc, rec, rec->old_values, rec->changed[i], d);
		appendBinaryStringInfo(&buf, (char *) d, CHAIN_HASH_LEN);
		ok = ok && value_digest(&dc, rec, rec->new_values, rec->changed[i], d);
		appendBinaryStringInfo(&buf, (char *) d, CHAIN_HASH_LEN);
	}
	if (ok)
		sha256_bytes(&dc, buf.data, buf.len, rec->row_hash);
	pg_cryptohash_free(dc.sha);
	if (dc.hmac)
		pg_hmac_free(dc.hmac);
	pfree(buf.data);
	return ok;
}

bytea *
ChainHashToBytea(const uint8 *h)
{
	bytea	   *b = palloc(VARHDRSZ + CHAIN_HASH_LEN);

	SET_VARSIZE(b, VARHDRSZ + CHAIN_HASH_LEN);
	memcpy(VARDATA(b), h, CHAIN_HASH_LEN);
	return b;
}

/* ChainSha256: the SHA-256 of len bytes, as a bytea */
bytea *
ChainSha256(const void *data, size_t len)
{
	uint8		h[CHAIN_HASH_LEN];

	sha256_bytes(NULL, data, len, h);
	return ChainHashToBytea(h);
}

bool
ChainHashFromBytea(Datum d, uint8 *h)
{
	bytea	   *b = DatumGetByteaPP(d);

	if (VARSIZE_ANY_EXHDR(b) != CHAIN_HASH_LEN)
		return false;
	memcpy(h, VARDATA_ANY(b), CHAIN_HASH_LEN);
	return true;
}

/*------------------------------------------------------------------------
 * Digest keys
 *------------------------------------------------------------------------
 */

/*
 * ChainNewUserKey
 *		Fills key with a new random digest key, not yet stored.
 */
void
ChainNewUserKey(uint8 *key)
{
	if (!pg_strong_random(key, CHAIN_KEY_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random digest key")));
}

/*
 * ChainStoreUserKey
 *		Stores key as the user's digest key, replacing any.
 */
void
ChainStoreUserKey(Datum user_id, const uint8 *key)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {UUIDOID, BYTEAOID};
	Datum		values[2];

	values[0] = user_id;
	values[1] = PointerGetDatum(ChainHashToBytea(key));
	if (AppendAuditKey(values[0], values[1]))
		return;
	UserlifeSpiConnect();
	UserlifeRun(&plan,
				"INSERT INTO userlife.audit_keys AS k (user_id, digest_key) VALUES ($1, $2) "
				"ON CONFLICT (user_id) DO UPDATE SET digest_key = excluded.digest_key",
				2, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	UserlifeSpiFinish();
}

/*
 * ChainCreateUserKey
 *		Makes a new random digest key for the user, stores it (replacing
 *		any) and copies it to key.
 */
void
ChainCreateUserKey(Datum user_id, uint8 *key)
{
	ChainNewUserKey(key);
	ChainStoreUserKey(user_id, key);
}

/*
 * ChainUserKey
 *		The user's digest key, in memory of the caller's context; NULL when
 *		the user has none (registered before 0.3.0, or erased).
 */
const uint8 *
ChainUserKey(Datum user_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {user_id};
	uint8	   *key = NULL;
	MemoryContext caller_cxt = CurrentMemoryContext;

	UserlifeSpiConnect();
	UserlifeRun(&plan, "SELECT k.digest_key FROM userlife.audit_keys k WHERE k.user_id = $1",
				1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		bytea	   *b = isnull ? NULL : DatumGetByteaPP(d);

		if (b != NULL && VARSIZE_ANY_EXHDR(b) == CHAIN_KEY_LEN)
		{
			key = MemoryContextAlloc(caller_cxt, CHAIN_KEY_LEN);
			memcpy(key, VARDATA_ANY(b), CHAIN_KEY_LEN);
		}
	}
	UserlifeSpiFinish();
	return key;
}

/*------------------------------------------------------------------------
 * Reading a chain back
 *------------------------------------------------------------------------
 */
static char **
text_array(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *enulls;
	char	  **out;
	int			k;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &enulls, n);
	out = palloc(sizeof(char *) * (*n + 1));
	for (k = 0; k < *n; k++)
		out[k] = enulls[k] ? "" : TextDatumGetCString(elems[k]);
	return out;
}

/* row_from_tuple: one audit row of load_rows' query */
static bool
row_from_tuple(ChainRow *row, HeapTuple tup, TupleDesc desc)
{
	AuditRecord *rec = &row->rec;
	bool		isnull;
	Datum		d;
	char	  **changed;
	int			k;

	memset(row, 0, sizeof(*row));
	rec->audit_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	rec->at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
	rec->partner = SPI_getvalue(tup, desc, 3);
	rec->user_id = SPI_getvalue(tup, desc, 4);
	rec->external_id = SPI_getvalue(tup, desc, 5);
	rec->action = SPI_getvalue(tup, desc, 6);
	rec->db_role = SPI_getvalue(tup, desc, 7);
	rec->actor = SPI_getvalue(tup, desc, 8);
	rec->reason = SPI_getvalue(tup, desc, 9);
	changed = text_array(SPI_getbinval(tup, desc, 10, &isnull), &rec->nchanged);
	if (rec->nchanged > CHAIN_MAX_FIELDS)
		return false;
	for (k = 0; k < rec->nchanged; k++)
		rec->changed[k] = changed[k];
	rec->old_values = DatumGetJsonbP(SPI_getbinval(tup, desc, 11, &isnull));
	rec->new_values = DatumGetJsonbP(SPI_getbinval(tup, desc, 12, &isnull));
	rec->txid = (uint64) DatumGetInt64(SPI_getbinval(tup, desc, 13, &isnull));
	d = SPI_getbinval(tup, desc, 14, &isnull);
	rec->has_prev = !isnull;
	if (!isnull && !ChainHashFromBytea(d, rec->prev_hash))
		return false;
	d = SPI_getbinval(tup, desc, 15, &isnull);
	row->stored_ok = !isnull && ChainHashFromBytea(d, row->stored);
	rec->redacted = text_array(SPI_getbinval(tup, desc, 16, &isnull), &rec->nredacted);
	rec->version = DatumGetInt16(SPI_getbinval(tup, desc, 17, &isnull));
	return row->stored_ok && (rec->version == CHAIN_V1 || rec->version == CHAIN_V2);
}

/*
 * load_rows
 *		The user's audit rows, oldest first, in SPI memory, read in a new
 *		snapshot so that the purge row just written is among them.  Sets *n; sets
 *		*well_formed false when a row cannot even be read as a chain row.
 */
static ChainRow *
load_rows(Datum user_id, int *n, bool *well_formed)
{
	static SPIPlanPtr plan_v1 = NULL;
	static SPIPlanPtr plan_v2 = NULL;
	bool		v2 = ChainWriteVersion() >= CHAIN_V2;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {user_id};
	ChainRow   *rows;
	uint64		i;

	UserlifeRun(v2 ? &plan_v2 : &plan_v1, v2 ?
				"SELECT a.audit_id, a.at, a.partner, a.user_id::pg_catalog.text, a.external_id,"
				" a.action, a.db_role, a.actor, a.reason, a.changed_fields, a.old_values,"
				" a.new_values, a.txid::pg_catalog.text::pg_catalog.int8, a.prev_hash, a.row_hash,"
				" a.redacted_fields, a.hash_version "
				"FROM userlife.audit a WHERE a.user_id = $1 ORDER BY a.audit_id" :
				"SELECT a.audit_id, a.at, a.partner, a.user_id::pg_catalog.text, a.external_id,"
				" a.action, a.db_role, a.actor, a.reason, a.changed_fields, a.old_values,"
				" a.new_values, a.txid::pg_catalog.text::pg_catalog.int8, a.prev_hash, a.row_hash,"
				" a.redacted_fields, 1::pg_catalog.int2 "
				"FROM userlife.audit a WHERE a.user_id = $1 ORDER BY a.audit_id",
				1, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	*n = (int) SPI_processed;
	*well_formed = true;
	rows = palloc(sizeof(ChainRow) * (*n + 1));
	for (i = 0; i < SPI_processed; i++)
		if (!row_from_tuple(&rows[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc))
			*well_formed = false;
	return rows;
}

static bool
is_erasure(const AuditRecord *rec)
{
	return strcmp(rec->action, "purge") == 0 || strcmp(rec->action, "erase") == 0;
}

/* last_erasure: index of the last purge or erase row among the first n, or -1 */
static int
last_erasure(const ChainRow *rows, int n)
{
	int			i;

	for (i = n - 1; i >= 0; i--)
		if (is_erasure(&rows[i].rec))
			return i;
	return -1;
}

static bool
value_is_set(Jsonb *values, const char *field)
{
	JsonbValue *v = getKeyJsonValueFromContainer(&values->root, field, strlen(field), NULL);

	return v != NULL && v->type != jbvNull;
}

/* redacted_set_ok: the row's redacted fields are exactly its set personal fields */
static bool
redacted_set_ok(const AuditRecord *rec)
{
	int			expected = 0;
	int			i;
	int			k;

	for (i = 0; i < rec->nchanged; i++)
	{
		const char *f = rec->changed[i];

		if (!is_personal(f, strlen(f), rec->version) ||
			(!value_is_set(rec->old_values, f) && !value_is_set(rec->new_values, f)))
			continue;
		expected++;
		for (k = 0; k < rec->nredacted; k++)
			if (strcmp(rec->redacted[k], f) == 0)
				break;
		if (k == rec->nredacted)
			return false;
	}
	return expected == rec->nredacted;
}

/*
 * form_ok
 *		The rules for the columns the hash does not cover.  A redacted row
 *		has exactly its set personal fields redacted and no external_id; a
 *		row in clear has none redacted and the external_id the user had
 *		after the change, tracked in *current from the changes themselves.
 */
static bool
form_ok(const AuditRecord *rec, bool redacted, char **current)
{
	if (redacted)
		return rec->external_id == NULL && redacted_set_ok(rec);
	if (rec->nredacted != 0)
		return false;
	{
		JsonbValue *v = getKeyJsonValueFromContainer(&rec->new_values->root, "external_id",
													 strlen("external_id"), NULL);

		if (v != NULL && v->type == jbvString)
			*current = pnstrdup(v->val.string.val, v->val.string.len);
	}
	return *current != NULL && rec->external_id != NULL && strcmp(*current, rec->external_id) == 0;
}

/*
 * check_rows
 *		Whether the n rows form a chain: each links to its predecessor,
 *		keeps to form_ok (rows up to redacted_upto redacted, later ones in
 *		clear), and hashes to its stored row_hash; versions never go down.
 *		*external_id gets the external_id tracked through the rows in clear.
 */
static bool
check_rows(ChainRow *rows, int n, const uint8 *key, int redacted_upto, char **external_id)
{
	int			i;

	*external_id = NULL;
	for (i = 0; i < n; i++)
	{
		AuditRecord *rec = &rows[i].rec;

		if (rec->has_prev != (i > 0) ||
			(i > 0 && memcmp(rec->prev_hash, rows[i - 1].stored, CHAIN_HASH_LEN) != 0))
			return false;
		if (i > 0 && rec->version < rows[i - 1].rec.version)
			return false;
		rec->redacted_form = (i <= redacted_upto);
		rec->key = key;
		if (!form_ok(rec, rec->redacted_form, external_id))
			return false;
		if (!ChainComputeRowHash(rec) || memcmp(rec->row_hash, rows[i].stored, CHAIN_HASH_LEN) != 0)
			return false;
	}
	return true;
}

/*
 * ChainVerifyUser
 *		Whether the user's audit chain is whole: see check_rows, and the
 *		newest row is the head kept on the users row or, for a purged user,
 *		on its tombstone.  Runs inside the caller's SPI connection.
 */
bool
ChainVerifyUser(Datum user_id)
{
	static SPIPlanPtr head_plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {user_id};
	ChainRow   *rows;
	int			n;
	bool		well_formed;
	bool		purged;
	bool		head_null;
	uint8		head[CHAIN_HASH_LEN];
	char	   *user_external_id;
	char	   *tracked;
	int			upto;

	UserlifeRun(&head_plan,
				"SELECT u.audit_head, u.external_id, false FROM userlife.users u WHERE u.user_id = $1 "
				"UNION ALL "
				"SELECT t.audit_head, NULL, true FROM userlife.tombstones t WHERE t.user_id = $1 "
				"LIMIT 1",
				1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d = SPI_getbinval(tup, desc, 1, &head_null);

		if (!head_null && !ChainHashFromBytea(d, head))
			return false;
		user_external_id = SPI_getvalue(tup, desc, 2);
		purged = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	}

	rows = load_rows(user_id, &n, &well_formed);
	if (n == 0 || !well_formed)
		return false;
	upto = last_erasure(rows, n);
	if (purged && upto != n - 1)
		return false;
	if (!check_rows(rows, n, purged ? NULL : ChainUserKey(user_id), upto, &tracked))
		return false;

	/*
	 * The newest row is the head.  A user's row lacks it only right after
	 * a (re-)registration made before 0.3.0, whose registration trigger
	 * left it to the first update; since 0.3.0 the row carries it from the
	 * insert on.
	 */
	if (purged)
		return !head_null && memcmp(head, rows[n - 1].stored, CHAIN_HASH_LEN) == 0;
	if (tracked == NULL || user_external_id == NULL || strcmp(tracked, user_external_id) != 0)
		return false;
	if (head_null)
		return n - upto - 1 == 1 && rows[n - 1].rec.version == CHAIN_V1;
	return memcmp(head, rows[n - 1].stored, CHAIN_HASH_LEN) == 0;
}

/*------------------------------------------------------------------------
 * Redaction
 *------------------------------------------------------------------------
 */

/*
 * redact_values
 *		Copy of values in which every set personal field holds its digest in
 *		hex: keyed with key, or plain SHA-256 when key is NULL (a database
 *		not yet updated to 0.3.0, whose chain covers plain digests).
 */
static Jsonb *
redact_values(Jsonb *values, const uint8 *key, int16 version)
{
	JsonbParseState *state = NULL;
	JsonbIterator *it = JsonbIteratorInit(&values->root);
	JsonbIteratorToken tok;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *res = NULL;

	if (!JB_ROOT_IS_OBJECT(values))
		return values;
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT || tok == WJB_END_OBJECT)
		{
			res = pushJsonbValue(&state, tok, NULL);
			continue;
		}
		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &v, true);
		pushJsonbValue(&state, WJB_KEY, &k);
		if (is_personal(k.val.string.val, k.val.string.len, version) && v.type != jbvNull)
		{
			char	   *field = pnstrdup(k.val.string.val, k.val.string.len);
			char	   *text = value_text(&v);
			uint8		d[CHAIN_HASH_LEN];
			char	   *hex = palloc(CHAIN_HASH_LEN * 2 + 1);

			if (key != NULL)
				keyed_digest(NULL, key, field, text, d);
			else
				sha256_bytes(NULL, text, strlen(text), d);
			hex_encode((char *) d, CHAIN_HASH_LEN, hex);
			hex[CHAIN_HASH_LEN * 2] = '\0';
			v.type = jbvString;
			v.val.string.val = hex;
			v.val.string.len = CHAIN_HASH_LEN * 2;
		}
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	return JsonbValueToJsonb(res);
}

/* redacted_list: the set personal fields of a row, as redacted_fields stores them */
static Datum
redacted_list(const AuditRecord *rec)
{
	Datum	   *elems = palloc(sizeof(Datum) * (rec->nchanged + 1));
	int			n = 0;
	int			i;

	for (i = 0; i < rec->nchanged; i++)
	{
		const char *f = rec->changed[i];

		if (is_personal(f, strlen(f), rec->version) &&
			(value_is_set(rec->old_values, f) || value_is_set(rec->new_values, f)))
			elems[n++] = CStringGetTextDatum(f);
	}
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* update_row: writes one redacted (and, with reseal, re-hashed) row back */
static void
update_row(ChainRow *row, bool reseal)
{
	static SPIPlanPtr values_plan = NULL;
	static SPIPlanPtr reseal_plan = NULL;
	Oid			argtypes[7] = {INT8OID, JSONBOID, JSONBOID, TEXTARRAYOID, BYTEAOID, BYTEAOID, INT2OID};
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	AuditRecord *rec = &row->rec;

	values[0] = Int64GetDatum(rec->audit_id);
	values[1] = JsonbPGetDatum(rec->old_values);
	values[2] = JsonbPGetDatum(rec->new_values);
	values[3] = redacted_list(rec);
	if (!reseal)
	{
		UserlifeRun(&values_plan,
					"UPDATE userlife.audit a SET old_values = $2, new_values = $3,"
					" redacted_fields = $4, external_id = NULL WHERE a.audit_id = $1",
					4, argtypes, values, nulls, false, 0, SPI_OK_UPDATE);
		return;
	}
	values[4] = rec->has_prev ? PointerGetDatum(ChainHashToBytea(rec->prev_hash)) : (Datum) 0;
	nulls[4] = rec->has_prev ? ' ' : 'n';
	values[5] = PointerGetDatum(ChainHashToBytea(rec->row_hash));
	values[6] = Int16GetDatum(rec->version);
	UserlifeRun(&reseal_plan,
				"UPDATE userlife.audit a SET old_values = $2, new_values = $3,"
				" redacted_fields = $4, external_id = NULL, prev_hash = $5, row_hash = $6,"
				" hash_version = $7 WHERE a.audit_id = $1",
				7, argtypes, values, nulls, false, 0, SPI_OK_UPDATE);
}

/*
 * redact_rows
 *		Redacts rows after already_redacted (earlier ones were redacted by
 *		an earlier erasure) and, with reseal, re-hashes every row as
 *		version 2 over the redacted values.  Returns the new head.
 */
static uint8 *
redact_rows(ChainRow *rows, int n, int already_redacted, const uint8 *key, bool reseal)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		AuditRecord *rec = &rows[i].rec;

		if (i > already_redacted)
		{
			int16		version = reseal ? CHAIN_V2 : rec->version;

			rec->old_values = redact_values(rec->old_values, key, version);
			rec->new_values = redact_values(rec->new_values, key, version);
		}
		if (reseal)
		{
			rec->version = CHAIN_V2;
			rec->redacted_form = true;
			rec->has_prev = (i > 0);
			if (i > 0)
				memcpy(rec->prev_hash, rows[i - 1].stored, CHAIN_HASH_LEN);
			if (!ChainComputeRowHash(rec))
				elog(ERROR, "a redacted audit row of user %s cannot be hashed", rec->user_id);
			memcpy(rows[i].stored, rec->row_hash, CHAIN_HASH_LEN);
		}
		if (i > already_redacted || reseal)
			update_row(&rows[i], reseal);
	}
	return rows[n - 1].stored;
}

/*
 * ChainRedactUser
 *		Removes the personal data of one just purged or erased user from its
 *		audit rows (values become keyed digests, external_id NULL) and its
 *		events, destroys its digest key, and returns the chain's new head
 *		for the tombstone.  The caller must be inside UserlifeSpiConnect, as
 *		the extension owner, with the user's purge or erase row written.
 */
bytea *
ChainRedactUser(Datum user_id)
{
	static SPIPlanPtr drop_key_plan = NULL;
	static SPIPlanPtr events_plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1] = {user_id};
	bool		keyed = ChainWriteVersion() >= CHAIN_V2;
	ChainRow   *rows;
	int			n;
	bool		well_formed;
	int			already;
	const uint8 *key;
	char	   *tracked;
	bool		intact;
	uint8	   *head;

	rows = load_rows(user_id, &n, &well_formed);
	if (n == 0)
		elog(ERROR, "user has no audit rows to redact");
	/* the purge row just written is in clear; rows of an earlier erasure are not */
	already = last_erasure(rows, n - 1);
	key = keyed ? ChainUserKey(user_id) : NULL;
	intact = well_formed && check_rows(rows, n, key, already, &tracked);
	if (keyed && key == NULL)
	{
		uint8	   *once = palloc(CHAIN_KEY_LEN);

		/* no key yet (a user from before 0.3.0): one that is never stored */
		if (!pg_strong_random(once, CHAIN_KEY_LEN))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random digest key")));
		key = once;
	}

	redaction_in_progress = true;
	head = redact_rows(rows, n, already, key, keyed && intact);
	redaction_in_progress = false;

	if (keyed)
		UserlifeRun(&drop_key_plan, "DELETE FROM userlife.audit_keys k WHERE k.user_id = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	UserlifeRun(&events_plan,
				"UPDATE userlife.events e SET payload = e.payload"
				" OPERATOR(pg_catalog.||) '{\"external_id\": null}'::pg_catalog.jsonb"
				" WHERE e.user_id = $1",
				1, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	return ChainHashToBytea(head);
}

/*
 * audit_guard: BEFORE UPDATE OR DELETE trigger on userlife.audit, per
 * statement and per row, enabled ALWAYS.  Refuses every change but the
 * UPDATEs ChainRedactUser makes.
 */
Datum
userlife_audit_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.audit_guard can only be called as a trigger")));
	if (redaction_in_progress && TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return PointerGetDatum(TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ?
							   trigdata->tg_newtuple : NULL);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("userlife.audit is append-only"),
			 errdetail("Audit rows cannot be updated, deleted or truncated, not even by a superuser."),
			 errhint("Purge and erasure redact personal data through userlife's own functions.")));
	return PointerGetDatum(NULL);	/* keep compiler quiet */
}
