/*-------------------------------------------------------------------------
 *
 * userlife.h
 *		Declarations shared between the concerns of userlife: SQLSTATEs,
 *		settings, the write context handed from SQL functions to the users
 *		triggers, catalog lookups and argument helpers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_H
#define USERLIFE_H

#include "fmgr.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
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

/*
 * What a SQL function tells the users triggers about the write it is about
 * to make: who called (functions write as the extension owner, audit must
 * name the caller), the reason and actor to record, and, where the change
 * alone does not say it, the audit action.  Only one write context is active
 * at a time; it is cleared when the write ends and on (sub)transaction abort.
 */
typedef struct WriteContext
{
	bool		active;
	Oid			caller;			/* role recorded as db_role */
	const char *reason;			/* explicit reason, or NULL */
	const char *actor;			/* overrides userlife.actor, or NULL */
	const char *action;			/* audit action, or NULL to infer */
	bool		lifecycle_path; /* may enter/leave 'deleted' */
	ErrorContextCallback *caller_context;	/* error context of the SQL call */
} WriteContext;

extern WriteContext CurrentWrite;

/* actor of a signed request, recorded instead of userlife.actor while set */
extern const char *UserlifeRequestActor;

/* userlife.c: helpers */
extern void UserlifeBeginWrite(Oid caller, const char *reason, const char *action);
extern void UserlifeEndWrite(void);
extern void UserlifeReportAsCaller(void);

/* ereport_as_caller: ereport from a trigger, in the context of our function's call */
#define ereport_as_caller(...) \
	do { \
		UserlifeReportAsCaller(); \
		ereport(__VA_ARGS__); \
	} while (0)
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
extern void AccessEnter(AccessScope *scope, AccessLevel level, const char *partner);
extern void AccessLeave(AccessScope *scope);
extern bool AccessIsPartnerWide(Oid role);
extern void AccessCheckPartnerBinding(Oid role, const char *partner);
extern int64 AccessDropStaleBindings(void);

/* audit.c */
extern void AuditInit(void);
extern void AuditComputeHash(uint8 *out, const uint8 *prev_hash, int prev_len,
							 const char *user_id, const char *partner,
							 const char *action, const char *db_role,
							 const char *actor, const char *reason,
							 TimestampTz at, uint64 txid,
							 Datum changed_fields, Datum old_values, Datum new_values);

extern void AuditRedactUser(Datum user_id);

/* append.c: columns of userlife.audit and userlife.events, 0-based */
#define AUDIT_NATTS					16
#define AUDIT_ATT_AUDIT_ID			0
#define AUDIT_ATT_ROW_HASH			14
#define EVENTS_NATTS				9
#define EVENTS_ATT_EVENT_ID			0
#define EVENTS_ATT_AUDIT_ID			4
extern void AppendInit(void);
extern bool AppendSearchDocument(Datum user_id, Datum partner, Datum document);
extern bool AppendAuditAndEvent(Datum *audit_values, bool *audit_nulls,
								Datum *event_values, bool *event_nulls);
extern bool AppendReadChainHead(Datum user_id, bytea **row_hash, bool *found);
extern bool AppendTombstoneExists(const char *partner, const char *external_id, bool *exists);

/* lifecycle.c */
extern void LifecycleInit(void);
extern bool LifecycleTransitionAllowed(UserStatus from, UserStatus to, bool *requires_reason);
extern void UserlifeUserNotFound(const char *partner, const char *external_id) pg_attribute_noreturn();
extern Datum UserlifeGetUserRow(const char *partner, const char *external_id);

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

/* signature.c */
extern int	userlife_signature_max_age_s;
extern bool userlife_reject_replayed;
extern int64 SignatureForgetExpired(void);

#endif							/* USERLIFE_H */
