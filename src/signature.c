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
 * A request may also carry signature_v2 = base64(HMAC-SHA256(key,
 * timestamp || "." || canonical body)), which binds the body too; the
 * canonical body is what Python's json.dumps(sort_keys=True,
 * separators=(',', ':'), ensure_ascii=False) writes (see canonical_body).
 *
 * Nothing here depends on the caller's session: timestamps are read by our
 * own ISO 8601 reader (no offset means UTC), freshness, key expiry and the
 * replay window are judged by the clock at the moment of verification (not
 * by the transaction's start, which the caller picks), and keys and
 * remembered signatures are read on a fresh snapshot whatever the
 * isolation level.
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

#include <math.h>

#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/shortest_dec.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "userlife.h"
#include "access.h"
#include "lifecycle.h"
#include "signature.h"
#include "util.h"
#include "writectx.h"

PG_FUNCTION_INFO_V1(userlife_issue_api_key);
PG_FUNCTION_INFO_V1(userlife_generate_signature);
PG_FUNCTION_INFO_V1(userlife_verify_signature);
PG_FUNCTION_INFO_V1(userlife_enrollee_request);
PG_FUNCTION_INFO_V1(userlife_canonical_body);

#define KEY_BYTES 32
#define MAC_BYTES 32
#define SIGNATURE_SUFFIX "sid_request"

static int	userlife_signature_max_age_s = 300;
static bool userlife_reject_replayed = true;
static bool userlife_require_body_signature = false;

static Oid	hmac_oid = InvalidOid;
static FmgrInfo hmac_finfo;

typedef enum SignatureVerdict
{
	SIGNATURE_OK,
	SIGNATURE_WRONG,
	SIGNATURE_EXPIRED,
	SIGNATURE_REPLAYED,
	SIGNATURE_WRONG_BODY,		/* signature_v2 sent and wrong */
	SIGNATURE_NO_BODY			/* signature_v2 required and missing */
} SignatureVerdict;

void
SignatureInit(void)
{
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
}

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

/* hmac_sha256: pgcrypto's HMAC-SHA256 of len bytes of message under the key text */
static bytea *
hmac_sha256(const char *key, const char *message, int len)
{
	bytea	   *data = palloc(VARHDRSZ + len);
	bytea	   *mac;

	SET_VARSIZE(data, VARHDRSZ + len);
	memcpy(VARDATA(data), message, len);
	load_hmac();
	mac = DatumGetByteaPP(FunctionCall3(&hmac_finfo,
										PointerGetDatum(data),
										PointerGetDatum(cstring_to_text(key)),
										PointerGetDatum(cstring_to_text("sha256"))));
	if (VARSIZE_ANY_EXHDR(mac) != MAC_BYTES)
		elog(ERROR, "pgcrypto's hmac returned %d bytes", (int) VARSIZE_ANY_EXHDR(mac));
	return mac;
}

/* compute_mac: HMAC-SHA256(key, signed_at || partner || "sid_request") */
static bytea *
compute_mac(const char *key, const char *signed_at, const char *partner)
{
	char	   *message = psprintf("%s%s%s", signed_at, partner, SIGNATURE_SUFFIX);

	return hmac_sha256(key, message, strlen(message));
}

/*
 * compute_body_mac: HMAC-SHA256(key, signed_at || "." || canonical body),
 * the body in UTF-8 whatever the database encoding
 */
static bytea *
compute_body_mac(const char *key, const char *signed_at, const char *body_utf8)
{
	char	   *message = psprintf("%s.%s", signed_at, body_utf8);

	return hmac_sha256(key, message, strlen(message));
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
				 errmsg("invalid environment \"%s\"", UserlifeMsgValue(environment)),
				 errdetail("The environment is \"test\" or \"production\".")));
}

/* take_digits: n decimal digits at *p as a number, advancing *p; -1 when not */
static int
take_digits(const char **p, int n)
{
	int			v = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		char		c = (*p)[i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	return v;
}

/*
 * parse_utc_offset
 *		The offset in seconds east of UTC of an ISO 8601 zone designator at
 *		*p ("Z", "+hh", "+hhmm", "+hh:mm", or nothing, which means UTC).
 *		Returns false when the text is no zone designator.
 */
static bool
parse_utc_offset(const char *p, int *offset)
{
	int			sign;
	int			hh;
	int			mm = 0;

	*offset = 0;
	if (*p == '\0')
		return true;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return true;
	if (*p != '+' && *p != '-')
		return false;
	sign = (*p++ == '-') ? -1 : 1;
	if ((hh = take_digits(&p, 2)) < 0 || hh > 23)
		return false;
	if (*p == ':')
		p++;
	if (*p != '\0' && ((mm = take_digits(&p, 2)) < 0 || mm > 59))
		return false;
	*offset = sign * (hh * 3600 + mm * 60);
	return *p == '\0';
}

/*
 * parse_iso8601
 *		Reads YYYY-MM-DD(T| )hh:mm[:ss[(.|,)fraction]][zone] into a
 *		timestamp; false when the text is not that.  Written out here rather
 *		than handed to the datetime decoder because the decoder reads a time
 *		without a zone in the session's TimeZone, knows zone abbreviations
 *		from timezone_abbreviations and words such as "now": all of them
 *		settings or clocks of the caller.  This reads nothing but the text.
 */
static bool
parse_iso8601(const char *text, TimestampTz *result)
{
	const char *p = text;
	int			year,
				month,
				day,
				hour,
				minute,
				second = 0;
	int64		usec = 0;
	int			offset;
	int			ndigits = 0;

	if ((year = take_digits(&p, 4)) < 1 || *p++ != '-' ||
		(month = take_digits(&p, 2)) < 1 || month > 12 || *p++ != '-' ||
		(day = take_digits(&p, 2)) < 1 || day > day_tab[isleap(year)][month - 1] ||
		(*p != 'T' && *p != 't' && *p != ' '))
		return false;
	p++;
	if ((hour = take_digits(&p, 2)) < 0 || hour > 23 || *p++ != ':' ||
		(minute = take_digits(&p, 2)) < 0 || minute > 59)
		return false;
	if (*p == ':')
	{
		p++;
		if ((second = take_digits(&p, 2)) < 0 || second > 59)
			return false;
		if (*p == '.' || *p == ',')
		{
			/* up to nanoseconds; digits beyond the microsecond are dropped */
			for (p++; *p >= '0' && *p <= '9'; p++, ndigits++)
				if (ndigits < 6)
					usec = usec * 10 + (*p - '0');
			if (ndigits == 0 || ndigits > 9)
				return false;
			for (; ndigits < 6; ndigits++)
				usec *= 10;
		}
	}
	if (!parse_utc_offset(p, &offset))
		return false;
	*result = (TimestampTz) (date2j(year, month, day) - POSTGRES_EPOCH_JDATE) * USECS_PER_DAY +
		((int64) ((hour * 60 + minute) * 60 + second - offset)) * USECS_PER_SEC + usec;
	return true;
}

/*
 * parse_signed_at
 *		The time an ISO 8601 timestamp names; 22023 when it is not one.  A
 *		timestamp without a zone means UTC (SPEC §5.7), whatever TimeZone,
 *		DateStyle or IntervalStyle the session has.
 */
static TimestampTz
parse_signed_at(const char *text)
{
	TimestampTz result;

	int			len = strlen(text);

	/* a long text is quoted only in part: the message is not an echo service */
	if (len > 64 || !parse_iso8601(text, &result))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid signature timestamp \"%s\"", UserlifeMsgValue(text)),
				 errdetail("The timestamp must be an ISO 8601 date and time, such as 2026-01-31T12:00:00Z.")));
	return result;
}

/* decode_signature: the MAC a base64 signature carries; 22023 when not base64 */
static int
decode_signature(const char *signature, uint8 *mac, const char *name)
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
				 errmsg("%s is not valid base64", name)));
	return n;
}

/*
 * run_latest
 *		Runs a prepared statement on a snapshot taken now rather than the
 *		transaction's: under REPEATABLE READ a transaction opened before a
 *		key was revoked, or before a signature was used, would otherwise see
 *		the world as it was, and the isolation level is the caller's setting.
 */
static void
run_latest(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes, Datum *values,
		   int expected)
{
	int			rc = SPI_execute_snapshot(UserlifePreparePlan(cache, sql, nargs, argtypes),
										  values, NULL, GetLatestSnapshot(), InvalidSnapshot,
										  false, false, 0);

	if (rc != expected)
		elog(ERROR, "statement failed (%s): %s", SPI_result_code_string(rc), sql);
}

/*
 * match_keys
 *		Tries every key of the environment valid at now: does the signature
 *		match one, and (when given_v2 is not NULL) does the signature_v2 over
 *		body_utf8?  Every key is tried, so the time taken does not tell which
 *		one matched.  load_hmac must have run (this reads an SPI result
 *		across the HMAC calls).
 */
static void
match_keys(const char *partner, const char *environment, TimestampTz now,
		   const char *signed_at, const uint8 *given, const uint8 *given_v2,
		   const char *body_utf8, bool *match, bool *match_v2)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	SPITupleTable *keys;
	uint64		nkeys;
	uint64		i;

	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(environment);
	values[2] = TimestampTzGetDatum(now);
	run_latest(&plan,
			   "SELECT k.secret FROM userlife.partner_keys k WHERE k.partner = $1"
			   " AND k.environment = $2 AND (k.expires_at IS NULL OR k.expires_at > $3)",
			   3, argtypes, values, SPI_OK_SELECT);
	keys = SPI_tuptable;
	nkeys = SPI_processed;
	*match = *match_v2 = false;
	for (i = 0; i < nkeys; i++)
	{
		char	   *key = SPI_getvalue(keys->vals[i], keys->tupdesc, 1);
		bytea	   *expected = compute_mac(key, signed_at, partner);

		if (given != NULL &&
			equal_constant_time((uint8 *) VARDATA_ANY(expected), given, MAC_BYTES))
			*match = true;
		if (given_v2 == NULL)
			continue;
		expected = compute_body_mac(key, signed_at, body_utf8);
		if (equal_constant_time((uint8 *) VARDATA_ANY(expected), given_v2, MAC_BYTES))
			*match_v2 = true;
	}
}

/*
 * remember_signature
 *		Records an accepted signature's MAC until expires_at; false when it
 *		was already there (a replay).  The decoded MAC is kept, so another
 *		spelling of the same base64 is no way round; the unique key also
 *		serializes two concurrent attempts.
 */
static bool
remember_signature(const char *partner, const uint8 *given, TimestampTz expires_at,
				   TimestampTz now)
{
	static SPIPlanPtr forget_plan = NULL;
	static SPIPlanPtr remember_plan = NULL;
	Oid			argtypes[3] = {TEXTOID, TIMESTAMPTZOID, BYTEAOID};
	Datum		values[3];
	bytea	   *mac = palloc(VARHDRSZ + MAC_BYTES);

	SET_VARSIZE(mac, VARHDRSZ + MAC_BYTES);
	memcpy(VARDATA(mac), given, MAC_BYTES);
	values[0] = CStringGetTextDatum(partner);
	values[1] = TimestampTzGetDatum(now);
	run_latest(&forget_plan,
			   "DELETE FROM userlife.accepted_signatures s WHERE s.partner = $1 AND s.expires_at < $2",
			   2, argtypes, values, SPI_OK_DELETE);
	values[1] = TimestampTzGetDatum(expires_at);
	values[2] = PointerGetDatum(mac);
	run_latest(&remember_plan,
			   "INSERT INTO userlife.accepted_signatures (partner, signature_digest, expires_at)"
			   " VALUES ($1, pg_catalog.sha256($3), $2) ON CONFLICT DO NOTHING",
			   3, argtypes, values, SPI_OK_INSERT);
	return SPI_processed == 1;
}

/*
 * check_signature
 *		The verdict on a signature of partner at signed_at, remembering it
 *		when accepted (and replays are refused).  signature_v2, when not
 *		NULL, must match body_utf8 (the canonical body in UTF-8); need_body
 *		refuses a request without one.  Must run inside AccessEnter.
 *		Raises 22023 only for malformed input.
 *
 *		Freshness, key expiry and the replay window are judged by the clock
 *		read here, at the moment of verification: the transaction's start
 *		(now()) is the caller's to choose, by opening it early.
 */
static SignatureVerdict
check_signature(const char *partner, const char *signature, const char *signed_at,
				const char *environment, const char *signature_v2,
				const char *body_utf8, bool need_body)
{
	TimestampTz at = parse_signed_at(signed_at);
	uint8		given[MAC_BYTES] = {0};
	uint8		given_v2[MAC_BYTES] = {0};
	bool		given_ok = decode_signature(signature, given, "signature") == MAC_BYTES;
	bool		given_v2_ok = signature_v2 != NULL &&
		decode_signature(signature_v2, given_v2, "signature_v2") == MAC_BYTES;
	int64		max_age = (int64) userlife_signature_max_age_s * USECS_PER_SEC;
	TimestampTz now;
	bool		match;
	bool		match_v2;

	Assert(AccessIsEntered());

	check_environment(environment);
	load_hmac();
	now = GetCurrentTimestamp();
	if (at < now - max_age || at > now + max_age)
		return SIGNATURE_EXPIRED;
	match_keys(partner, environment, now, signed_at, given_ok ? given : NULL,
			   signature_v2 != NULL ? given_v2 : NULL, body_utf8, &match, &match_v2);
	if (!match)
		return SIGNATURE_WRONG;
	if (signature_v2 != NULL && !(given_v2_ok && match_v2))
		return SIGNATURE_WRONG_BODY;
	if (signature_v2 == NULL && need_body)
		return SIGNATURE_NO_BODY;
	if (!userlife_reject_replayed)
		return SIGNATURE_OK;
	/* remembered until the timestamp leaves the window */
	return remember_signature(partner, given, at + max_age, now) ?
		SIGNATURE_OK : SIGNATURE_REPLAYED;
}

/*
 * SignatureForgetExpired: drops remembered signatures past their window.
 * The clock decides, as in check_signature: what is forgotten here is
 * refused there as expired.
 */
int64
SignatureForgetExpired(void)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {TIMESTAMPTZOID};
	Datum		values[1];

	values[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	UserlifeRun(&plan, "DELETE FROM userlife.accepted_signatures s WHERE s.expires_at < $1",
		1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
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
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	char	   *environment = environment_arg(fcinfo, 1);
	Interval   *grace;
	Interval	zero = {0, 0, 0};
	char		raw[KEY_BYTES];
	char	   *key;
	int			keylen;
	AccessScope scope;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	Datum		expires_at;
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

	/*
	 * The grace runs from the clock, and is added as UTC calendar time: a
	 * timestamptz + interval would count a "1 day" across a daylight saving
	 * change in the session's TimeZone.
	 */
	expires_at = DirectFunctionCall2(timestamp_pl_interval,
									 TimestampGetDatum(GetCurrentTimestamp()),
									 IntervalPGetDatum(grace));

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(environment);
	values[2] = expires_at;
	LifecycleRequirePartner(partner);
	UserlifeRun(&expire_plan,
		"UPDATE userlife.partner_keys k SET expires_at = $3"
		" WHERE k.partner = $1 AND k.environment = $2"
		" AND (k.expires_at IS NULL OR k.expires_at > $3)",
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
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];
	char	   *key;
	bytea	   *mac;
	char	   *signature;
	int			siglen;
	JsonbParseState *state = NULL;
	JsonbValue *res;
	Jsonb	   *result;
	int			utc = 0;

	UserlifeCheckPartnerId(partner);
	if (signed_at == NULL)
		signed_at = JsonEncodeDateTime(NULL, TimestampTzGetDatum(GetCurrentTimestamp()),
									   TIMESTAMPTZOID, &utc);
	else
		(void) parse_signed_at(signed_at);

	/* volatile for the clock only: it reads a key, and works on a standby */
	AccessEnterReadOnly(&scope, ACCESS_OWNER, NULL);
	load_hmac();
	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(environment);
	values[2] = TimestampTzGetDatum(GetCurrentTimestamp());
	UserlifeRun(&plan,
		"SELECT k.secret FROM userlife.partner_keys k WHERE k.partner = $1 AND k.environment = $2"
		" AND (k.expires_at IS NULL OR k.expires_at > $3)"
		" ORDER BY k.created_at DESC, k.key_id DESC LIMIT 1",
		3, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner \"%s\" has no valid \"%s\" key", partner, environment),
				 errhint("Issue one with userlife.issue_api_key().")));
	key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	mac = compute_mac(key, signed_at, partner);
	signature = palloc(pg_b64_enc_len(MAC_BYTES) + 1);
	siglen = pg_b64_encode(VARDATA_ANY(mac), MAC_BYTES, signature, pg_b64_enc_len(MAC_BYTES));
	signature[siglen] = '\0';

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	UserlifePushKeyString(&state, "signature", signature);
	UserlifePushKeyString(&state, "timestamp", signed_at);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	result = UserlifeJsonbOutOfSpi(JsonbValueToJsonb(res));
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
	verdict = check_signature(partner, signature, signed_at, environment, NULL, NULL, false);
	AccessLeave(&scope);
	PG_RETURN_BOOL(verdict == SIGNATURE_OK);
}

/*------------------------------------------------------------------------
 * The canonical body a signature_v2 covers
 *
 * Byte for byte what Python's json.dumps(body, sort_keys=True,
 * separators=(',', ':'), ensure_ascii=False) writes for the object the
 * partner sent, less the top-level "signature" and "signature_v2": keys in
 * code point order (UTF-8 byte order is code point order), no whitespace,
 * non-ASCII characters as themselves, '"', '\' and control characters
 * escaped as Python escapes them.  Nothing here reads a session setting.
 *
 * Numbers: jsonb keeps a number's value and how many fraction digits it
 * was written with, not its spelling.  A number without fraction digits is
 * written as an integer, as Python writes an int; one with fraction digits
 * as Python writes the float it reads it as (the shortest text that reads
 * back as the same double: 2.50 is 2.5, 1.5e-7 is 1.5e-07).  The one
 * spelling Python writes differently is an integral value in exponent
 * notation (1e2, 1.5E3): Python reads a float (100.0), jsonb an integer
 * (100).  Request bodies carry no numbers today.
 *------------------------------------------------------------------------
 */
typedef struct CanonPair
{
	const char *key;			/* in UTF-8, for ordering */
	int			keylen;
	JsonbValue	k;
	JsonbValue	v;
} CanonPair;

static void canon_container(StringInfo out, JsonbContainer *jc, bool top);

/*
 * canon_string: a JSON string with Python's escapes, which are
 * escape_json's (jsonb strings hold no NUL)
 */
static void
canon_string(StringInfo out, const char *s, int len)
{
	char	   *copy = pnstrdup(s, len);

	escape_json(out, copy);
	pfree(copy);
}

/*
 * canon_float: a double as Python's repr writes it, from the shortest
 * round-trip digits (Ryu, the same digits float8out prints, but without
 * reading extra_float_digits): positional between 1e-4 and 1e16 with at
 * least one fraction digit, else d.ddde+XX.
 */
static void
canon_float(StringInfo out, double d)
{
	char		buf[DOUBLE_SHORTEST_DECIMAL_LEN];
	char		digits[DOUBLE_SHORTEST_DECIMAL_LEN];
	int			nd = 0;
	int			decpt = 0;		/* digits before the point; value = 0.digits * 10^decpt */
	bool		point = false;
	const char *p = buf;

	double_to_shortest_decimal_buf(d, buf);
	if (*p == '-')
		appendStringInfoChar(out, *p++);
	for (; *p != '\0' && *p != 'e'; p++)
	{
		if (*p == '.')
			point = true;
		else if (nd == 0 && *p == '0')
			decpt -= point ? 1 : 0;
		else
		{
			digits[nd++] = *p;
			decpt += point ? 0 : 1;
		}
	}
	if (*p == 'e')
		decpt += atoi(p + 1);
	while (nd > 0 && digits[nd - 1] == '0')
		nd--;
	if (nd == 0)
		appendStringInfoString(out, "0.0");
	else if (decpt <= -4 || decpt > 16)
	{
		appendStringInfoChar(out, digits[0]);
		if (nd > 1)
		{
			appendStringInfoChar(out, '.');
			appendBinaryStringInfo(out, digits + 1, nd - 1);
		}
		appendStringInfo(out, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
	}
	else if (decpt <= 0)
	{
		appendStringInfoString(out, "0.");
		for (; decpt < 0; decpt++)
			appendStringInfoChar(out, '0');
		appendBinaryStringInfo(out, digits, nd);
	}
	else if (decpt >= nd)
	{
		appendBinaryStringInfo(out, digits, nd);
		for (; nd < decpt; nd++)
			appendStringInfoChar(out, '0');
		appendStringInfoString(out, ".0");
	}
	else
	{
		appendBinaryStringInfo(out, digits, decpt);
		appendStringInfoChar(out, '.');
		appendBinaryStringInfo(out, digits + decpt, nd - decpt);
	}
}

/* canon_number: an integer as written, a number with fraction digits as a Python float */
static void
canon_number(StringInfo out, Numeric num)
{
	char	   *text;
	double		d;

	if (numeric_is_nan(num) || numeric_is_inf(num))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a signed body cannot contain NaN or Infinity")));
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(num)));
	if (strchr(text, '.') == NULL)
	{
		appendStringInfoString(out, text);
		return;
	}
	/* strtod reads the C locale's point: a backend never changes LC_NUMERIC */
	d = strtod(text, NULL);
	if (isinf(d))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a number in a signed body is out of range"),
				 errdetail("A number with a fraction is signed as the double precision value it reads as, and %d digits before the point are too many.",
						   (int) (strchr(text, '.') - text))));
	canon_float(out, d);
}

static void
canon_value(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendStringInfoString(out, "null");
			break;
		case jbvBool:
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			break;
		case jbvString:
			canon_string(out, v->val.string.val, v->val.string.len);
			break;
		case jbvNumeric:
			canon_number(out, v->val.numeric);
			break;
		case jbvBinary:
			canon_container(out, v->val.binary.data, false);
			break;
		default:
			elog(ERROR, "unexpected jsonb value type %d", (int) v->type);
	}
}

static int
canon_pair_cmp(const void *a, const void *b)
{
	const CanonPair *pa = (const CanonPair *) a;
	const CanonPair *pb = (const CanonPair *) b;
	int			c = memcmp(pa->key, pb->key, Min(pa->keylen, pb->keylen));

	return c != 0 ? c : (pa->keylen > pb->keylen) - (pa->keylen < pb->keylen);
}

/* canon_object: the members of an object, keys sorted; top drops the signatures */
static void
canon_object(StringInfo out, JsonbContainer *jc, JsonbIterator *it, bool top)
{
	CanonPair  *pairs = palloc(sizeof(CanonPair) * (JsonContainerSize(jc) + 1));
	int			n = 0;
	int			i;
	JsonbValue	k;

	while (JsonbIteratorNext(&it, &k, true) == WJB_KEY)
	{
		CanonPair  *pair = &pairs[n];

		pair->k = k;
		(void) JsonbIteratorNext(&it, &pair->v, true);
		if (top && ((k.val.string.len == 9 && memcmp(k.val.string.val, "signature", 9) == 0) ||
					(k.val.string.len == 12 && memcmp(k.val.string.val, "signature_v2", 12) == 0)))
			continue;
		pair->key = pg_server_to_any(k.val.string.val, k.val.string.len, PG_UTF8);
		pair->keylen = pair->key == k.val.string.val ? k.val.string.len : (int) strlen(pair->key);
		n++;
	}
	qsort(pairs, n, sizeof(CanonPair), canon_pair_cmp);
	appendStringInfoChar(out, '{');
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(out, ',');
		canon_string(out, pairs[i].k.val.string.val, pairs[i].k.val.string.len);
		appendStringInfoChar(out, ':');
		canon_value(out, &pairs[i].v);
	}
	appendStringInfoChar(out, '}');
}

/* canon_container: an array, an object or a raw scalar */
static void
canon_container(StringInfo out, JsonbContainer *jc, bool top)
{
	JsonbIterator *it;
	JsonbValue	v;
	bool		first = true;
	bool		raw;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	it = JsonbIteratorInit(jc);
	if (JsonbIteratorNext(&it, &v, true) == WJB_BEGIN_OBJECT)
	{
		canon_object(out, jc, it, top);
		return;
	}
	raw = v.val.array.rawScalar;
	if (!raw)
		appendStringInfoChar(out, '[');
	while (JsonbIteratorNext(&it, &v, true) == WJB_ELEM)
	{
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		canon_value(out, &v);
	}
	if (!raw)
		appendStringInfoChar(out, ']');
}

/* canonical_body: the canonical text of a request body, in the server encoding */
static char *
canonical_body(Jsonb *body)
{
	StringInfoData out;

	if (!JB_ROOT_IS_OBJECT(body))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a signed body must be a JSON object")));
	initStringInfo(&out);
	canon_container(&out, &body->root, true);
	return out.data;
}

/* canonical_body(body): the text a signature_v2 covers (SPEC §5.7) */
Datum
userlife_canonical_body(PG_FUNCTION_ARGS)
{
	UserlifeRequireArg(fcinfo, 0, "body");
	PG_RETURN_TEXT_P(cstring_to_text(canonical_body(PG_GETARG_JSONB_P(0))));
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
	char	   *signature_v2;	/* NULL when not sent */
	char	   *timestamp;
	char	   *environment;
	char	   *email;
	int			allow_new_enroll;	/* -1 absent, 0 false, 1 true */
	int			active;
	int			delete;
	int			is_fraudulent;
} EnrolleeRequest;

/* what a key of an enrollee request holds */
typedef enum RequestKeyKind
{
	KEY_REQUIRED,				/* a string the request must have */
	KEY_STRING,					/* an optional string */
	KEY_STRING_OR_NULL,			/* an optional string; JSON null for none */
	KEY_FLAG					/* true or false */
} RequestKeyKind;

/* the keys of an enrollee request; required ones are looked for in this order */
static const struct RequestKey
{
	const char *name;
	RequestKeyKind kind;
	size_t		offset;			/* of its field in EnrolleeRequest */
}			request_keys[] = {
	{"partner_id", KEY_REQUIRED, offsetof(EnrolleeRequest, partner)},
	{"user_id", KEY_REQUIRED, offsetof(EnrolleeRequest, user_id)},
	{"signature", KEY_REQUIRED, offsetof(EnrolleeRequest, signature)},
	{"signature_v2", KEY_STRING, offsetof(EnrolleeRequest, signature_v2)},
	{"timestamp", KEY_REQUIRED, offsetof(EnrolleeRequest, timestamp)},
	{"environment", KEY_STRING, offsetof(EnrolleeRequest, environment)},
	{"email", KEY_STRING_OR_NULL, offsetof(EnrolleeRequest, email)},
	{"allow_new_enroll", KEY_FLAG, offsetof(EnrolleeRequest, allow_new_enroll)},
	{"active", KEY_FLAG, offsetof(EnrolleeRequest, active)},
	{"delete", KEY_FLAG, offsetof(EnrolleeRequest, delete)},
	{"is_fraudulent", KEY_FLAG, offsetof(EnrolleeRequest, is_fraudulent)},
};

#define REQUEST_FIELD(req, i) ((char *) (req) + request_keys[i].offset)

static void
bad_body(const char *msg, const char *key)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg(msg, UserlifeMsgValue(key)),
			 errdetail("An enrollee request has partner_id, user_id, signature, timestamp, environment and email, optionally signature_v2, and one or more of allow_new_enroll, active, delete and is_fraudulent.")));
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
	size_t		i;

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
		for (i = 0; i < lengthof(request_keys); i++)
			if (strcmp(key, request_keys[i].name) == 0)
				break;
		if (i == lengthof(request_keys))
			bad_body("unknown key \"%s\" in enrollee request", key);
		if (request_keys[i].kind == KEY_FLAG)
			*(int *) REQUEST_FIELD(req, i) = bool_value(&v, key);
		else if (request_keys[i].kind == KEY_STRING_OR_NULL && v.type == jbvNull)
			*(char **) REQUEST_FIELD(req, i) = NULL;
		else
			*(char **) REQUEST_FIELD(req, i) = string_value(&v, key);
	}
	for (i = 0; i < lengthof(request_keys); i++)
		if (request_keys[i].kind == KEY_REQUIRED && *(char **) REQUEST_FIELD(req, i) == NULL)
			bad_body("enrollee request lacks \"%s\"", request_keys[i].name);
	if (req->environment == NULL)
		req->environment = "production";
	if (req->allow_new_enroll < 0 && req->active < 0 && req->delete < 0 && req->is_fraudulent < 0)
		bad_body("enrollee request has no action: set %s", "allow_new_enroll, active, delete or is_fraudulent");
	UserlifeCheckPartnerId(req->partner);
	UserlifeCheckExternalId(req->user_id);
	check_environment(req->environment);
}

/* reject_request: UL003, with a detail saying why */
static void
reject_request(SignatureVerdict verdict, EnrolleeRequest *req)
{
	switch (verdict)
	{
		case SIGNATURE_EXPIRED:
			ereport(ERROR,
					(errcode(ERRCODE_USERLIFE_SIGNATURE),
					 errmsg("signature rejected"),
					 errdetail("The timestamp is more than %d seconds away from the server's time.",
							   userlife_signature_max_age_s)));
			break;
		case SIGNATURE_REPLAYED:
			ereport(ERROR,
					(errcode(ERRCODE_USERLIFE_SIGNATURE),
					 errmsg("signature rejected"),
					 errdetail("The signature was already used.")));
			break;
		case SIGNATURE_WRONG_BODY:
			ereport(ERROR,
					(errcode(ERRCODE_USERLIFE_SIGNATURE),
					 errmsg("signature rejected"),
					 errdetail("The signature_v2 is wrong: it does not match this body under any valid \"%s\" key of partner \"%s\".",
							   req->environment, req->partner)));
			break;
		case SIGNATURE_NO_BODY:
			ereport(ERROR,
					(errcode(ERRCODE_USERLIFE_SIGNATURE),
					 errmsg("signature rejected"),
					 errdetail("The request has no signature_v2, which userlife.require_body_signature requires."),
					 errhint("Add \"signature_v2\": base64(HMAC-SHA256(key, timestamp || '.' || canonical body)); userlife.canonical_body() shows the canonical body.")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_USERLIFE_SIGNATURE),
					 errmsg("signature rejected"),
					 errdetail("The signature does not match any valid \"%s\" key of partner \"%s\".",
							   req->environment, req->partner)));
	}
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
	UserCall	call;
	SignatureVerdict verdict;
	const char *reason = "enrollee request";
	Oid			argtypes[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	JsonbParseState *state = NULL;
	JsonbValue	v;
	JsonbValue *res;
	Jsonb	   *result;
	bool		have_user;
	Jsonb	   *body;
	char	   *body_utf8 = NULL;

	UserlifeRequireArg(fcinfo, 0, "body");
	body = PG_GETARG_JSONB_P(0);
	parse_request(body, &req);

	AccessEnter(&call.scope, ACCESS_SIGNED, NULL);
	call.partner = req.partner;
	call.external_id = req.user_id;
	if (req.signature_v2 != NULL)
	{
		char	   *canon = canonical_body(body);

		body_utf8 = pg_server_to_any(canon, strlen(canon), PG_UTF8);
	}
	verdict = check_signature(req.partner, req.signature, req.timestamp, req.environment,
							  req.signature_v2, body_utf8, userlife_require_body_signature);
	if (verdict != SIGNATURE_OK)
		reject_request(verdict, &req);

	/* one write around the operations: they record the request's actor */
	WriteCtxBegin(call.scope.caller, reason, NULL, WRITE_PLAIN);
	WriteCtxSetActor(req.email);
	if (req.allow_new_enroll >= 0)
		(void) LifecycleAllowReenroll(&call, req.allow_new_enroll == 1, reason);
	if (req.active >= 0)
		(void) LifecycleChangeStatus(&call, req.active == 1 ? USER_ACTIVE : USER_INACTIVE,
									 reason, false, 0);
	if (req.delete == 1)
		(void) LifecycleDelete(&call, reason);
	if (req.is_fraudulent >= 0)
		(void) LifecycleSetFraudFlag(&call, req.is_fraudulent == 1, reason);
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
	UserlifePushKeyValue(&state, "success", &v);
	v.type = jbvString;
	v.val.string.val = req.user_id;
	v.val.string.len = strlen(req.user_id);
	UserlifePushKeyValue(&state, "user_id", &v);
	if (have_user)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		v.type = jbvString;
		v.val.string.val = SPI_getvalue(tup, desc, 1);
		v.val.string.len = strlen(v.val.string.val);
		UserlifePushKeyValue(&state, "status", &v);
		d = SPI_getbinval(tup, desc, 2, &isnull);
		v.type = isnull ? jbvNull : jbvBool;
		v.val.boolean = !isnull && DatumGetBool(d);
		UserlifePushKeyValue(&state, "is_fraudulent", &v);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		v.type = isnull ? jbvNull : jbvBool;
		v.val.boolean = !isnull && DatumGetBool(d);
		UserlifePushKeyValue(&state, "allow_new_enroll", &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	result = UserlifeJsonbOutOfSpi(JsonbValueToJsonb(res));
	AccessLeave(&call.scope);
	PG_RETURN_JSONB_P(result);
}
