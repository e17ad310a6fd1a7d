/*-------------------------------------------------------------------------
 *
 * lifecycle.h
 *		The lifecycle of a user: registration, status, fraud, deletion and
 *		the transition rules (lifecycle.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_LIFECYCLE_H
#define USERLIFE_LIFECYCLE_H

#include "userlife.h"
#include "access.h"

#include "executor/spi.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

extern void LifecycleInit(void);
extern bool LifecycleTransitionAllowed(UserStatus from, UserStatus to, bool *requires_reason);
extern void LifecycleCheckTransition(const char *user_name, UserStatus from, UserStatus to,
									 bool has_reason);
extern Datum UserlifeGetUserRow(const char *partner, const char *external_id);
extern void LifecycleReadUser(SPIPlanPtr *cache, const char *sql, const UserCall *call,
							  bool read_only);

/* rules register_user applies, shared with import_users (import.c) */
extern void LifecycleRequirePartner(const char *partner);
extern void LifecycleLockPartner(const char *partner);
extern void LifecycleCheckMetadata(Jsonb *metadata, const char *argname);
extern void LifecycleCheckTags(ArrayType *tags);
extern void LifecycleCheckNewStatus(UserStatus status);
extern void LifecycleRequireNotDeleted(const char *partner, const char *external_id,
									   UserStatus status);
extern bool LifecycleTombstoneExists(const char *partner, const char *external_id);
extern void LifecycleRefuseReenroll(const char *partner, const char *external_id) pg_attribute_noreturn();
extern void LifecycleEmailTaken(const char *partner) pg_attribute_noreturn();

/* operations for callers that have passed AccessEnter themselves (signature.c) */
extern bool LifecycleAllowReenroll(const UserCall *call, bool allow, const char *reason);
extern Datum LifecycleChangeStatus(const UserCall *call, UserStatus status, const char *reason,
								   bool has_until, TimestampTz until);
extern Datum LifecycleDelete(const UserCall *call, const char *reason);
extern Datum LifecycleSetFraudFlag(const UserCall *call, bool is_fraudulent, const char *reason);

#endif							/* USERLIFE_LIFECYCLE_H */
