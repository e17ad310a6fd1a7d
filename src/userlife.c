/*-------------------------------------------------------------------------
 *
 * userlife.c
 *		Module entry point: every concern registers its settings and
 *		callbacks, then the prefix userlife is reserved.
 *
 * The concerns and their files are listed in the README's layout table;
 * userlife.h holds what all of them share (SQLSTATEs, limits, statuses).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "userlife.h"
#include "append.h"
#include "audit.h"
#include "catalog.h"
#include "chain.h"
#include "lifecycle.h"
#include "maintenance.h"
#include "retention.h"
#include "search.h"
#include "signature.h"
#include "util.h"
#include "webhooks.h"
#include "writectx.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void _PG_init(void);

/*
 * _PG_init
 *		Lets every concern define its settings and register its callbacks,
 *		then reserves the prefix, so that a misspelt userlife.* setting is
 *		an error.
 */
void
_PG_init(void)
{
	CatalogInit();
	UtilInit();
	WriteCtxInit();
	AuditInit();
	ChainInit();
	AppendInit();
	LifecycleInit();
	SearchInit();
	MaintenanceInit();
	RetentionInit();
	SignatureInit();
	WebhooksInit();
	MarkGUCPrefixReserved("userlife");
}
