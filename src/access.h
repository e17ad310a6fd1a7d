/*-------------------------------------------------------------------------
 *
 * access.h
 *		Roles and partner bindings: who may call what, for which partner,
 *		and the switch to the extension owner around a call (access.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_ACCESS_H
#define USERLIFE_ACCESS_H

#include "fmgr.h"
#include "nodes/execnodes.h"

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

/*
 * AccessEnterPartner(scope, level, partner): AccessEnter for a partner the
 * caller named, whose id is checked first (22023, before the caller's rights
 * are)
 */
#define AccessEnterPartner(scope, level, partner) \
	AccessEnterPartnerCall(fcinfo, (scope), (level), (partner))
extern void AccessEnterPartnerCall(FunctionCallInfo fcinfo, AccessScope *scope,
								   AccessLevel level, const char *partner);
extern void AccessLeave(AccessScope *scope);

/*
 * UserCall: a call on one user of a partner, inside its access scope.  The
 * SQL functions whose first arguments are (partner, external_id) read both
 * with AccessUserArgs (NULL is 22004) where they declare the call, check
 * their other arguments, then AccessEnterUser; a signed request fills one
 * in itself.
 */
typedef struct UserCall
{
	AccessScope scope;
	const char *partner;
	const char *external_id;
} UserCall;

extern UserCall AccessUserArgs(FunctionCallInfo fcinfo);
#define AccessEnterUser(call, level) \
	AccessEnterPartnerCall(fcinfo, &(call)->scope, (level), (call)->partner)
extern Datum AccessLeaveWithRows(AccessScope *scope, ReturnSetInfo *rsinfo);
extern bool AccessIsEntered(void);
extern bool AccessIsPartnerWide(Oid role);
extern int64 AccessDropStaleBindings(void);

#endif							/* USERLIFE_ACCESS_H */
