/*-------------------------------------------------------------------------
 *
 * userlife.h
 *		Declarations shared between the concerns of userlife: SQLSTATEs,
 *		settings, catalog lookups and argument helpers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_H
#define USERLIFE_H

#include "fmgr.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* SQLSTATEs of SPEC §6 that PostgreSQL does not define */
#define ERRCODE_USERLIFE_TRANSITION			MAKE_SQLSTATE('U','L','0','0','1')
#define ERRCODE_USERLIFE_VERSION_MISMATCH	MAKE_SQLSTATE('U','L','0','0','2')
#define ERRCODE_USERLIFE_SIGNATURE			MAKE_SQLSTATE('U','L','0','0','3')
#define ERRCODE_USERLIFE_LEGAL_HOLD			MAKE_SQLSTATE('U','L','0','0','4')
#define ERRCODE_USERLIFE_RETENTION_OVER		MAKE_SQLSTATE('U','L','0','0','5')

#define USERLIFE_SCHEMA				"userlife"
#define USERLIFE_MAX_EXTERNAL_ID	255
#define USERLIFE_MAX_PARTNER_ID		64
#define USERLIFE_MAX_EMAIL			254
/* the regular expression of the users_email_format constraint, verbatim */
#define USERLIFE_EMAIL_PATTERN		"^[^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+$"
/* the longest retention a partner may have: 100 years, in interval_cmp's order */
#define USERLIFE_MAX_RETENTION_MONTHS	1200

/* user_status enum labels, in declaration order */
typedef enum UserStatus
{
	USER_ACTIVE = 0,
	USER_INACTIVE,
	USER_SUSPENDED,
	USER_FLAGGED,
	USER_BLOCKED,
	USER_DELETED,
	USER_STATUS_COUNT
} UserStatus;

extern const char *const UserStatusNames[USER_STATUS_COUNT];

/* settings (userlife.c) */
extern char *userlife_actor;
extern char *userlife_reason;
extern char *userlife_default_retention;
extern bool userlife_notify;
extern int	userlife_notify_interval_ms;
extern int	userlife_purge_rate_limit;

/* userlife.c: helpers */
extern Oid	UserlifeRelid(const char *relname);
extern Oid	UserlifeUsersRelid(void);
extern Oid	UserlifeTransitionsRelid(void);
extern Oid	UserlifeStatusTypeOid(void);
extern UserStatus UserlifeStatusFromDatum(Datum d);
extern Datum UserlifeStatusToDatum(UserStatus s);
extern const char *UserlifeEffectiveReason(const char *explicit_reason);
extern char *UserlifeRequireText(FunctionCallInfo fcinfo, int argno, const char *argname);
extern char *UserlifeOptionalText(FunctionCallInfo fcinfo, int argno);
extern void UserlifeRequireArg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern void UserlifeCheckPartnerId(const char *partner);
extern void UserlifeCheckExternalId(const char *external_id);
extern void UserlifeCheckEmail(const char *email);
extern SPIPlanPtr UserlifePreparePlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);
extern SPIPlanPtr UserlifePrepareCustomPlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);
extern void UserlifeRun(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
						Datum *values, const char *nulls, bool read_only, long count, int expected);
extern void UserlifeStoreCompositeRows(ReturnSetInfo *rsinfo);
extern void UserlifeSpiConnect(void);
extern void UserlifeSpiFinish(void);

/* search.c: the search documents in userlife.user_search */
extern void SearchInit(void);
extern bool SearchDocumentsInstalled(void);
extern bool SearchDocumentChanged(TupleDesc desc, HeapTuple oldtup, HeapTuple newtup);
extern void SearchWriteDocument(Relation users, HeapTuple tuple, bool replace);
extern void SearchDropDocument(Relation users, HeapTuple tuple);

/* access.c: roles and partner bindings */
typedef enum AccessLevel
{
	ACCESS_READER,
	ACCESS_DEVELOPER,
	ACCESS_COMPLIANCE,
	ACCESS_SIGNED,				/* signed requests: developer or compliance */
	ACCESS_OWNER
} AccessLevel;

typedef struct AccessScope
{
	Oid			caller;
	Oid			saved_user;
	int			saved_sec_context;
} AccessScope;

extern void AccessInit(void);
extern void AccessEnterCall(FunctionCallInfo fcinfo, AccessScope *scope, AccessLevel level,
							const char *partner, bool reads_only);
extern void AccessRefuseOnStandby(FunctionCallInfo fcinfo);

/*
 * AccessEnter(scope, level, partner): in a function of PG_FUNCTION_ARGS,
 * like PG_GETARG_*; the call it enters is refused on a hot standby when its
 * SQL function is volatile.  AccessEnterReadOnly: for the volatile
 * functions that never write (their result depends on the clock).
 */
#define AccessEnter(scope, level, partner) \
	AccessEnterCall(fcinfo, (scope), (level), (partner), false)
#define AccessEnterReadOnly(scope, level, partner) \
	AccessEnterCall(fcinfo, (scope), (level), (partner), true)
extern void AccessLeave(AccessScope *scope);
extern bool AccessIsEntered(void);
extern bool AccessIsPartnerWide(Oid role);
extern void AccessCheckPartnerBinding(Oid role, const char *partner);
extern int64 AccessDropStaleBindings(void);

/* audit.c */
extern void AuditInit(void);

/* append.c: columns of userlife.audit and userlife.events, 0-based */
#define AUDIT_NATTS					17
#define AUDIT_ATT_AUDIT_ID			0
#define AUDIT_ATT_ROW_HASH			14
#define EVENTS_NATTS				9
#define EVENTS_ATT_EVENT_ID			0
#define EVENTS_ATT_AUDIT_ID			4
#define EVENTS_ATT_PAYLOAD			6
/* builds an event's payload once its audit row's id is known */
typedef Datum (*AppendPayloadFn) (int64 audit_id, const void *arg);
extern void AppendInit(void);
extern bool AppendSearchDocument(Datum user_id, Datum partner, Datum document);
extern bool AppendAuditKey(Datum user_id, Datum key);
extern bool AppendAuditAndEvent(Datum *audit_values, bool *audit_nulls,
								Datum *event_values, bool *event_nulls,
								AppendPayloadFn payload, const void *payload_arg);
extern bool AppendReadChainHead(Datum user_id, bytea **row_hash, bool *found);
extern bool AppendTombstoneExists(const char *partner, const char *external_id, bool *exists);

/* lifecycle.c: how messages show caller values and name a user */
#define USERLIFE_MSG_VALUE_CHARS	64
extern const char *UserlifeMsgValue(const char *value);
extern char *UserlifeUserName(const char *partner, const char *external_id);

/* lifecycle.c */
extern void LifecycleInit(void);
extern bool LifecycleTransitionAllowed(UserStatus from, UserStatus to, bool *requires_reason);
extern void UserlifeUserNotFound(const char *partner, const char *external_id) pg_attribute_noreturn();
extern Datum UserlifeGetUserRow(const char *partner, const char *external_id);

/* lifecycle rules register_user applies, shared with import_users (import.c) */
extern void LifecycleRequirePartner(const char *partner);
extern void LifecycleCheckMetadata(Jsonb *metadata, const char *argname);
extern void LifecycleCheckTags(ArrayType *tags);
extern void LifecycleCheckNewStatus(UserStatus status);
extern void LifecycleRequireNotDeleted(const char *partner, const char *external_id,
									   UserStatus status);
extern bool LifecycleTombstoneExists(const char *partner, const char *external_id);
extern void LifecycleRefuseReenroll(const char *partner, const char *external_id) pg_attribute_noreturn();
extern void LifecycleEmailTaken(const char *partner) pg_attribute_noreturn();

/* lifecycle operations for callers that have passed AccessEnter themselves */
extern bool LifecycleAllowReenroll(Oid caller, const char *partner, const char *external_id,
								   bool allow, const char *reason);
extern Datum LifecycleChangeStatus(Oid caller, const char *partner, const char *external_id,
								   UserStatus status, const char *reason, bool has_until,
								   TimestampTz until);
extern Datum LifecycleDelete(Oid caller, const char *partner, const char *external_id,
							 const char *reason);
extern Datum LifecycleSetFraudFlag(Oid caller, const char *partner, const char *external_id,
								   bool is_fraudulent, const char *reason);

/* monitor.c: progress in pg_stat_activity, the maintenance log */
extern bool MonitorProgressBegin(const char *what);
extern void MonitorProgress(const char *fmt,...) pg_attribute_printf(1, 2);
extern void MonitorProgressEnd(bool began);
extern void MonitorRecordMaintenance(Oid caller, TimestampTz started, int32 batch_size,
									 Jsonb *counts);

/* maintenance.c */
extern void MaintenanceInit(void);

/* signature.c */
extern int	userlife_signature_max_age_s;
extern bool userlife_reject_replayed;
extern bool userlife_require_body_signature;
extern int64 SignatureForgetExpired(void);

#endif							/* USERLIFE_H */
