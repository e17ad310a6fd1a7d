/*-------------------------------------------------------------------------
 *
 * userlife.h
 *		What every concern of userlife shares: the SQLSTATEs of SPEC §6 that
 *		PostgreSQL does not define, the limits of identifiers, the user
 *		statuses.  Each concern exports the rest in its own header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_USERLIFE_H
#define USERLIFE_USERLIFE_H

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

/* the labels, indexed by UserStatus (catalog.c) */
extern const char *const UserStatusNames[USER_STATUS_COUNT];

#endif							/* USERLIFE_USERLIFE_H */
