/*-------------------------------------------------------------------------
 *
 * webhooks.c
 *		Webhook endpoints, their secrets, and the database side of delivery
 *		(SPEC §10): claim_webhook_deliveries hands the delivery program
 *		signed, ready-to-send requests; complete_webhook_delivery records
 *		each attempt and schedules what follows.
 *
 * The write path pays nothing: a change writes its event to the outbox
 * and no row per endpoint.  Each endpoint keeps a cursor over the outbox;
 * a claim moves the events past it into webhook_queue.  Event ids are not
 * given out in commit order, so a cursor may pass an id only once every
 * transaction that could still commit an event at or below it has ended:
 * the claim reads the sequence's last value L, then the transactions
 * writing to the outbox (holding ROW EXCLUSIVE on it, with a transaction
 * id), and waits briefly for those to end.  A writer locks the outbox and
 * gets its transaction id (the audit row's txid) before its event id, so
 * every writer holding an id <= L is among them.  When they do not end in time
 * the cursor stays where it is and the next claim tries again.
 *
 * Order per user and endpoint: only the oldest pending delivery of a user
 * and endpoint can be claimed; a claimed delivery stays pending (held until
 * next_attempt_at, the lease) until completed, so the next one waits.
 *
 * Secrets are 32 random bytes readable by the extension owner only; every
 * function here runs as that owner after AccessEnter, and the signatures
 * (HMAC-SHA256 over id.timestamp.body, Standard Webhooks) are computed here,
 * so the delivery program never holds a secret.
 *
 * Memory: the parsed retry schedule lives in GUC "extra" memory; all else
 * is per call.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "common/hmac.h"
#include "common/pg_prng.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/procarray.h"
#include "storage/sinvaladt.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "userlife.h"
#include "access.h"
#include "catalog.h"
#include "lifecycle.h"
#include "util.h"
#include "webhooks.h"

PG_FUNCTION_INFO_V1(userlife_add_webhook_endpoint);
PG_FUNCTION_INFO_V1(userlife_rotate_webhook_secret);
PG_FUNCTION_INFO_V1(userlife_set_webhook_endpoint);
PG_FUNCTION_INFO_V1(userlife_remove_webhook_endpoint);
PG_FUNCTION_INFO_V1(userlife_replay_webhooks);
PG_FUNCTION_INFO_V1(userlife_claim_webhook_deliveries);
PG_FUNCTION_INFO_V1(userlife_complete_webhook_delivery);
PG_FUNCTION_INFO_V1(userlife_webhook_claim_held_back);
PG_FUNCTION_INFO_V1(userlife_complete_webhook_deliveries);

#define WEBHOOK_SECRET_BYTES	32
#define WEBHOOK_SECRET_PREFIX	"whsec_"
#define WEBHOOK_MAX_URL			2048
#define WEBHOOK_MAX_SCHEDULE	32
#define WEBHOOK_MAX_CLAIM		1000
#define WEBHOOK_RESPONSE_BYTES	1024
/* event ids read per endpoint and claim, so a long-disabled one catches up in steps */
#define WEBHOOK_QUEUE_STEP		10000
/* events queued per endpoint and claim: twice the claim's size, at least this */
#define WEBHOOK_QUEUE_MIN_ROWS	100
/* how long a claim waits for writers that may still commit events below the cursor */
#define WEBHOOK_HORIZON_WAIT_MS 10
/* a claimed delivery is held this much longer than the request's time limit */
#define WEBHOOK_LEASE_MARGIN_S	5

/* the parsed userlife.webhook_retry_schedule, in GUC extra memory */
typedef struct RetrySchedule
{
	int			n;
	double		delay_s[WEBHOOK_MAX_SCHEDULE];
} RetrySchedule;

static char *webhook_retry_schedule_text = NULL;
static const RetrySchedule *webhook_schedule = NULL;
static int	webhook_timeout_ms = 15000;
static char *webhook_disable_after_text = NULL;
static char *webhook_attempt_retention_text = NULL;

static const char *const known_event_types[] = {"user.data.updated", "user.status.updated"};

/*
 * partners the caller may see, as SQL over $wide and $role, for column
 * "col": a binding counts while its role still has the name it was made
 * for, as in access.c
 */
#define WEBHOOK_VISIBLE(col, wide, role) \
	"(" wide " OR " col " IN (SELECT b.partner FROM userlife.partner_bindings b" \
	" WHERE b.role_name OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(b.role::pg_catalog.oid)::pg_catalog.text" \
	" AND pg_catalog.pg_has_role(" role ", b.role::pg_catalog.oid, 'USAGE')))"

/*
 * parse_interval_s: seconds of an interval text (a month counts 30 days);
 * false when it does not parse.  Safe in a GUC check hook: errors are caught.
 */
static bool
parse_interval_s(const char *text, double *seconds)
{
	Interval   *iv = UserlifeParseIntervalQuietly(text);

	if (iv == NULL)
		return false;
	*seconds = iv->time / 1000000.0 + iv->day * 86400.0 + iv->month * 30.0 * 86400.0;
	return true;
}

/* check_retry_schedule: a comma-separated list of 1-32 positive intervals */
static bool
check_retry_schedule(char **newval, void **extra, GucSource source)
{
	RetrySchedule *sched;
	char	   *copy;
	char	   *item;
	char	   *save = NULL;

	if (*newval == NULL)
		return false;
	sched = (RetrySchedule *) malloc(sizeof(RetrySchedule));
	if (sched == NULL)
		return false;
	sched->n = 0;
	copy = pstrdup(*newval);
	for (item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save))
	{
		double		s;

		if (sched->n >= WEBHOOK_MAX_SCHEDULE || !parse_interval_s(item, &s) ||
			s <= 0 || s > 30 * 86400.0)
		{
			GUC_check_errdetail("The schedule is 1 to %d positive intervals of at most 30 days, separated by commas.",
								WEBHOOK_MAX_SCHEDULE);
			free(sched);
			return false;
		}
		sched->delay_s[sched->n++] = s;
	}
	if (sched->n == 0)
	{
		GUC_check_errdetail("The schedule is 1 to %d positive intervals of at most 30 days, separated by commas.",
							WEBHOOK_MAX_SCHEDULE);
		free(sched);
		return false;
	}
	*extra = sched;
	return true;
}

static void
assign_retry_schedule(const char *newval, void *extra)
{
	webhook_schedule = (const RetrySchedule *) extra;
}

/* check_positive_interval: the setting must be a positive interval */
static bool
check_positive_interval(char **newval, void **extra, GucSource source)
{
	double		s;

	if (*newval == NULL || !parse_interval_s(*newval, &s) || s <= 0)
	{
		GUC_check_errdetail("The setting must be a positive interval.");
		return false;
	}
	return true;
}

/*
 * WebhooksInit
 *		Defines the webhook settings of SPEC §4 (superuser only: they decide
 *		how partners are treated).
 */
void
WebhooksInit(void)
{
	DefineCustomStringVariable("userlife.webhook_retry_schedule",
							   "Delays between webhook attempts after the first.",
							   "Each delay gets +-20% jitter; after the last one the delivery is dead.",
							   &webhook_retry_schedule_text,
							   "5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h",
							   PGC_SUSET, 0, check_retry_schedule, assign_retry_schedule, NULL);
	DefineCustomIntVariable("userlife.webhook_timeout",
							"Time limit of one webhook request.",
							NULL,
							&webhook_timeout_ms, 15000, 100, 600 * 1000,
							PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomStringVariable("userlife.webhook_disable_after",
							   "An endpoint whose every attempt failed for this long is disabled.",
							   NULL,
							   &webhook_disable_after_text, "5 days",
							   PGC_SUSET, 0, check_positive_interval, NULL, NULL);
	DefineCustomStringVariable("userlife.webhook_attempt_retention",
							   "Attempt log rows older than this are dropped by run_maintenance.",
							   NULL,
							   &webhook_attempt_retention_text, "30 days",
							   PGC_SUSET, 0, check_positive_interval, NULL, NULL);
}

/* setting_interval: a checked interval setting as SQL interval text */
static Datum
setting_interval(const char *text)
{
	return DirectFunctionCall3(interval_in, CStringGetDatum(text),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/*
 * enter_admin
 *		Endpoints, secrets and replay are for userlife_admin and
 *		userlife_owner members (and superusers), on partners they are bound
 *		to; then as AccessEnter.
 */
static void
enter_admin(FunctionCallInfo fcinfo, AccessScope *scope, const char *partner)
{
	Oid			role = GetUserId();
	Oid			admin = get_role_oid("userlife_admin", true);

	/* a standby answers 25006 before the role check, as AccessEnter does */
	AccessRefuseOnStandby(fcinfo);
	if (!AccessIsPartnerWide(role) &&
		!(OidIsValid(admin) && has_privs_of_role(role, admin)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: role \"%s\" is not a member of \"userlife_admin\"",
						GetUserNameFromId(role, false))));
	AccessEnter(scope, ACCESS_READER, partner);
}

/*
 * check_url
 *		An absolute http:// or https:// URL without credentials, of at most
 *		2048 bytes of printable ASCII, with a host and at most a valid port.
 *		Where it may point is decided by the delivery program, on the
 *		address it connects to.
 */
static void
check_url(const char *url)
{
	size_t		len = strlen(url);
	const char *p;
	const char *host;
	const char *end;
	const char *why = NULL;
	bool		credentials = false;

	for (p = url; *p && why == NULL; p++)
		if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f)
			why = "A URL is printable ASCII without spaces; percent-encode anything else.";
	if (why == NULL && len > WEBHOOK_MAX_URL)
		why = psprintf("A URL has at most %d bytes.", WEBHOOK_MAX_URL);
	if (why == NULL)
	{
		if (pg_strncasecmp(url, "https://", 8) == 0)
			host = url + 8;
		else if (pg_strncasecmp(url, "http://", 7) == 0)
			host = url + 7;
		else
			host = NULL;
		if (host == NULL)
			why = "A webhook URL starts with https:// or http://.";
		else
		{
			end = host + strcspn(host, "/?#");
			if (memchr(host, '@', end - host) != NULL)
			{
				why = "A webhook URL must not carry credentials.";
				credentials = true;
			}
			else if (end == host || *host == ':')
				why = "A webhook URL names a host.";
			else if (strchr(url, '#') != NULL)
				why = "A webhook URL has no fragment.";
			else
			{
				const char *colon = NULL;
				const char *q;

				/* the port: after the last ':' outside an [IPv6] literal */
				for (q = host; q < end; q++)
					if (*q == ']')
						colon = NULL;
					else if (*q == ':')
						colon = q;
				if (colon != NULL)
				{
					long		port = 0;

					for (q = colon + 1; q < end && port <= 65535; q++)
						port = (*q >= '0' && *q <= '9') ? port * 10 + (*q - '0') : 70000;
					if (q == colon + 1 || port < 1 || port > 65535)
						why = "A port is a number from 1 to 65535.";
				}
			}
		}
	}
	/* a URL with credentials is not repeated: the message goes to the server log */
	if (why != NULL && credentials)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook url"),
				 errdetail_internal("%s", why)));
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid webhook url \"%s\"", UserlifeMsgValue(url)),
				 errdetail_internal("%s", why)));
}

/* check_event_types: NULL (all), or a non-empty array of known types */
static void
check_event_types(FunctionCallInfo fcinfo, int argno)
{
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	if (PG_ARGISNULL(argno))
		return;
	arr = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_types must be a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event_types must not be empty"),
				 errhint("Pass NULL to receive every event type.")));
	for (i = 0; i < n; i++)
	{
		char	   *t = nulls[i] ? NULL : TextDatumGetCString(elems[i]);

		if (t == NULL || (strcmp(t, known_event_types[0]) != 0 &&
						  strcmp(t, known_event_types[1]) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown event type \"%s\"", t ? UserlifeMsgValue(t) : "NULL"),
					 errdetail("The event types are \"%s\" and \"%s\".",
							   known_event_types[0], known_event_types[1])));
	}
}

/* new_secret: 32 random bytes as bytea */
static bytea *
new_secret(void)
{
	bytea	   *secret = (bytea *) palloc(VARHDRSZ + WEBHOOK_SECRET_BYTES);

	SET_VARSIZE(secret, VARHDRSZ + WEBHOOK_SECRET_BYTES);
	if (!pg_strong_random(VARDATA(secret), WEBHOOK_SECRET_BYTES))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random webhook secret")));
	return secret;
}

/* base64: standard base64 of len bytes, NUL-terminated */
static char *
base64(const uint8 *data, int len)
{
	int			cap = pg_b64_enc_len(len) + 1;
	char	   *out = palloc(cap);
	int			n = pg_b64_encode((const char *) data, len, out, cap);

	if (n < 0)
		elog(ERROR, "base64 encoding failed");
	out[n] = '\0';
	return out;
}

/* secret_text: "whsec_" and the base64 of the secret bytes */
static char *
secret_text(bytea *secret)
{
	return psprintf(WEBHOOK_SECRET_PREFIX "%s",
					base64((uint8 *) VARDATA(secret), VARSIZE(secret) - VARHDRSZ));
}

/* insert_secret: stores a new secret of the endpoint; its whsec_ text */
static char *
insert_secret(int64 endpoint_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT8OID, BYTEAOID};
	Datum		values[2];
	bytea	   *secret = new_secret();

	values[0] = Int64GetDatum(endpoint_id);
	values[1] = PointerGetDatum(secret);
	UserlifeRun(&plan,
				"INSERT INTO userlife.webhook_secrets (endpoint_id, secret) VALUES ($1, $2)",
				2, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	return secret_text(secret);
}

/*
 * deny_endpoint: 42501 for an endpoint id the caller may not act on, with
 * the same message (and no hint) whether or not it exists
 */
static void
deny_endpoint(int64 endpoint_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for webhook endpoint %lld", (long long) endpoint_id)));
}

/*
 * lock_endpoint
 *		Locks the endpoint row and checks it belongs to the partner: 42501
 *		(without a hint) when it is another partner's, and also when no
 *		endpoint has that id and the caller is bound to some partners only,
 *		so that such a caller cannot tell another partner's ids from unused
 *		ones.  For superusers and userlife_owner members (who see every
 *		endpoint) an unused id is P0002.  Only the partner's own row is
 *		locked: locking another partner's row first would make the caller
 *		wait for that partner's transactions (55P03 under lock_timeout where
 *		an unused id answers 42501 at once) and hold up that partner's
 *		claims.  Returns whether it is enabled.
 */
static bool
lock_endpoint(const char *partner, int64 endpoint_id, Oid caller)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr find_plan = NULL;
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	bool		isnull;

	values[0] = Int64GetDatum(endpoint_id);
	values[1] = CStringGetTextDatum(partner);
	UserlifeRun(&plan,
				"SELECT w.enabled FROM userlife.webhook_endpoints w"
				" WHERE w.endpoint_id = $1 AND w.partner = $2 FOR NO KEY UPDATE",
				2, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
		return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!AccessIsPartnerWide(caller))
		deny_endpoint(endpoint_id);
	/* a caller that sees every endpoint may learn whether the id is used */
	UserlifeRun(&find_plan, "SELECT 1 FROM userlife.webhook_endpoints w WHERE w.endpoint_id = $1",
				1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
		deny_endpoint(endpoint_id);
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("webhook endpoint %lld of partner \"%s\" does not exist",
					(long long) endpoint_id, partner)));
	pg_unreachable();
}

/*
 * EndpointCall: a call on one webhook endpoint of a partner, by the
 * functions whose first arguments are (partner, endpoint_id).
 * endpoint_args reads both (22004 when NULL) where the call is declared.
 */
typedef struct EndpointCall
{
	AccessScope scope;
	const char *partner;
	int64		endpoint_id;
} EndpointCall;

static EndpointCall
endpoint_args(FunctionCallInfo fcinfo)
{
	EndpointCall call;

	call.partner = UserlifeRequireText(fcinfo, 0, "partner");
	UserlifeRequireArg(fcinfo, 1, "endpoint_id");
	call.endpoint_id = PG_GETARG_INT64(1);
	return call;
}

/*
 * enter_endpoint: for the functions of one endpoint of a partner: checks
 * the partner id, enters as enter_admin does and locks the endpoint
 * (lock_endpoint); returns whether it is enabled
 */
static bool
enter_endpoint(FunctionCallInfo fcinfo, EndpointCall *call)
{
	UserlifeCheckPartnerId(call->partner);
	enter_admin(fcinfo, &call->scope, call->partner);
	return lock_endpoint(call->partner, call->endpoint_id, call->scope.caller);
}

/* result_jsonb: column 1 of the first row of the last SPI result, copied out of SPI */
static Datum
result_jsonb(void)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

	return SPI_datumTransfer(d, false, -1);
}

/*
 * outbox_position: the newest event id handed out so far.  Read from the
 * sequence, which shows ids of transactions still running too.
 */
static int64
outbox_position(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;

	UserlifeRun(&plan,
				"SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END"
				" FROM userlife.events_event_id_seq s",
				0, NULL, NULL, NULL, true, 1, SPI_OK_SELECT);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* add_webhook_endpoint(partner, url, event_types): {"endpoint_id", "secret"} */
Datum
userlife_add_webhook_endpoint(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *partner = UserlifeRequireText(fcinfo, 0, "partner");
	char	   *url = UserlifeRequireText(fcinfo, 1, "url");
	AccessScope scope;
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTARRAYOID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	int64		endpoint_id;
	char	   *secret;
	Datum		result;

	UserlifeCheckPartnerId(partner);
	check_url(url);
	check_event_types(fcinfo, 2);
	enter_admin(fcinfo, &scope, partner);
	LifecycleLockPartner(partner);
	values[0] = CStringGetTextDatum(partner);
	values[1] = CStringGetTextDatum(url);
	values[2] = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	/* events whose ids were handed out before now are not the endpoint's */
	values[3] = Int64GetDatum(outbox_position());
	UserlifeRun(&plan,
				"INSERT INTO userlife.webhook_endpoints"
				" (partner, url, event_types, cursor_event_id, start_event_id)"
				" VALUES ($1, $2, $3, $4, $4) RETURNING endpoint_id",
				4, argtypes, values, nulls, false, 0, SPI_OK_INSERT_RETURNING);
	endpoint_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	secret = insert_secret(endpoint_id);
	result = DirectFunctionCall1(jsonb_in,
								 CStringGetDatum(psprintf("{\"endpoint_id\": " INT64_FORMAT
														  ", \"secret\": \"%s\"}",
														  endpoint_id, secret)));
	AccessLeave(&scope);
	PG_RETURN_DATUM(result);
}

/*
 * rotate_webhook_secret(partner, endpoint_id, grace): a new secret; the
 * ones valid until now stay valid for grace (at most), so that requests
 * carry both signatures meanwhile.
 */
Datum
userlife_rotate_webhook_secret(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	EndpointCall call = endpoint_args(fcinfo);
	Interval   *grace;
	double		grace_s;
	Oid			argtypes[2] = {INT8OID, INTERVALOID};
	Datum		values[2];
	char	   *secret;

	UserlifeRequireArg(fcinfo, 2, "grace");
	grace = PG_GETARG_INTERVAL_P(2);
	grace_s = grace->time / 1000000.0 + grace->day * 86400.0 + grace->month * 30.0 * 86400.0;
	if (grace_s < 0 || grace_s > 30 * 86400.0 || grace->month < 0 || grace->day < 0 || grace->time < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("grace must be between 0 and 30 days")));
	(void) enter_endpoint(fcinfo, &call);
	values[0] = Int64GetDatum(call.endpoint_id);
	values[1] = IntervalPGetDatum(grace);
	UserlifeRun(&plan,
				"UPDATE userlife.webhook_secrets s SET expires_at = pg_catalog.clock_timestamp() + $2"
				" WHERE s.endpoint_id = $1 AND (s.expires_at IS NULL"
				" OR s.expires_at > pg_catalog.clock_timestamp() + $2)",
				2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	secret = insert_secret(call.endpoint_id);
	AccessLeave(&call.scope);
	PG_RETURN_TEXT_P(cstring_to_text(secret));
}

/* set_webhook_endpoint(partner, endpoint_id, enabled): the endpoint as JSON */
Datum
userlife_set_webhook_endpoint(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	EndpointCall call = endpoint_args(fcinfo);
	Oid			argtypes[3] = {INT8OID, BOOLOID, TEXTOID};
	Datum		values[3];
	Datum		result;

	UserlifeRequireArg(fcinfo, 2, "enabled");
	(void) enter_endpoint(fcinfo, &call);
	values[0] = Int64GetDatum(call.endpoint_id);
	values[1] = PG_GETARG_DATUM(2);
	values[2] = CStringGetTextDatum(psprintf("disabled by role \"%s\"",
											 GetUserNameFromId(call.scope.caller, false)));
	/* enabling starts the failure clock afresh */
	UserlifeRun(&plan,
				"UPDATE userlife.webhook_endpoints w SET enabled = $2,"
				" disabled_reason = CASE WHEN $2 THEN NULL WHEN w.enabled THEN $3 ELSE w.disabled_reason END,"
				" failing_since = CASE WHEN $2 AND NOT w.enabled THEN NULL ELSE w.failing_since END"
				" WHERE w.endpoint_id = $1"
				" RETURNING pg_catalog.jsonb_build_object('endpoint_id', w.endpoint_id,"
				" 'partner', w.partner, 'url', w.url, 'event_types', w.event_types,"
				" 'enabled', w.enabled, 'disabled_reason', w.disabled_reason)",
				3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE_RETURNING);
	result = result_jsonb();
	AccessLeave(&call.scope);
	PG_RETURN_DATUM(result);
}

/*
 * remove_webhook_endpoint(partner, endpoint_id): true when removed, false
 * when no endpoint has that id (any more).  A caller bound to some partners
 * only gets 42501 for an unused id, as for another partner's (lock_endpoint).
 */
Datum
userlife_remove_webhook_endpoint(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr find_plan = NULL;
	EndpointCall call = endpoint_args(fcinfo);
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	bool		removed;

	UserlifeCheckPartnerId(call.partner);
	enter_admin(fcinfo, &call.scope, call.partner);
	values[0] = Int64GetDatum(call.endpoint_id);
	UserlifeRun(&find_plan, "SELECT 1 FROM userlife.webhook_endpoints w WHERE w.endpoint_id = $1",
				1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
	removed = SPI_processed > 0;
	if (removed || !AccessIsPartnerWide(call.scope.caller))
	{
		(void) lock_endpoint(call.partner, call.endpoint_id, call.scope.caller);
		UserlifeRun(&plan, "DELETE FROM userlife.webhook_endpoints w WHERE w.endpoint_id = $1",
					1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	}
	AccessLeave(&call.scope);
	PG_RETURN_BOOL(removed);
}

/*
 * replay_webhooks(partner, endpoint_id, since, until): every event of the
 * window already queued for the endpoint, or passed by its cursor, is
 * queued again with a fresh schedule; later events come anyway.
 */
Datum
userlife_replay_webhooks(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	EndpointCall call = endpoint_args(fcinfo);
	Oid			argtypes[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	int64		queued;

	UserlifeRequireArg(fcinfo, 2, "since");
	UserlifeRequireArg(fcinfo, 3, "until");
	if (PG_GETARG_TIMESTAMPTZ(2) > PG_GETARG_TIMESTAMPTZ(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("since must not be later than until")));
	if (!enter_endpoint(fcinfo, &call))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("webhook endpoint %lld of partner \"%s\" is disabled",
						(long long) call.endpoint_id, call.partner),
				 errhint("Enable it with userlife.set_webhook_endpoint() first.")));
	values[0] = Int64GetDatum(call.endpoint_id);
	values[1] = PG_GETARG_DATUM(2);
	values[2] = PG_GETARG_DATUM(3);
	UserlifeRun(&plan,
				"INSERT INTO userlife.webhook_queue AS q"
				" (endpoint_id, event_id, partner, user_id, event_type, next_attempt_at)"
				" SELECT w.endpoint_id, e.event_id, e.partner, e.user_id, e.event_type, pg_catalog.now()"
				" FROM userlife.webhook_endpoints w JOIN userlife.events e"
				"  ON e.partner = w.partner AND e.event_id <= w.cursor_event_id"
				"  AND e.event_id > w.start_event_id"
				" WHERE w.endpoint_id = $1 AND e.at >= $2 AND e.at <= $3"
				"  AND (w.event_types IS NULL OR e.event_type = ANY (w.event_types))"
				" ON CONFLICT (endpoint_id, event_id) DO UPDATE SET state = 'pending', attempts = 0,"
				"  next_attempt_at = pg_catalog.now(), last_status = NULL, last_error = NULL,"
				"  delivered_at = NULL, updated_at = pg_catalog.now()",
				3, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	queued = (int64) SPI_processed;
	AccessLeave(&call.scope);
	PG_RETURN_INT64(queued);
}

/*
 * event_writers
 *		The transaction ids of the transactions that may still commit an
 *		event with an id the caller has already read from the sequence:
 *		those holding a lock that conflicts with SHARE on userlife.events
 *		(every insert holds ROW EXCLUSIVE until its end) and that have a
 *		transaction id.  One without an id cannot hold an event id yet: a
 *		writer gets its transaction id (the audit row's txid) before its
 *		event id.  So a VACUUM, or any transaction that never touched the
 *		outbox, is not waited for.
 */
static TransactionId *
event_writers(int *count)
{
	LOCKTAG		tag;
	VirtualTransactionId *holders;
	TransactionId *xids;
	int			n = 0;
	int			i;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, UserlifeRelid("events"));
	holders = GetLockConflicts(&tag, ShareLock, count);
	xids = palloc(sizeof(TransactionId) * Max(*count, 1));
	for (i = 0; i < *count && VirtualTransactionIdIsValid(holders[i]); i++)
	{
		TransactionId xid;
		TransactionId xmin;

		if (VirtualXactLock(holders[i], false))
			continue;			/* ended meanwhile */
		BackendIdGetTransactionIds(holders[i].backendId, &xid, &xmin);
		if (TransactionIdIsValid(xid) && !TransactionIdIsCurrentTransactionId(xid))
			xids[n++] = xid;
	}
	*count = n;
	return xids;
}

/*
 * A position read by an earlier claim of this backend and the writers that
 * were running then: safe once they have all ended.  Kept in
 * TopMemoryContext (the array grows, never per call).
 */
static int64 candidate_position = -1;
static TransactionId *candidate_xids = NULL;
static int	candidate_n = 0;
static int	candidate_cap = 0;

/* still_running: keeps the xids still in progress at the front; returns how many */
static int
still_running(TransactionId *xids, int n)
{
	int			left = 0;
	int			i;

	for (i = 0; i < n; i++)
		if (TransactionIdIsInProgress(xids[i]))
			xids[left++] = xids[i];
	return left;
}

/* remember_candidate: position and its writers, for a later claim */
static void
remember_candidate(int64 position, TransactionId *xids, int n)
{
	if (n > candidate_cap)
	{
		candidate_xids = candidate_xids ?
			repalloc(candidate_xids, sizeof(TransactionId) * n) :
			MemoryContextAlloc(TopMemoryContext, sizeof(TransactionId) * n);
		candidate_cap = n;
	}
	memcpy(candidate_xids, xids, sizeof(TransactionId) * n);
	candidate_n = n;
	candidate_position = position;
}

/*
 * safe_outbox_position
 *		The newest event id below which every event is committed or will
 *		never be: the sequence's last value, once every transaction that was
 *		writing events when it was read has ended.  When they do not end
 *		within WEBHOOK_HORIZON_WAIT_MS, the position an earlier claim read,
 *		if its writers have ended since, and this one is kept for a later
 *		claim: under a steady write load some writer is nearly always
 *		running, and waiting for the ones of the moment alone (descheduled
 *		on a busy machine) left the cursors standing still.  -1 when no
 *		position is safe yet.  *newest is the sequence's last value: events
 *		between the two are held back for a later claim.  The statements
 *		that read the outbox after it must take a new snapshot (READ
 *		COMMITTED).
 */
static int64
safe_outbox_position(int64 *newest)
{
	int64		position = *newest = outbox_position();
	int64		safe = -1;
	int			n;
	TransactionId *xids = event_writers(&n);
	int			waited_ms = 0;

	/* a candidate above the sequence is from before the extension was made again */
	if (candidate_position > position)
		candidate_position = -1;
	while ((n = still_running(xids, n)) > 0 && waited_ms < WEBHOOK_HORIZON_WAIT_MS)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
		waited_ms++;
	}
	if (n == 0)
	{
		candidate_position = -1;
		return position;
	}
	if (candidate_position >= 0 &&
		(candidate_n = still_running(candidate_xids, candidate_n)) == 0)
	{
		safe = candidate_position;
		candidate_position = -1;
	}
	if (candidate_position < 0)
		remember_candidate(position, xids, n);
	return safe;
}

/*
 * queue_new_events
 *		Moves the events up to the safe position past the cursors of the
 *		enabled endpoints the caller may serve into webhook_queue: at most
 *		"rows" of them per endpoint, the oldest (the cursor stops after the
 *		last one taken).  Only what the claim can hand out soon is queued:
 *		while the program cannot keep up, the backlog waits in the outbox,
 *		where it is already written, instead of being copied into the queue
 *		(with its indexes) long before it can go.  An endpoint being
 *		advanced by another claim is skipped.  Returns whether an endpoint's
 *		cursor stayed below the position (events left for a later claim).
 */
static bool
queue_new_events(int64 position, Datum partner, bool partner_null, Oid caller, int32 rows)
{
	static SPIPlanPtr plan = NULL;
	uint64		i;
	Oid			argtypes[6] = {INT8OID, TEXTOID, BOOLOID, OIDOID, INT8OID, INT4OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = Int64GetDatum(position);
	values[1] = partner;
	nulls[1] = partner_null ? 'n' : ' ';
	values[2] = BoolGetDatum(AccessIsPartnerWide(caller));
	values[3] = ObjectIdGetDatum(caller);
	values[4] = Int64GetDatum(WEBHOOK_QUEUE_STEP);
	values[5] = Int32GetDatum(rows);
	UserlifeRun(&plan,
				"WITH ep AS ("
				" SELECT w.endpoint_id, w.partner, w.event_types, w.cursor_event_id AS from_id,"
				"  LEAST($1, w.cursor_event_id + $5) AS to_id"
				" FROM userlife.webhook_endpoints w"
				" WHERE w.enabled AND w.cursor_event_id < $1"
				"  AND ($2::pg_catalog.text IS NULL OR w.partner = $2)"
				"  AND " WEBHOOK_VISIBLE("w.partner", "$3", "$4")
				" FOR NO KEY UPDATE SKIP LOCKED), "
				"picked AS ("
				" SELECT ep.endpoint_id, e.event_id, e.partner, e.user_id, e.event_type"
				" FROM ep CROSS JOIN LATERAL (SELECT e.event_id, e.partner, e.user_id, e.event_type"
				"  FROM userlife.events e WHERE e.event_id > ep.from_id AND e.event_id <= ep.to_id"
				"   AND e.partner = ep.partner"
				"   AND (ep.event_types IS NULL OR e.event_type = ANY (ep.event_types))"
				"  ORDER BY e.event_id LIMIT $6) e), "
				"ins AS ("
				" INSERT INTO userlife.webhook_queue"
				"  (endpoint_id, event_id, partner, user_id, event_type, next_attempt_at)"
				" SELECT p.endpoint_id, p.event_id, p.partner, p.user_id, p.event_type, pg_catalog.now()"
				" FROM picked p ON CONFLICT DO NOTHING) "
				"UPDATE userlife.webhook_endpoints w SET cursor_event_id ="
				" COALESCE((SELECT pg_catalog.max(p.event_id) FROM picked p WHERE p.endpoint_id = ep.endpoint_id"
				"  HAVING pg_catalog.count(*) >= $6), ep.to_id)"
				" FROM ep WHERE w.endpoint_id = ep.endpoint_id"
				" RETURNING w.cursor_event_id < $1",
				6, argtypes, values, nulls, false, 0, SPI_OK_UPDATE_RETURNING);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)))
			return true;
	}
	return false;
}

/*
 * sign: the webhook-signature header value: "v1,<base64 HMAC-SHA256>" for
 * each secret, space-separated, over id "." timestamp "." body.
 */
static char *
sign(ArrayType *secrets, const char *id, const char *ts, const char *body, size_t body_len)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;
	StringInfoData out;

	deconstruct_array(secrets, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	initStringInfo(&out);
	for (i = 0; i < n; i++)
	{
		bytea	   *key = DatumGetByteaPP(elems[i]);
		pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
		uint8		mac[32];

		if (ctx == NULL ||
			pg_hmac_init(ctx, (uint8 *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) id, strlen(id)) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) ".", 1) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) ts, strlen(ts)) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) ".", 1) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) body, body_len) < 0 ||
			pg_hmac_final(ctx, mac, sizeof(mac)) < 0)
			elog(ERROR, "could not compute the webhook signature: %s",
				 ctx ? pg_hmac_error(ctx) : "out of memory");
		pg_hmac_free(ctx);
		appendStringInfo(&out, "%sv1,%s", i > 0 ? " " : "", base64(mac, sizeof(mac)));
	}
	return out.data;
}

/*
 * pick_due
 *		Locks up to max due deliveries, each the oldest pending one of its
 *		user and endpoint, in the order they fell due; returns how many (the
 *		SPI result holds endpoint_id, event_id).
 *
 *		Planned with enable_sort off, so that the plan walks
 *		webhook_queue_due_idx in its order and stops at max: the planner
 *		sizes the pending deliveries from the last ANALYZE, which may have
 *		seen none (the partial indexes then count zero rows), and with that
 *		estimate it chose to read every pending delivery and sort them, at
 *		each claim.  "The oldest of its user" is the first entry of the
 *		user's pending range in webhook_queue_user_id_idx (state is keyed
 *		before event_id, so its dead entries are not passed over), a LIMIT
 *		1 subplan: as NOT
 *		EXISTS (an older pending one) the same estimate made it an anti join
 *		scanning every pending delivery for each candidate (3.7 s a claim at
 *		a backlog of 50,000).
 */
static uint64
pick_due(int32 max, Datum partner, bool partner_null, Oid caller)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[4] = {INT4OID, TEXTOID, BOOLOID, OIDOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int			nestlevel = NewGUCNestLevel();

	values[0] = Int32GetDatum(max);
	values[1] = partner;
	nulls[1] = partner_null ? 'n' : ' ';
	values[2] = BoolGetDatum(AccessIsPartnerWide(caller));
	values[3] = ObjectIdGetDatum(caller);
	(void) set_config_option("enable_sort", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	UserlifeRun(&plan,
				"SELECT q.endpoint_id, q.event_id FROM userlife.webhook_queue q"
				" WHERE q.state = 'pending' AND q.next_attempt_at <= pg_catalog.now()"
				"  AND ($2::pg_catalog.text IS NULL OR q.partner = $2)"
				"  AND " WEBHOOK_VISIBLE("q.partner", "$3", "$4")
				"  AND EXISTS (SELECT 1 FROM userlife.webhook_endpoints w"
				"   WHERE w.endpoint_id = q.endpoint_id AND w.enabled)"
				"  AND q.event_id = (SELECT p.event_id FROM userlife.webhook_queue p"
				"   WHERE p.endpoint_id = q.endpoint_id AND p.user_id = q.user_id"
				"   AND p.state = 'pending' ORDER BY p.event_id LIMIT 1)"
				" ORDER BY q.next_attempt_at, q.event_id LIMIT $1 FOR UPDATE OF q SKIP LOCKED",
				4, argtypes, values, nulls, false, 0, SPI_OK_SELECT);
	AtEOXact_GUC(true, nestlevel);
	return SPI_processed;
}

/*
 * claim_due
 *		Claims up to max due deliveries (pick_due), holding them for the
 *		request's time limit plus a margin; returns them with what the
 *		request needs.  Deliveries whose event left the outbox come back
 *		with a NULL body.
 */
static uint64
claim_due(int32 max, Datum partner, bool partner_null, Oid caller)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {INT8ARRAYOID, INT8ARRAYOID, INTERVALOID};
	Datum		values[3];
	Interval	lease = {0, 0, 0};
	uint64		n = pick_due(max, partner, partner_null, caller);
	Datum	   *endpoints;
	Datum	   *events;
	uint64		i;

	if (n == 0)
		return 0;				/* emit_requests reads the empty result */
	endpoints = palloc(sizeof(Datum) * n);
	events = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		endpoints[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		events[i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
	}
	lease.time = ((int64) webhook_timeout_ms + WEBHOOK_LEASE_MARGIN_S * 1000) * 1000;
	values[0] = PointerGetDatum(construct_array(endpoints, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(events, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = IntervalPGetDatum(&lease);
	/* the body's timestamp is the change's, in UTC whatever the session's TimeZone */
	UserlifeRun(&plan,
				"WITH claimed AS ("
				" UPDATE userlife.webhook_queue q SET attempts = q.attempts + 1,"
				"  next_attempt_at = pg_catalog.now() + $3, updated_at = pg_catalog.now()"
				" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS picked(endpoint_id, event_id)"
				" WHERE q.endpoint_id = picked.endpoint_id AND q.event_id = picked.event_id"
				" RETURNING q.endpoint_id, q.event_id, q.attempts) "
				"SELECT c.endpoint_id, c.event_id, c.attempts, w.url,"
				" '{\"type\":' OPERATOR(pg_catalog.||) pg_catalog.to_json(e.event_type)::pg_catalog.text"
				" OPERATOR(pg_catalog.||) ',\"timestamp\":\"' OPERATOR(pg_catalog.||)"
				" pg_catalog.to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
				" OPERATOR(pg_catalog.||) '\",\"data\":' OPERATOR(pg_catalog.||) e.payload::pg_catalog.text"
				" OPERATOR(pg_catalog.||) '}',"
				" ARRAY(SELECT s.secret FROM userlife.webhook_secrets s WHERE s.endpoint_id = c.endpoint_id"
				"  AND (s.expires_at IS NULL OR s.expires_at > pg_catalog.clock_timestamp())"
				"  ORDER BY s.secret_id DESC)"
				" FROM claimed c JOIN userlife.webhook_endpoints w ON w.endpoint_id = c.endpoint_id"
				" LEFT JOIN userlife.events e ON e.event_id = c.event_id"
				" ORDER BY c.event_id",
				3, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	return n;
}

/* bury_orphan: a claimed delivery whose event left the outbox is dead */
static void
bury_orphan(int64 endpoint_id, int64 event_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		values[2];

	values[0] = Int64GetDatum(endpoint_id);
	values[1] = Int64GetDatum(event_id);
	UserlifeRun(&plan,
				"UPDATE userlife.webhook_queue q SET state = 'dead', next_attempt_at = NULL,"
				" last_error = 'the event is no longer in the outbox', updated_at = pg_catalog.now()"
				" WHERE q.endpoint_id = $1 AND q.event_id = $2",
				2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
}

/*
 * emit_requests: one result row per claimed delivery, signed at the time of
 * this attempt.  Reads the last SPI result (claim_due's).
 */
static void
emit_requests(ReturnSetInfo *rsinfo)
{
	SPITupleTable *tuptable = SPI_tuptable;
	uint64		n = SPI_processed;
	uint64		i;
	char		ts[32];
	List	   *orphans = NIL;
	ListCell   *lc;

	snprintf(ts, sizeof(ts), "%lld", (long long) time(NULL));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = tuptable->vals[i];
		TupleDesc	desc = tuptable->tupdesc;
		bool		isnull[6];
		Datum		d[6];
		Datum		out[9];
		bool		outnull[9] = {false};
		char	   *id;
		text	   *body;
		int			k;

		for (k = 0; k < 6; k++)
			d[k] = SPI_getbinval(tup, desc, k + 1, &isnull[k]);
		if (isnull[4])
		{
			orphans = lappend(orphans, psprintf(INT64_FORMAT " " INT64_FORMAT,
												DatumGetInt64(d[0]), DatumGetInt64(d[1])));
			continue;
		}
		id = psprintf(INT64_FORMAT, DatumGetInt64(d[1]));
		body = DatumGetTextPP(d[4]);
		out[0] = d[0];
		out[1] = d[1];
		out[2] = d[2];
		out[3] = d[3];
		out[4] = PointerGetDatum(body);
		out[5] = CStringGetTextDatum(id);
		out[6] = CStringGetTextDatum(ts);
		out[7] = CStringGetTextDatum(sign(DatumGetArrayTypeP(d[5]), id, ts,
										  VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body)));
		out[8] = Int32GetDatum(webhook_timeout_ms);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
	}
	foreach(lc, orphans)
	{
		long long	endpoint_id;
		long long	event_id;

		if (sscanf((char *) lfirst(lc), "%lld %lld", &endpoint_id, &event_id) == 2)
			bury_orphan((int64) endpoint_id, (int64) event_id);
	}
}

/*
 * Whether the last claim of this session left events above the safe
 * position (writers still running) or past a cursor (queued later), for
 * webhook_claim_held_back.
 */
static bool claim_held_back = false;

/*
 * claim_webhook_deliveries(max_deliveries, partner): claims due
 * deliveries and, when they are fewer than max_deliveries, queues the
 * events committed since the last claim for the endpoints and claims
 * again; returns them signed, ready to send.  A delivery not
 * completed within the time limit plus 5 s can be claimed again.
 */
Datum
userlife_claim_webhook_deliveries(PG_FUNCTION_ARGS)
{
	int32		max = PG_ARGISNULL(0) ? 100 : PG_GETARG_INT32(0);
	char	   *partner = UserlifeOptionalText(fcinfo, 1);
	Datum		partner_d = partner ? CStringGetTextDatum(partner) : (Datum) 0;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AccessScope scope;
	int64		position;
	int64		newest;
	uint64		claimed;

	if (max < 1 || max > WEBHOOK_MAX_CLAIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_deliveries must be between 1 and %d", WEBHOOK_MAX_CLAIM)));
	if (partner != NULL)
		UserlifeCheckPartnerId(partner);
	/* a transaction snapshot would not see the events the position covers */
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("claim_webhook_deliveries must run in a READ COMMITTED transaction")));
	InitMaterializedSRF(fcinfo, 0);
	AccessEnter(&scope, ACCESS_DEVELOPER, partner);
	position = safe_outbox_position(&newest);
	/* events may wait above the safe position or the cursors: claim_held_back tells the program */
	claim_held_back = position < newest;
	/* what is queued and due first; new events only when that is not enough */
	claimed = claim_due(max, partner_d, partner == NULL, scope.caller);
	emit_requests(rsinfo);
	if (claimed < (uint64) max && position > 0)
	{
		if (queue_new_events(position, partner_d, partner == NULL, scope.caller,
							 Max(2 * max, WEBHOOK_QUEUE_MIN_ROWS)))
			claim_held_back = true;
		(void) claim_due(max - (int32) claimed, partner_d, partner == NULL, scope.caller);
		emit_requests(rsinfo);
	}
	AccessLeave(&scope);
	return (Datum) 0;
}

/*
 * webhook_claim_held_back(): whether the last claim_webhook_deliveries of
 * this session held events back because writers that could still commit
 * events below them were running.  A program that got fewer deliveries
 * than it asked for polls again after userlife.notify_interval when this
 * is true, instead of waiting for a notification: the writer that holds
 * them back may commit without one (one per backend and interval).  Says
 * nothing about any partner's data; the EXECUTE grant is the claim's.
 */
Datum
userlife_webhook_claim_held_back(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(claim_held_back);
}

/*
 * next_delay_s
 *		Seconds until the next attempt after failed attempt number
 *		"attempt", or -1 when the schedule is over (dead).  Each delay gets
 *		+-20% jitter; a Retry-After lengthens it, to at most twice the
 *		scheduled delay.
 */
static double
next_delay_s(int32 attempt, bool has_retry_after, int32 retry_after)
{
	const RetrySchedule *sched = webhook_schedule;
	double		scheduled;
	double		delay;

	if (sched == NULL || attempt < 1 || attempt > sched->n)
		return -1;
	scheduled = sched->delay_s[attempt - 1];
	delay = scheduled * (0.8 + 0.4 * pg_prng_double(&pg_global_prng_state));
	if (has_retry_after && retry_after > delay)
		delay = Min((double) retry_after, 2 * scheduled);
	return delay;
}

/*
 * One attempt to record: the arguments of complete_webhook_delivery, or
 * one element of the arrays of complete_webhook_deliveries; and what
 * recording it found.
 */
typedef struct Attempt
{
	int64		endpoint_id;
	int64		event_id;
	int32		attempt;
	bool		has_status;		/* false: no HTTP answer came */
	int32		status;
	bool		has_latency;
	int32		latency_ms;
	text	   *error;			/* NULL when none */
	text	   *response;		/* NULL when none */
	bool		has_retry_after;
	int32		retry_after;
	bool		found;			/* the delivery exists */
	char	   *partner;		/* its partner, when found */
	bool		current;		/* pending, and this attempt is its claim's */
	const char *state;			/* the answer */
} Attempt;

/* check_attempt: 22023 for a status outside 100-599 or a negative number */
static void
check_attempt(const Attempt *a)
{
	if (a->has_status && (a->status < 100 || a->status > 599))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid HTTP status %d", a->status)));
	if ((a->has_latency && a->latency_ms < 0) || (a->has_retry_after && a->retry_after < 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("latency_ms and retry_after must not be negative")));
}

static bool
attempt_ok(const Attempt *a)
{
	return a->has_status && a->status >= 200 && a->status < 300;
}

/* clip_response: at most the first 1 KiB of a response body, cut on a character boundary */
static Datum
clip_response(text *response)
{
	char	   *s = text_to_cstring(response);
	int			len = strlen(s);

	if (len > WEBHOOK_RESPONSE_BYTES)
		len = pg_mbcliplen(s, len, WEBHOOK_RESPONSE_BYTES);
	return PointerGetDatum(cstring_to_text_with_len(s, len));
}

/* array_of: a one-dimensional array of n values of a built-in type, with NULLs */
static Datum
array_of(Datum *values, bool *nulls, int n, Oid type)
{
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs, type,
											  typlen, typbyval, typalign));
}

/*
 * check_serves
 *		42501 (no hint) unless the caller may deliver for every endpoint of
 *		the attempts: it exists and its partner is one the caller is bound
 *		to (any, for superusers and userlife_owner members).  The answer is
 *		the same for another partner's endpoint and an unused id, and is
 *		given before anything of the deliveries is read or locked.
 */
static void
check_serves(Oid caller, const Attempt *a, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[3] = {INT8ARRAYOID, BOOLOID, OIDOID};
	Datum		values[3];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	bool		isnull;
	int			i;

	if (AccessIsPartnerWide(caller))
		return;
	for (i = 0; i < n; i++)
		ids[i] = Int64GetDatum(a[i].endpoint_id);
	values[0] = array_of(ids, NULL, n, INT8OID);
	values[1] = BoolGetDatum(false);
	values[2] = ObjectIdGetDatum(caller);
	UserlifeRun(&plan,
				"SELECT i.id FROM pg_catalog.unnest($1) AS i(id) WHERE NOT EXISTS"
				" (SELECT 1 FROM userlife.webhook_endpoints w WHERE w.endpoint_id = i.id"
				"  AND " WEBHOOK_VISIBLE("w.partner", "$2", "$3") ") LIMIT 1",
				3, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed > 0)
		deny_endpoint(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
}

/*
 * lock_deliveries
 *		Locks the deliveries of the attempts, in (endpoint_id, event_id)
 *		order, and notes for each attempt whether its delivery exists and
 *		is still waiting for it (current).  The same delivery twice in one
 *		call: only the first is current.
 */
static void
lock_deliveries(Attempt *a, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[2] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2];
	Datum	   *endpoints = palloc(sizeof(Datum) * n);
	Datum	   *events = palloc(sizeof(Datum) * n);
	int64		prev_endpoint = 0;
	int64		prev_event = 0;
	uint64		r;
	int			i;

	for (i = 0; i < n; i++)
	{
		endpoints[i] = Int64GetDatum(a[i].endpoint_id);
		events[i] = Int64GetDatum(a[i].event_id);
		a[i].found = a[i].current = false;
	}
	values[0] = array_of(endpoints, NULL, n, INT8OID);
	values[1] = array_of(events, NULL, n, INT8OID);
	UserlifeRun(&plan,
				"SELECT q.endpoint_id, q.event_id, q.partner,"
				" q.state = 'pending', q.attempts"
				" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS p(endpoint_id, event_id)"
				" JOIN userlife.webhook_queue q ON q.endpoint_id = p.endpoint_id AND q.event_id = p.event_id"
				" ORDER BY q.endpoint_id, q.event_id FOR UPDATE OF q",
				2, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		endpoint_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		int64		event_id = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		bool		pending = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		int32		attempts = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		bool		taken = false;

		if (r > 0 && endpoint_id == prev_endpoint && event_id == prev_event)
			continue;			/* the same delivery twice in the arrays */
		prev_endpoint = endpoint_id;
		prev_event = event_id;
		for (i = 0; i < n; i++)
			if (a[i].endpoint_id == endpoint_id && a[i].event_id == event_id)
			{
				a[i].found = true;
				a[i].partner = SPI_getvalue(tup, desc, 3);
				a[i].current = pending && attempts == a[i].attempt && !taken;
				taken |= a[i].current;
			}
	}
}

/* log_attempts: a row of the attempt log for each attempt whose delivery exists */
static void
log_attempts(const Attempt *a, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[7] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
	INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[7];
	Datum	   *v[7];
	bool	   *nulls[7];
	int			k;
	int			i;
	int			m = 0;

	for (k = 0; k < 7; k++)
	{
		v[k] = palloc(sizeof(Datum) * n);
		nulls[k] = palloc0(sizeof(bool) * n);
	}
	for (i = 0; i < n; i++)
	{
		if (!a[i].found)
			continue;
		v[0][m] = Int64GetDatum(a[i].endpoint_id);
		v[1][m] = Int64GetDatum(a[i].event_id);
		v[2][m] = CStringGetTextDatum(a[i].partner);
		v[3][m] = Int32GetDatum(a[i].status);
		nulls[3][m] = !a[i].has_status;
		v[4][m] = Int32GetDatum(a[i].latency_ms);
		nulls[4][m] = !a[i].has_latency;
		v[5][m] = a[i].error ? clip_response(a[i].error) : (Datum) 0;
		nulls[5][m] = a[i].error == NULL;
		v[6][m] = a[i].response ? clip_response(a[i].response) : (Datum) 0;
		nulls[6][m] = a[i].response == NULL;
		m++;
	}
	if (m == 0)
		return;
	for (k = 0; k < 7; k++)
		values[k] = array_of(v[k], nulls[k], m, k < 2 ? INT8OID : (k == 3 || k == 4) ? INT4OID : TEXTOID);
	UserlifeRun(&plan,
				"INSERT INTO userlife.webhook_attempt_log"
				" (endpoint_id, event_id, partner, at, status, latency_ms, error, response)"
				" SELECT l.e, l.ev, l.p, pg_catalog.clock_timestamp(), l.s, l.ms, l.err, l.resp"
				" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),"
				"  pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6),"
				"  pg_catalog.unnest($7)) AS l(e, ev, p, s, ms, err, resp)",
				7, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
}

/*
 * record_deliveries
 *		The current attempts that succeeded: their deliveries delivered, in
 *		one statement, and the failure clock of their endpoints stopped.
 */
static void
record_deliveries(Attempt *a, int n)
{
	static SPIPlanPtr delivery_plan = NULL;
	static SPIPlanPtr endpoint_plan = NULL;
	Oid			argtypes[3] = {INT8ARRAYOID, INT8ARRAYOID, INT4ARRAYOID};
	Datum		values[3];
	Datum	   *v[3];
	int			i;
	int			m = 0;

	for (i = 0; i < 3; i++)
		v[i] = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		if (a[i].current && attempt_ok(&a[i]))
		{
			v[0][m] = Int64GetDatum(a[i].endpoint_id);
			v[1][m] = Int64GetDatum(a[i].event_id);
			v[2][m] = Int32GetDatum(a[i].status);
			a[i].state = "delivered";
			m++;
		}
	if (m == 0)
		return;
	values[0] = array_of(v[0], NULL, m, INT8OID);
	values[1] = array_of(v[1], NULL, m, INT8OID);
	values[2] = array_of(v[2], NULL, m, INT4OID);
	UserlifeRun(&delivery_plan,
				"UPDATE userlife.webhook_queue q SET state = 'delivered', last_status = d.s,"
				" last_error = NULL, delivered_at = pg_catalog.clock_timestamp(), next_attempt_at = NULL,"
				" updated_at = pg_catalog.clock_timestamp()"
				" FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3))"
				"  AS d(e, ev, s)"
				" WHERE q.endpoint_id = d.e AND q.event_id = d.ev",
				3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	/* the endpoint row is written only when its failure state changes */
	UserlifeRun(&endpoint_plan,
				"UPDATE userlife.webhook_endpoints w SET failing_since = NULL"
				" WHERE w.endpoint_id = ANY ($1) AND w.failing_since IS NOT NULL",
				1, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
}

/*
 * record_failure
 *		Updates the delivery after a failed current attempt: pending again
 *		after a delay, or dead; and its endpoint's failure clock, or its
 *		state on 410 Gone.
 */
static void
record_failure(Attempt *a)
{
	static SPIPlanPtr delivery_plan = NULL;
	static SPIPlanPtr endpoint_plan = NULL;
	Oid			argtypes[6] = {INT8OID, INT8OID, TEXTOID, INT4OID, TEXTOID, FLOAT8OID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	double		delay = next_delay_s(a->attempt, a->has_retry_after, a->retry_after);

	a->state = delay < 0 ? "dead" : "pending";
	values[0] = Int64GetDatum(a->endpoint_id);
	values[1] = Int64GetDatum(a->event_id);
	values[2] = CStringGetTextDatum(a->state);
	values[3] = Int32GetDatum(a->status);
	nulls[3] = a->has_status ? ' ' : 'n';
	if (a->error != NULL)
		values[4] = clip_response(a->error);
	else if (a->has_status)
		values[4] = CStringGetTextDatum(psprintf("HTTP status %d", a->status));
	else
		values[4] = CStringGetTextDatum("no response");
	values[5] = Float8GetDatum(delay);
	UserlifeRun(&delivery_plan,
				"UPDATE userlife.webhook_queue q SET state = $3, last_status = $4, last_error = $5,"
				" delivered_at = NULL,"
				" next_attempt_at = CASE WHEN $3 = 'pending' THEN pg_catalog.clock_timestamp()"
				"  + pg_catalog.make_interval(secs => $6) END,"
				" updated_at = pg_catalog.clock_timestamp()"
				" WHERE q.endpoint_id = $1 AND q.event_id = $2",
				6, argtypes, values, nulls, false, 0, SPI_OK_UPDATE);
	values[1] = BoolGetDatum(a->has_status && a->status == 410);
	UserlifeRun(&endpoint_plan,
				"UPDATE userlife.webhook_endpoints w SET"
				" failing_since = COALESCE(w.failing_since, pg_catalog.clock_timestamp()),"
				" enabled = w.enabled AND NOT $2,"
				" disabled_reason = CASE WHEN $2 AND w.enabled THEN"
				"  'the endpoint answered 410 Gone' ELSE w.disabled_reason END"
				" WHERE w.endpoint_id = $1 AND ($2 OR w.failing_since IS NULL)",
				2, (Oid[]) {INT8OID, BOOLOID}, values, NULL, false, 0, SPI_OK_UPDATE);
}

/*
 * complete_attempts
 *		Records n checked attempts for the caller, between AccessEnter and
 *		AccessLeave; sets each one's state: delivered, pending, dead,
 *		"stale" (the claim had lapsed or the delivery was replayed
 *		meanwhile: logged, nothing else changes) or "gone" (no such
 *		delivery: nothing logged).  A few statements for any n: the
 *		delivery program records what finished together in one call.
 */
static void
complete_attempts(Attempt *a, int n, Oid caller)
{
	int			i;

	check_serves(caller, a, n);
	lock_deliveries(a, n);
	log_attempts(a, n);
	for (i = 0; i < n; i++)
		a[i].state = !a[i].found ? "gone" : "stale";
	record_deliveries(a, n);
	for (i = 0; i < n; i++)
		if (a[i].current && !attempt_ok(&a[i]))
			record_failure(&a[i]);
}

/*
 * complete_webhook_delivery(endpoint_id, event_id, attempt, status,
 * latency_ms, error, response, retry_after): records an attempt made on a
 * claimed delivery.  status is the HTTP status, NULL when none came back;
 * 2xx is success.  Returns the delivery's state (complete_attempts).  A
 * caller bound to some partners only gets 42501 for an endpoint id that is
 * not one of theirs, whether or not it exists (check_serves).
 */
Datum
userlife_complete_webhook_delivery(PG_FUNCTION_ARGS)
{
	AccessScope scope;
	Attempt		a;

	memset(&a, 0, sizeof(a));
	UserlifeRequireArg(fcinfo, 0, "endpoint_id");
	UserlifeRequireArg(fcinfo, 1, "event_id");
	UserlifeRequireArg(fcinfo, 2, "attempt");
	a.endpoint_id = PG_GETARG_INT64(0);
	a.event_id = PG_GETARG_INT64(1);
	a.attempt = PG_GETARG_INT32(2);
	a.has_status = !PG_ARGISNULL(3);
	a.status = a.has_status ? PG_GETARG_INT32(3) : 0;
	a.has_latency = !PG_ARGISNULL(4);
	a.latency_ms = a.has_latency ? PG_GETARG_INT32(4) : 0;
	a.error = PG_ARGISNULL(5) ? NULL : PG_GETARG_TEXT_PP(5);
	a.response = PG_ARGISNULL(6) ? NULL : PG_GETARG_TEXT_PP(6);
	a.has_retry_after = !PG_ARGISNULL(7);
	a.retry_after = a.has_retry_after ? PG_GETARG_INT32(7) : 0;
	check_attempt(&a);
	AccessEnter(&scope, ACCESS_DEVELOPER, NULL);
	complete_attempts(&a, 1, scope.caller);
	AccessLeave(&scope);
	PG_RETURN_TEXT_P(cstring_to_text(a.state));
}

/*
 * array_arg: the elements of array argument argno (one-dimensional, n
 * elements); 22004 when the argument, or an element while nulls_ok is
 * false, is NULL
 */
static Datum *
array_arg(FunctionCallInfo fcinfo, int argno, const char *name, Oid type, int n,
		  bool nulls_ok, bool **nulls)
{
	ArrayType  *arr;
	Datum	   *elems;
	int			count;
	int			i;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	UserlifeRequireArg(fcinfo, argno, name);
	arr = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(arr) > 1 || ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) != n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array of as many elements as endpoint_ids", name)));
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(arr, type, typlen, typbyval, typalign, &elems, nulls, &count);
	for (i = 0; i < count && !nulls_ok; i++)
		if ((*nulls)[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", name)));
	return elems;
}

/*
 * complete_webhook_deliveries(endpoint_ids, event_ids, attempts, statuses,
 * latencies, errors, responses, retry_afters): complete_webhook_delivery
 * for each position of the arrays (all of one length, at most 1000), in one
 * call and a few statements; returns the states in the same order.  For the
 * delivery program, which records what finished together.
 */
Datum
userlife_complete_webhook_deliveries(PG_FUNCTION_ARGS)
{
	static const char *const names[8] = {"endpoint_ids", "event_ids", "attempts", "statuses",
	"latencies", "errors", "responses", "retry_afters"};
	static const Oid types[8] = {INT8OID, INT8OID, INT4OID, INT4OID, INT4OID, TEXTOID, TEXTOID, INT4OID};
	AccessScope scope;
	Attempt    *a;
	Datum	   *v[8];
	bool	   *nulls[8];
	Datum	   *states;
	int			n;
	int			i;
	int			k;

	UserlifeRequireArg(fcinfo, 0, names[0]);
	n = ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(0)), ARR_DIMS(PG_GETARG_ARRAYTYPE_P(0)));
	if (n < 1 || n > WEBHOOK_MAX_CLAIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("endpoint_ids must have 1 to %d elements", WEBHOOK_MAX_CLAIM)));
	for (k = 0; k < 8; k++)
		v[k] = array_arg(fcinfo, k, names[k], types[k], n, k >= 3, &nulls[k]);
	a = palloc0(sizeof(Attempt) * n);
	for (i = 0; i < n; i++)
	{
		a[i].endpoint_id = DatumGetInt64(v[0][i]);
		a[i].event_id = DatumGetInt64(v[1][i]);
		a[i].attempt = DatumGetInt32(v[2][i]);
		a[i].has_status = !nulls[3][i];
		a[i].status = a[i].has_status ? DatumGetInt32(v[3][i]) : 0;
		a[i].has_latency = !nulls[4][i];
		a[i].latency_ms = a[i].has_latency ? DatumGetInt32(v[4][i]) : 0;
		a[i].error = nulls[5][i] ? NULL : DatumGetTextPP(v[5][i]);
		a[i].response = nulls[6][i] ? NULL : DatumGetTextPP(v[6][i]);
		a[i].has_retry_after = !nulls[7][i];
		a[i].retry_after = a[i].has_retry_after ? DatumGetInt32(v[7][i]) : 0;
		check_attempt(&a[i]);
	}
	AccessEnter(&scope, ACCESS_DEVELOPER, NULL);
	complete_attempts(a, n, scope.caller);
	AccessLeave(&scope);
	states = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		states[i] = CStringGetTextDatum(a[i].state);
	PG_RETURN_DATUM(array_of(states, NULL, n, TEXTOID));
}

/* webhooks_installed: whether this database's userlife has the webhook tables (0.3.0) */
static bool
webhooks_installed(void)
{
	Oid			nsp = get_namespace_oid(USERLIFE_SCHEMA, true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("webhook_queue", nsp));
}

/*
 * WebhooksOutboxFloor
 *		The newest event id the outbox may drop: events past an endpoint's
 *		cursor (kept while it is disabled, too) and events of pending
 *		deliveries stay.  Must run inside UserlifeSpiConnect as the owner.
 */
int64
WebhooksOutboxFloor(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	Datum		d;

	if (!webhooks_installed())
		return PG_INT64_MAX;
	UserlifeRun(&plan,
				"SELECT LEAST((SELECT pg_catalog.min(w.cursor_event_id) FROM userlife.webhook_endpoints w),"
				" (SELECT pg_catalog.min(q.event_id) - 1 FROM userlife.webhook_queue q"
				"  WHERE q.state = 'pending'))",
				0, NULL, NULL, NULL, true, 1, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? PG_INT64_MAX : DatumGetInt64(d);
}

/*
 * WebhooksMaintenance
 *		For run_maintenance: drops attempt log rows, and delivered or dead
 *		deliveries, older than userlife.webhook_attempt_retention, and
 *		disables the endpoints whose every attempt has failed for
 *		userlife.webhook_disable_after.
 */
void
WebhooksMaintenance(int64 *attempts_dropped, int64 *deliveries_dropped, int64 *endpoints_disabled)
{
	static SPIPlanPtr attempts_plan = NULL;
	static SPIPlanPtr deliveries_plan = NULL;
	static SPIPlanPtr disable_plan = NULL;
	Oid			argtypes[1] = {INTERVALOID};
	Datum		values[1];

	*attempts_dropped = *deliveries_dropped = *endpoints_disabled = 0;
	if (!webhooks_installed())
		return;
	values[0] = setting_interval(webhook_attempt_retention_text);
	UserlifeRun(&attempts_plan,
				"DELETE FROM userlife.webhook_attempt_log a WHERE a.at < pg_catalog.now() - $1",
				1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	*attempts_dropped = (int64) SPI_processed;
	UserlifeRun(&deliveries_plan,
				"DELETE FROM userlife.webhook_queue q"
				" WHERE q.state <> 'pending' AND q.updated_at < pg_catalog.now() - $1",
				1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	*deliveries_dropped = (int64) SPI_processed;
	values[0] = setting_interval(webhook_disable_after_text);
	UserlifeRun(&disable_plan,
				"UPDATE userlife.webhook_endpoints w SET enabled = false,"
				" disabled_reason = 'every attempt failed since ' OPERATOR(pg_catalog.||)"
				"  pg_catalog.to_char(w.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
				" WHERE w.enabled AND w.failing_since < pg_catalog.now() - $1",
				1, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	*endpoints_disabled = (int64) SPI_processed;
}
