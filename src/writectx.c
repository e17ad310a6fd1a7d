/*-------------------------------------------------------------------------
 *
 * writectx.c
 *		The write context handed from the SQL functions to the users
 *		triggers: a stack of frames that nests and unwinds with errors.
 *
 * A function announces its write with WriteCtxBegin and ends it with
 * WriteCtxEnd; the triggers read WriteCtxCurrent.  Two rules keep a frame
 * from being applied to a change it does not describe:
 *
 * - A frame belongs to the statements its own function runs.  We count the
 *	 executor's nesting (ExecutorRun and ExecutorFinish, where row triggers
 *	 fire) and a frame records the level of the statement that called its
 *	 function; a trigger sees the frame only one level below that.  A
 *	 direct statement run by a DBA's trigger during our function's write,
 *	 one level deeper still, is judged as the direct statement it is.  Two
 *	 frames of the same level were pushed by one function call (the signed
 *	 request around the lifecycle operation it applies); the inner one
 *	 inherits the outer one's actor.
 * - A frame records the subtransaction that pushed it.  A subtransaction
 *	 abort pops the frames pushed in it or in its children, and nothing
 *	 else: an exception block in a DBA's trigger that catches an error
 *	 leaves our function's frame alone, and a caller's savepoint rolled back
 *	 over a failed call leaves no frame for its next direct statement.
 *	 Transaction end drops every frame.
 *
 * Memory: frames live in TopMemoryContext and are reused through a free
 * list, so the memory held is bounded by the deepest nesting ever reached.
 * The strings a frame points to belong to the function that pushed it,
 * which pops it (or errors out) before returning.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/executor.h"
#include "utils/memutils.h"

#include "userlife.h"
#include "access.h"
#include "writectx.h"

static WriteFrame *top_frame = NULL;
static WriteFrame *free_frames = NULL;

/* executor nesting of this backend, counted since the module was loaded */
static int	exec_nested_level = 0;

static ExecutorRun_hook_type prev_ExecutorRun = NULL;
static ExecutorFinish_hook_type prev_ExecutorFinish = NULL;

static void writectx_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction,
								 uint64 count, bool execute_once);
static void writectx_ExecutorFinish(QueryDesc *queryDesc);
static void writectx_xact_callback(XactEvent event, void *arg);
static void writectx_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									  SubTransactionId parentSubid, void *arg);

void
WriteCtxInit(void)
{
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = writectx_ExecutorRun;
	prev_ExecutorFinish = ExecutorFinish_hook;
	ExecutorFinish_hook = writectx_ExecutorFinish;
	RegisterXactCallback(writectx_xact_callback, NULL);
	RegisterSubXactCallback(writectx_subxact_callback, NULL);
}

/*
 * The executor hooks only count; the level goes back down however the
 * statement ends.
 */
static void
writectx_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction,
					 uint64 count, bool execute_once)
{
	exec_nested_level++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		exec_nested_level--;
	}
	PG_END_TRY();
}

static void
writectx_ExecutorFinish(QueryDesc *queryDesc)
{
	exec_nested_level++;
	PG_TRY();
	{
		if (prev_ExecutorFinish)
			prev_ExecutorFinish(queryDesc);
		else
			standard_ExecutorFinish(queryDesc);
	}
	PG_FINALLY();
	{
		exec_nested_level--;
	}
	PG_END_TRY();
}

/* pop_frame: moves the top frame to the free list */
static void
pop_frame(void)
{
	WriteFrame *frame = top_frame;

	top_frame = frame->next;
	frame->next = free_frames;
	free_frames = frame;
}

static void
writectx_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* every function ends the write it began, or errors out */
			Assert(top_frame == NULL);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			while (top_frame != NULL)
				pop_frame();
			break;
		default:
			break;
	}
}

/*
 * writectx_subxact_callback
 *		An aborting subtransaction pops the frames pushed in it or in a
 *		child of it (subtransaction ids grow, so those are the ones with an
 *		id at least its own); a committing one hands its frames to its
 *		parent, whose abort must pop them.
 */
static void
writectx_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	WriteFrame *frame;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		while (top_frame != NULL && top_frame->subid >= mySubid)
			pop_frame();
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (frame = top_frame; frame != NULL && frame->subid >= mySubid; frame = frame->next)
			frame->subid = parentSubid;
	}
}

/*
 * WriteCtxBegin
 *		Announces to the users triggers the write the caller is about to
 *		make.  The caller must be inside AccessEnter and must call
 *		WriteCtxEnd once the write is done, in the same subtransaction; an
 *		error in between pops the frame when its subtransaction aborts.
 *		flags: WRITE_PLAIN or WRITE_LIFECYCLE.
 */
void
WriteCtxBegin(Oid caller, const char *reason, const char *action, int flags)
{
	WriteFrame *frame;

	Assert(AccessIsEntered());
	Assert((flags & ~(WRITE_LIFECYCLE | WRITE_KEEP_CREATED)) == 0);
	if (free_frames != NULL)
	{
		frame = free_frames;
		free_frames = frame->next;
	}
	else
		frame = MemoryContextAlloc(TopMemoryContext, sizeof(WriteFrame));
	frame->caller = caller;
	frame->reason = reason;
	frame->action = action;
	frame->lifecycle_path = (flags & WRITE_LIFECYCLE) != 0;
	frame->keep_created_at = (flags & WRITE_KEEP_CREATED) != 0;
	frame->caller_context = error_context_stack;
	frame->subid = GetCurrentSubTransactionId();
	frame->exec_level = exec_nested_level;
	/* a frame of the same function call: the actor of its request carries on */
	frame->actor = (top_frame != NULL && top_frame->exec_level == exec_nested_level) ?
		top_frame->actor : NULL;
	frame->next = top_frame;
	top_frame = frame;
}

/*
 * WriteCtxSetActor
 *		Records actor (the signed request's) instead of userlife.actor for
 *		the write the caller has begun and for those it begins inside it.
 *		actor must live until WriteCtxEnd.
 */
void
WriteCtxSetActor(const char *actor)
{
	Assert(top_frame != NULL && top_frame->exec_level == exec_nested_level);
	top_frame->actor = actor;
}

/* WriteCtxEnd: ends the write the caller began with WriteCtxBegin */
void
WriteCtxEnd(void)
{
	Assert(top_frame != NULL);
	Assert(top_frame->exec_level == exec_nested_level);
	Assert(top_frame->subid == GetCurrentSubTransactionId());
	if (top_frame != NULL)
		pop_frame();
}

/*
 * WriteCtxCurrent
 *		For a trigger: the frame of the function whose statement fired it,
 *		or NULL when the change was made by a statement of its own (a
 *		direct one, or one a DBA's trigger ran inside our function's write).
 */
const WriteFrame *
WriteCtxCurrent(void)
{
	/* a frame never outlives the statement that called its function */
	Assert(top_frame == NULL || top_frame->exec_level < exec_nested_level);
	if (top_frame != NULL && top_frame->exec_level + 1 == exec_nested_level)
		return top_frame;
	return NULL;
}

/*
 * WriteCtxReportAsCaller
 *		Called by the triggers just before they raise an error meant for the
 *		user: when the change comes from one of our functions, the error is
 *		reported in the context of that function's call, not of the internal
 *		statement it ran.  The error unwinds the stack, and every PG_TRY on
 *		the way restores its own error_context_stack.
 */
void
WriteCtxReportAsCaller(void)
{
	const WriteFrame *frame = WriteCtxCurrent();

	if (frame != NULL)
		error_context_stack = frame->caller_context;
}
