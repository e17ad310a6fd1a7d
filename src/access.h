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

extern void AccessEnter(AccessScope *scope, AccessLevel level, const char *partner);
extern void AccessLeave(AccessScope *scope);
extern bool AccessIsEntered(void);
extern bool AccessIsPartnerWide(Oid role);
extern void AccessCheckPartnerBinding(Oid role, const char *partner);
extern int64 AccessDropStaleBindings(void);

#endif							/* USERLIFE_ACCESS_H */
