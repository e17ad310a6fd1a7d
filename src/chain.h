/*-------------------------------------------------------------------------
 *
 * chain.h
 *		The audit hash chain: one audit row as it is hashed, the digests of
 *		its values, the per-user digest keys, verification and redaction.
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_CHAIN_H
#define USERLIFE_CHAIN_H

#include "common/sha2.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#define CHAIN_HASH_LEN		PG_SHA256_DIGEST_LENGTH
#define CHAIN_KEY_LEN		32
#define CHAIN_MAX_FIELDS	16

/*
 * Hash versions.  Version 1 (0.1.0 and 0.2.0) digests every value with
 * plain SHA-256; version 2 (0.3.0) keys the digests of personal values
 * with the user's digest key, so that an erased value cannot be confirmed
 * by hashing a guess once the key is gone.
 */
#define CHAIN_V1			1
#define CHAIN_V2			2

/* one audit row, as written and as re-read for verification */
typedef struct AuditRecord
{
	int64		audit_id;		/* only when read back */
	int16		version;
	TimestampTz at;
	const char *partner;
	const char *user_id;
	const char *external_id;
	const char *action;
	const char *db_role;
	const char *actor;
	const char *reason;
	int			nchanged;
	const char *changed[CHAIN_MAX_FIELDS];
	Jsonb	   *old_values;
	Jsonb	   *new_values;
	int			nredacted;
	char	  **redacted;
	uint64		txid;
	bool		has_prev;
	uint8		prev_hash[CHAIN_HASH_LEN];
	uint8		row_hash[CHAIN_HASH_LEN];
	const char *status;
	/* how personal values are digested: keyed from the raw value, or read back redacted */
	const uint8 *key;
	bool		redacted_form;
} AuditRecord;

extern void ChainInit(void);
extern int16 ChainWriteVersion(void);
extern bool ChainNeedsKey(const AuditRecord *rec);
extern bool ChainComputeRowHash(AuditRecord *rec);
extern bytea *ChainHashToBytea(const uint8 *h);
extern bytea *ChainSha256(const void *data, size_t len);
extern bool ChainHashFromBytea(Datum d, uint8 *h);

extern void ChainNewUserKey(uint8 *key);
extern void ChainStoreUserKey(Datum user_id, const uint8 *key);
extern void ChainCreateUserKey(Datum user_id, uint8 *key);
extern const uint8 *ChainUserKey(Datum user_id);

extern bool ChainVerifyUser(Datum user_id);
extern bytea *ChainRedactUser(Datum user_id);

#endif							/* USERLIFE_CHAIN_H */
