/*-------------------------------------------------------------------------
 *
 * events.c
 *		Delivery of the change-event outbox: claim_events and ack_events.
 *
 * The events table is the truth; notifications only wake workers up.  A
 * worker claims a batch (FOR UPDATE SKIP LOCKED, so two workers never get
 * the same event), delivers it, then acknowledges it.  A claim that is not
 * acknowledged within five minutes lapses and the event can be claimed
 * again, so a worker that dies loses nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "userlife.h"
#include "access.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_claim_events);
PG_FUNCTION_INFO_V1(userlife_ack_events);

#define MAX_CLAIM 10000
#define CLAIM_LAPSE_US (5 * 60 * USECS_PER_SEC)

/* which partners' events the caller may see, as SQL over $partner_wide and $role */
#define PARTNER_VISIBLE(wide, role) \
	"(" wide " OR e.partner IN (SELECT b.partner FROM userlife.partner_bindings b" \
	" WHERE pg_catalog.pg_has_role(" role ", b.role::pg_catalog.oid, 'USAGE')))"

/* claim_events(max_events, partner): oldest unclaimed events, marked claimed */
Datum
userlife_claim_events(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	int32		max_events = PG_ARGISNULL(0) ? 100 : PG_GETARG_INT32(0);
	char	   *partner = UserlifeOptionalText(fcinfo, 1);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AccessScope scope;
	Oid			argtypes[6] = {INT4OID, TEXTOID, BOOLOID, OIDOID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	TimestampTz clock = GetCurrentTimestamp();

	if (max_events < 1 || max_events > MAX_CLAIM)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be between 1 and %d", MAX_CLAIM)));
	if (partner != NULL)
		UserlifeCheckPartnerId(partner);
	InitMaterializedSRF(fcinfo, 0);
	AccessEnter(&scope, ACCESS_DEVELOPER, partner);

	values[0] = Int32GetDatum(max_events);
	values[1] = partner ? CStringGetTextDatum(partner) : (Datum) 0;
	nulls[1] = partner ? ' ' : 'n';
	values[2] = BoolGetDatum(AccessIsPartnerWide(scope.caller));
	values[3] = ObjectIdGetDatum(scope.caller);
	/*
	 * Claims are stamped and lapse by the clock: a claim stamped with the
	 * start of a transaction that had been open for minutes would lapse
	 * early and hand the event to a second worker.
	 */
	values[4] = TimestampTzGetDatum(clock);
	values[5] = TimestampTzGetDatum(clock - CLAIM_LAPSE_US);
	UserlifeRun(&plan,
				"WITH picked AS ("
				" SELECT e.event_id FROM userlife.events e"
				" WHERE e.delivered_at IS NULL"
				"  AND (e.claimed_at IS NULL"
				"       OR e.claimed_at < $6)"
				"  AND ($2::pg_catalog.text IS NULL OR e.partner = $2)"
				"  AND " PARTNER_VISIBLE("$3", "$4")
				" ORDER BY e.event_id LIMIT $1 FOR UPDATE SKIP LOCKED), "
				"claimed AS ("
				" UPDATE userlife.events e SET claimed_at = $5"
				" FROM picked WHERE e.event_id = picked.event_id RETURNING e) "
				"SELECT c.e FROM claimed c ORDER BY (c.e).event_id",
				6, argtypes, values, nulls, false, 0, SPI_OK_SELECT);
	return AccessLeaveWithRows(&scope, rsinfo);
}

/* ack_events(event_ids): marks events delivered; returns how many were newly delivered */
Datum
userlife_ack_events(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	AccessScope scope;
	Oid			argtypes[3] = {INT8ARRAYOID, BOOLOID, OIDOID};
	Datum		values[3];
	int64		acked;

	UserlifeRequireArg(fcinfo, 0, "event_ids");
	AccessEnter(&scope, ACCESS_DEVELOPER, NULL);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = BoolGetDatum(AccessIsPartnerWide(scope.caller));
	values[2] = ObjectIdGetDatum(scope.caller);
	UserlifeRun(&plan,
				"UPDATE userlife.events e SET delivered_at = pg_catalog.now()"
				" WHERE e.event_id = ANY ($1) AND e.delivered_at IS NULL"
				" AND " PARTNER_VISIBLE("$2", "$3"),
				3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
	acked = (int64) SPI_processed;
	AccessLeave(&scope);
	PG_RETURN_INT32((int32) acked);
}
