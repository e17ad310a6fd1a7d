/*-------------------------------------------------------------------------
 *
 * signature.c
 *		Partner API keys, HMAC-SHA256 request signatures and the signed
 *		enrollee request.
 *
 * A signature is base64(HMAC-SHA256(key, timestamp || partner ||
 * "sid_request")), key being the UTF-8 bytes of the API key text and
 * timestamp the ISO 8601 text the partner sent.  The HMAC is computed by
 * the installed pgcrypto's hmac(bytea, bytea, text), looked up once per
 * backend in pgcrypto's own schema (never through search_path).  Candidate
 * and expected MACs are compared in constant time.
 *
 * Replays: an accepted signature's SHA-256 is remembered in
 * userlife.accepted_signatures until its timestamp leaves the allowed
 * window; a second acceptance finds it (the unique index also serializes
 * two concurrent attempts) and is refused.  run_maintenance forgets the
 * expired ones.
 *
 * Secrets live in userlife.partner_keys, which no role but the extension
 * owner may read; functions read it after AccessEnter switched to the owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "userlife.h"
#include "writectx.h"

PG_FUNCTION_INFO_V1(userlife_issue_api_key);
PG_FUNCTION_INFO_V1(userlife_generate_signature);
PG_FUNCTION_INFO_V1(userlife_verify_signature);
PG_FUNCTION_INFO_V1(userlife_enrollee_request);

#define KEY_BYTES 32
#define MAC_BYTES 32
#define SIGNATURE_SUFFIX "sid_request"

int			userlife_signature_max_age_s = 300;
bool		userlife_reject_replayed = true;

static Oid	hmac_oid = InvalidOid;
static FmgrInfo hmac_finfo;

typedef enum SignatureVerdict
{
	SIGNATURE_OK,
	SIGNATURE_WRONG,
	SIGNATURE_EXPIRED,
	SIGNATURE_REPLAYED
} SignatureVerdict;


/*
 * load_hmac
 *		Finds pgcrypto's hmac(bytea, bytea, text) in the schema pgcrypto is
 *		installed in.  Must run inside UserlifeSpiConnect, before the caller
 *		reads a result it still needs (it runs a query of its own).
 */
static void
load_hmac(void)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {BYTEAOID, BYTEAOID, TEXTOID};
	char	   *schema;
	List	   *name;
	Oid			fn;

	if (OidIsValid(hmac_oid) && SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(hmac_oid)))
		return;
	UserlifeRun(&plan,
		"SELECT n.nspname FROM pg_catalog.pg_extension e"
		" JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgcrypto'",
		0, NULL, NULL, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgcrypto is not installed in this database")));
	schema = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	name = list_make2(makeString(schema), makeString("hmac"));
	fn = LookupFuncName(name, 3, argtypes, false);
	fmgr_info_cxt(fn, &hmac_finfo, TopMemoryContext);
	hmac_oid = fn;
}

/* compute_mac: pgcrypto's HMAC-SHA256(key, signed_at || partner || "sid_request") */
static bytea *
compute_mac(const char *key, const char *signed_at, const char *partner)
{
	char	   *message = psprintf("%s%s%s", signed_at, partner, SIGNATURE_SUFFIX);
	bytea	   *mac;

	load_hmac();
	mac = DatumGetByteaPP(FunctionCall3(&hmac_finfo,
										PointerGetDatum(cstring_to_text(message)),
										PointerGetDatum(cstring_to_text(key)),
										PointerGetDatum(cstring_to_text("sha256"))));
	if (VARSIZE_ANY_EXHDR(mac) != MAC_BYTES)
		elog(ERROR, "pgcrypto's hmac returned %d bytes", (int) VARSIZE_ANY_EXHDR(mac));
	return mac;
}

/* equal_constant_time: compares two MACs without an early exit */
static bool
equal_constant_time(const uint8 *a, const uint8 *b, int len)
{
	uint8		diff = 0;
	int			i;

	for (i = 0; i < len; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

static void
check_environment(const char *environment)
{
	if (strcmp(environment, "test") != 0 && strcmp(environment, "production") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid environment \"%s\"", environment),
				 errdetail("The environment is test or production.")));
}

/*
 * parse_signed_at
 *		The time an ISO 8601 timestamp names; 22023 when it is not one.
 *		Parses with the datetime decoder directly so that a malformed value
 *		is reported as a malformed argument, not as a type input error.
 */
static TimestampTz
parse_signed_at(const char *text)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_tm tt;
	fsec_t		fsec;
	int			tz;
	TimestampTz result;

	/* ISO 8601 starts with the year: words such as "now" or "today" are no timestamps */
	if (strlen(text) < MAXDATELEN &&
		isdigit((unsigned char) text[0]) && isdigit((unsigned char) text[1]) &&
		isdigit((unsigned char) text[2]) && isdigit((unsigned char) text[3]) && text[4] == '-' &&
		ParseDateTime(text, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf) == 0 &&
		DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) == 0 &&
		dtype == DTK_DATE &&
		tm2timestamp(&tt, fsec, &tz, &result) == 0 &&
		IS_VALID_TIMESTAMP(result))
		return result;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid signature timestamp \"%s\"", text),
			 errdetail("The timestamp must be an ISO 8601 date and time, such as 2026-01-31T12:00:00Z.")));
	return 0;					/* keep compiler quiet */
}

/* decode_signature: the MAC a base64 signature carries; 22023 when not base64 */
static int
decode_signature(const char *signature, uint8 *mac)
{
	int			len = strlen(signature);
	char	   *buf;
	int			n;

	if (len == 0 || len > 1024)
		n = -1;
	else
	{
		buf = palloc(pg_b64_dec_len(len) + 1);
		n = pg_b64_decode(signature, len, buf, pg_b64_dec_len(len));
		if (n == MAC_BYTES)
			memcpy(mac, buf, MAC_BYTES);
	}
	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("signature is not valid base64")));
	return n;
}

/*
 * check_signature
 *		The verdict on a signature of partner at signed_at, remembering it
 *		when accepted (and replays are refused).  Must run inside
 *		AccessEnter.  Raises 22023 only for malformed input.
 */
static SignatureVerdict
check_signature(const char *partner, const char *signature, const char *signed_at,
				const char *environment)
{
	static SPIPlanPtr keys_plan = NULL;
	static SPIPlanPtr remember_plan = NULL;
	static SPIPlanPtr forget_plan = NULL;
	TimestampTz at = parse_signed_at(signed_at);
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	uint8		given[MAC_BYTES];
	int			given_len = decode_signature(signature, given);
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	bool		match = false;
	uint64		i;
	int64		max_age = (int64) userlife_signature_max_age_s * USECS_PER_SEC;
	SPITupleTable *keys;
	uint64		nkeys;

	check_environment(environment);
	load_hmac();
	if (at < now - max_age || at > now + max_age)
		return SIGNATURE_EXPIRED;

	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(environment);
	UserlifeRun(&keys_plan,
		"SELECT k.secret FROM userlife.partner_keys k WHERE k.partner = $1 AND k.environment = $2"
		" AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())",
		2, argtypes, values, NULL, true, 0, SPI_OK_SELECT);
	keys = SPI_tuptable;
	nkeys = SPI_processed;
	/* every key is tried, so the time taken does not tell which one matched */
	for (i = 0; i < nkeys; i++)
	{
		char	   *key = SPI_getvalue(keys->vals[i], keys->tupdesc, 1);
		bytea	   *expected = compute_mac(key, signed_at, partner);

		if (given_len == MAC_BYTES &&
			equal_constant_time((uint8 *) VARDATA_ANY(expected), given, MAC_BYTES))
			match = true;
	}
	if (!match)
		return SIGNATURE_WRONG;
	if (!userlife_reject_replayed)
		return SIGNATURE_OK;

	/* remembered until the timestamp leaves the window; the unique key catches replays */
	UserlifeRun(&forget_plan,
		"DELETE FROM userlife.accepted_signatures s WHERE s.partner = $1 AND s.expires_at < pg_catalog.now()",
		1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	{
		Oid			rargtypes[3] = {TEXTOID, BYTEAOID, TIMESTAMPTZOID};
		Datum		rvalues[3];

		bytea	   *mac = palloc(VARHDRSZ + MAC_BYTES);

		/* the decoded MAC, so that another spelling of the same base64 is no way round */
		SET_VARSIZE(mac, VARHDRSZ + MAC_BYTES);
		memcpy(VARDATA(mac), given, MAC_BYTES);
		rvalues[0] = values[0];
		rvalues[1] = PointerGetDatum(mac);
		rvalues[2] = TimestampTzGetDatum(at + max_age);
		UserlifeRun(&remember_plan,
			"INSERT INTO userlife.accepted_signatures (partner, signature_digest, expires_at)"
			" VALUES ($1, pg_catalog.sha256($2), $3) ON CONFLICT DO NOTHING",
			3, rargtypes, rvalues, NULL, false, 0, SPI_OK_INSERT);
	}
	return SPI_processed == 1 ? SIGNATURE_OK : SIGNATURE_REPLAYED;
}

/* SignatureForgetExpired: drops remembered signatures past their window */
int64
SignatureForgetExpired(void)
{
	static SPIPlanPtr plan = NULL;

	UserlifeRun(&plan, "DELETE FROM userlife.accepted_signatures s WHERE s.expires_at < pg_catalog.now()",
		0, NULL, NULL, NULL, false, 0, SPI_OK_DELETE);
	return (int64) SPI_processed;
}

static char *
environment_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *environment = PG_ARGISNULL(argno) ? "production" : text_to_cstring(PG_GETARG_TEXT_PP(argno));

	check_environment(environment);
	return environment;
}

/*
 * issue_api_key(partner, environment, grace): a new random 32-byte key,
 * base64; earlier keys of the environment expire after grace.
 */
Datum
userlife_issue_api_key(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr expire_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr partner_plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	char	   *environment = environment_arg(fcinfo, 1);
	Interval   *grace;
	Interval	zero = {0, 0, 0};
	char		raw[KEY_BYTES];
	char	   *key;
	int			keylen;
	AccessScope scope;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, INTERVALOID};
	Datum		values[3];
	text	   *result;

	UserlifeCheckPartnerId(partner);
	if (PG_ARGISNULL(2))
		grace = DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum("1 day"),
													  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	else
		grace = PG_GETARG_INTERVAL_P(2);
	if (DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(grace),
										  IntervalPGetDatum(&zero))) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grace must not be negative")));
	if (!pg_strong_random(raw, KEY_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random key")));
	key = palloc(pg_b64_enc_len(KEY_BYTES) + 1);
	keylen = pg_b64_encode(raw, KEY_BYTES, key, pg_b64_enc_len(KEY_BYTES));
	if (keylen < 0)
		elog(ERROR, "could not encode the key");
	key[keylen] = '\0';

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(environment);
	values[2] = IntervalPGetDatum(grace);
	UserlifeRun(&partner_plan, "SELECT 1 FROM userlife.partners p WHERE p.partner = $1",
		1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner \"%s\" does not exist", partner)));
	UserlifeRun(&expire_plan,
		"UPDATE userlife.partner_keys k SET expires_at = pg_catalog.now() + $3"
		" WHERE k.partner = $1 AND k.environment = $2"
		" AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now() + $3)",
		3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	values[2] = CStringGetTextDatum(key);
	argtypes[2] = TEXTOID;
	UserlifeRun(&insert_plan,
		"INSERT INTO userlife.partner_keys (partner, environment, secret) VALUES ($1, $2, $3)",
		3, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	AccessLeave(&scope);
	result = cstring_to_text(key);
	PG_RETURN_TEXT_P(result);
}

/*
 * generate_signature(partner, signed_at, environment): a signature made
 * with the newest key, for tests and tools.
 */
Datum
userlife_generate_signature(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	char	   *signed_at = UserlifeOptionalText(fcinfo, 1);
	char	   *environment = environment_arg(fcinfo, 2);
	AccessScope scope;
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	char	   *key;
	bytea	   *mac;
	char	   *signature;
	int			siglen;
	JsonbParseState *state = NULL;
	JsonbValue	k;
	JsonbValue	v;
	JsonbValue *res;
	Jsonb	   *built;
	Jsonb	   *result;
	int			utc = 0;

	UserlifeCheckPartnerId(partner);
	if (signed_at == NULL)
		signed_at = JsonEncodeDateTime(NULL, TimestampTzGetDatum(GetCurrentTimestamp()),
									   TIMESTAMPTZOID, &utc);
	else
		(void) parse_signed_at(signed_at);

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	load_hmac();
	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(environment);
	UserlifeRun(&plan,
		"SELECT k.secret FROM userlife.partner_keys k WHERE k.partner = $1 AND k.environment = $2"
		" AND (k.expires_at IS NULL OR k.expires_at > pg_catalog.now())"
		" ORDER BY k.created_at DESC, k.key_id DESC LIMIT 1",
		2, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner \"%s\" has no valid %s key", partner, environment),
				 errhint("Issue one with userlife.issue_api_key().")));
	key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	mac = compute_mac(key, signed_at, partner);
	signature = palloc(pg_b64_enc_len(MAC_BYTES) + 1);
	siglen = pg_b64_encode(VARDATA_ANY(mac), MAC_BYTES, signature, pg_b64_enc_len(MAC_BYTES));
	signature[siglen] = '\0';

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	v.type = jbvString;
	k.val.string.val = "signature";
	k.val.string.len = 9;
	v.val.string.val = signature;
	v.val.string.len = siglen;
	pushJsonbValue(&state, WJB_KEY, &k);
	pushJsonbValue(&state, WJB_VALUE, &v);
	k.val.string.val = "timestamp";
	k.val.string.len = 9;
	v.val.string.val = signed_at;
	v.val.string.len = strlen(signed_at);
	pushJsonbValue(&state, WJB_KEY, &k);
	pushJsonbValue(&state, WJB_VALUE, &v);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	built = JsonbValueToJsonb(res);
	result = (Jsonb *) SPI_palloc(VARSIZE(built));
	memcpy(result, built, VARSIZE(built));
	AccessLeave(&scope);
	PG_RETURN_JSONB_P(result);
}

/*
 * verify_signature(partner, signature, signed_at, environment): true for a
 * valid, fresh, first-seen signature; false otherwise.
 */
Datum
userlife_verify_signature(PG_FUNCTION_ARGS)
{
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	char	   *signature = UserlifeRequireText(fcinfo, 1, "signature");
	char	   *signed_at = UserlifeRequireText(fcinfo, 2, "signed_at");
	char	   *environment = environment_arg(fcinfo, 3);
	AccessScope scope;
	SignatureVerdict verdict;

	UserlifeCheckPartnerId(partner);
	AccessEnter(&scope, ACCESS_SIGNED, NULL);
	verdict = check_signature(partner, signature, signed_at, environment);
	AccessLeave(&scope);
	PG_RETURN_BOOL(verdict == SIGNATURE_OK);
}

/*------------------------------------------------------------------------
 * enrollee_request
 *------------------------------------------------------------------------
 */
typedef struct EnrolleeRequest
{
	char	   *partner;
	char	   *user_id;
	char	   *signature;
	char	   *timestamp;
	char	   *environment;
	char	   *email;
	int			allow_new_enroll;	/* -1 absent, 0 false, 1 true */
	int			active;
	int			delete;
	int			is_fraudulent;
} EnrolleeRequest;

static void
bad_body(const char *msg, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg(msg, key),
			 errdetail("An enrollee request has partner_id, user_id, signature, timestamp, environment and email, and one or more of allow_new_enroll, active, delete and is_fraudulent.")));
}

static char *
string_value(JsonbValue *v, const char *key)
{
	if (v->type != jbvString)
		bad_body("\"%s\" must be a JSON string", key);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static int
bool_value(JsonbValue *v, const char *key)
{
	if (v->type != jbvBool)
		bad_body("\"%s\" must be true or false", key);
	return v->val.boolean ? 1 : 0;
}

/* parse_request: the body's fields, checked for names and JSON types */
static void
parse_request(Jsonb *body, EnrolleeRequest *req)
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	k;
	JsonbValue	v;

	memset(req, 0, sizeof(*req));
	req->allow_new_enroll = req->active = req->delete = req->is_fraudulent = -1;
	if (!JB_ROOT_IS_OBJECT(body))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an enrollee request must be a JSON object")));
	it = JsonbIteratorInit(&body->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *key;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(k.val.string.val, k.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "partner_id") == 0)
			req->partner = string_value(&v, key);
		else if (strcmp(key, "user_id") == 0)
			req->user_id = string_value(&v, key);
		else if (strcmp(key, "signature") == 0)
			req->signature = string_value(&v, key);
		else if (strcmp(key, "timestamp") == 0)
			req->timestamp = string_value(&v, key);
		else if (strcmp(key, "environment") == 0)
			req->environment = string_value(&v, key);
		else if (strcmp(key, "email") == 0)
			req->email = (v.type == jbvNull) ? NULL : string_value(&v, key);
		else if (strcmp(key, "allow_new_enroll") == 0)
			req->allow_new_enroll = bool_value(&v, key);
		else if (strcmp(key, "active") == 0)
			req->active = bool_value(&v, key);
		else if (strcmp(key, "delete") == 0)
			req->delete = bool_value(&v, key);
		else if (strcmp(key, "is_fraudulent") == 0)
			req->is_fraudulent = bool_value(&v, key);
		else
			bad_body("unknown key \"%s\" in enrollee request", key);
	}
	if (req->partner == NULL)
		bad_body("enrollee request lacks \"%s\"", "partner_id");
	if (req->user_id == NULL)
		bad_body("enrollee request lacks \"%s\"", "user_id");
	if (req->signature == NULL)
		bad_body("enrollee request lacks \"%s\"", "signature");
	if (req->timestamp == NULL)
		bad_body("enrollee request lacks \"%s\"", "timestamp");
	if (req->environment == NULL)
		req->environment = "production";
	if (req->allow_new_enroll < 0 && req->active < 0 && req->delete < 0 && req->is_fraudulent < 0)
		bad_body("enrollee request has no action: set %s", "allow_new_enroll, active, delete or is_fraudulent");
	UserlifeCheckPartnerId(req->partner);
	UserlifeCheckExternalId(req->user_id);
	check_environment(req->environment);
}

static void
push_pair(JsonbParseState **state, const char *key, JsonbValue *v)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
	pushJsonbValue(state, WJB_VALUE, v);
}

/*
 * enrollee_request(body): a partner's signed request, verified first, then
 * applied in one transaction; the body's email is the audit actor.
 */
Datum
userlife_enrollee_request(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr state_plan = NULL;
	EnrolleeRequest req;
	AccessScope scope;
	SignatureVerdict verdict;
	const char *reason = "enrollee request";
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res;
	Jsonb	   *built;
	Jsonb	   *result;
	bool		have_user;

	UserlifeRequireArg(fcinfo, 0, "body");
	parse_request(PG_GETARG_JSONB_P(0), &req);

	AccessEnter(&scope, ACCESS_SIGNED, NULL);
	verdict = check_signature(req.partner, req.signature, req.timestamp, req.environment);
	if (verdict != SIGNATURE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_SIGNATURE),
				 errmsg("signature rejected"),
				 verdict == SIGNATURE_EXPIRED ?
				 errdetail("The timestamp is more than %d seconds away from the server's time.",
						   userlife_signature_max_age_s) :
				 verdict == SIGNATURE_REPLAYED ?
				 errdetail("The signature was already used.") :
				 errdetail("The signature does not match any valid %s key of partner \"%s\".",
						   req.environment, req.partner)));

	/* one write around the operations: they record the request's actor */
	WriteCtxBegin(scope.caller, reason, NULL, WRITE_PLAIN);
	WriteCtxSetActor(req.email);
	if (req.allow_new_enroll >= 0)
		(void) LifecycleAllowReenroll(scope.caller, req.partner, req.user_id,
									  req.allow_new_enroll == 1, reason);
	if (req.active >= 0)
		(void) LifecycleChangeStatus(scope.caller, req.partner, req.user_id,
									 req.active == 1 ? USER_ACTIVE : USER_INACTIVE, reason, false, 0);
	if (req.delete == 1)
		(void) LifecycleDelete(scope.caller, req.partner, req.user_id, reason);
	if (req.is_fraudulent >= 0)
		(void) LifecycleSetFraudFlag(scope.caller, req.partner, req.user_id,
									 req.is_fraudulent == 1, reason);
	WriteCtxEnd();

	values[0] = CStringGetTextDatum(req.partner);
	values[1] = CStringGetTextDatum(req.user_id);
	UserlifeRun(&state_plan,
		"SELECT u.status::pg_catalog.text, u.is_fraudulent, u.allow_new_enroll FROM userlife.users u"
		" WHERE u.partner = $1 AND u.external_id = $2 "
		"UNION ALL "
		"SELECT 'purged', NULL, t.allow_new_enroll FROM userlife.tombstones t"
		" WHERE t.partner = $1 AND t.external_id_digest = pg_catalog.sha256(pg_catalog.convert_to($2, 'UTF8')) "
		"LIMIT 1",
		2, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	have_user = SPI_processed == 1;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	v.type = jbvBool;
	v.val.boolean = true;
	push_pair(&state, "success", &v);
	v.type = jbvString;
	v.val.string.val = req.user_id;
	v.val.string.len = strlen(req.user_id);
	push_pair(&state, "user_id", &v);
	if (have_user)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		v.type = jbvString;
		v.val.string.val = SPI_getvalue(tup, desc, 1);
		v.val.string.len = strlen(v.val.string.val);
		push_pair(&state, "status", &v);
		d = SPI_getbinval(tup, desc, 2, &isnull);
		v.type = isnull ? jbvNull : jbvBool;
		v.val.boolean = !isnull && DatumGetBool(d);
		push_pair(&state, "is_fraudulent", &v);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		v.type = isnull ? jbvNull : jbvBool;
		v.val.boolean = !isnull && DatumGetBool(d);
		push_pair(&state, "allow_new_enroll", &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	built = JsonbValueToJsonb(res);
	result = (Jsonb *) SPI_palloc(VARSIZE(built));
	memcpy(result, built, VARSIZE(built));
	AccessLeave(&scope);
	PG_RETURN_JSONB_P(result);
}
