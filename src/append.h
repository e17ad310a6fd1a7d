/*-------------------------------------------------------------------------
 *
 * append.h
 *		Appending to userlife.audit, userlife.events, userlife.user_search
 *		and userlife.audit_keys without the executor (append.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_APPEND_H
#define USERLIFE_APPEND_H

#include "access/genam.h"
#include "access/relscan.h"
#include "executor/tuptable.h"
#include "storage/lockdefs.h"
#include "utils/relcache.h"

/* columns of userlife.audit and userlife.events, 0-based */
#define AUDIT_NATTS					17
#define AUDIT_ATT_AUDIT_ID			0
#define AUDIT_ATT_ROW_HASH			14
#define EVENTS_NATTS				9
#define EVENTS_ATT_EVENT_ID			0
#define EVENTS_ATT_AUDIT_ID			4
#define EVENTS_ATT_PAYLOAD			6

/* builds an event's payload once its audit row's id is known */
typedef Datum (*AppendPayloadFn) (int64 audit_id, const void *arg);

/* a scan of one user's rows through an index whose first column is user_id */
typedef struct UserScan
{
	Relation	index;
	TupleTableSlot *slot;
	IndexScanDesc scan;
	ScanKeyData key;
} UserScan;

extern void AppendInit(void);
extern void AppendUserScanBegin(UserScan *us, Relation rel, Oid indexid, Datum user_id);
extern void AppendUserScanEnd(UserScan *us, LOCKMODE lockmode);
extern bool AppendSearchDocument(Datum user_id, Datum partner, Datum document);
extern bool AppendAuditKey(Datum user_id, Datum key);
extern bool AppendAuditAndEvent(Datum *audit_values, bool *audit_nulls,
								Datum *event_values, bool *event_nulls,
								AppendPayloadFn payload, const void *payload_arg);
extern bool AppendReadChainHead(Datum user_id, bytea **row_hash, bool *found);
extern bool AppendTombstoneExists(const char *partner, const char *external_id, bool *exists);

#endif							/* USERLIFE_APPEND_H */
