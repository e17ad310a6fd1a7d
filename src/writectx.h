/*-------------------------------------------------------------------------
 *
 * writectx.h
 *		The write context: what a SQL function tells the users triggers
 *		about the write it is about to make.
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_WRITECTX_H
#define USERLIFE_WRITECTX_H

#include "access/xact.h"

/* flags of WriteCtxBegin */
#define WRITE_PLAIN			0
#define WRITE_LIFECYCLE		0x01	/* may enter or leave status 'deleted' */
#define WRITE_KEEP_CREATED	0x02	/* a new row keeps the created_at it carries
									 * (import_users: the original registration) */

/*
 * One frame per write a function has announced: who called (functions write
 * as the extension owner, audit must name the caller), the reason and actor
 * to record and, where the change alone does not say it, the audit action.
 * Frames nest; the triggers see a frame only for the statements its own
 * function runs.
 */
typedef struct WriteFrame
{
	Oid			caller;			/* role recorded as db_role */
	const char *reason;			/* explicit reason, or NULL */
	const char *actor;			/* overrides userlife.actor, or NULL */
	const char *action;			/* audit action, or NULL to infer */
	bool		lifecycle_path; /* may enter/leave 'deleted' */
	bool		keep_created_at;	/* WRITE_KEEP_CREATED */
	ErrorContextCallback *caller_context;	/* error context of the SQL call */
	SubTransactionId subid;		/* subtransaction that pushed the frame */
	int			exec_level;		/* executor nesting of the calling statement */
	struct WriteFrame *next;	/* the frame this one nests in */
} WriteFrame;

extern void WriteCtxInit(void);
extern void WriteCtxBegin(Oid caller, const char *reason, const char *action, int flags);
extern void WriteCtxSetActor(const char *actor);
extern void WriteCtxEnd(void);
extern const WriteFrame *WriteCtxCurrent(void);
extern void WriteCtxReportAsCaller(void);

/* ereport_as_caller: ereport from a trigger, in the context of our function's call */
#define ereport_as_caller(...) \
	do { \
		WriteCtxReportAsCaller(); \
		ereport(__VA_ARGS__); \
	} while (0)

#endif							/* USERLIFE_WRITECTX_H */
