/*-------------------------------------------------------------------------
 *
 * preload.c
 *		Whether this session preloaded the library, and the NOTICE that
 *		CREATE EXTENSION and ALTER EXTENSION UPDATE print when it did not.
 *
 * A library's settings exist only once it is loaded.  Loaded on demand, by
 * the session's first userlife call, userlife.* is unknown to SHOW before
 * that call, and a misspelt userlife.* in SET, ALTER ROLE or ALTER DATABASE
 * is kept as a placeholder without error.  Preloaded, the settings and the
 * reserved prefix exist from the session's start.  The install and update
 * scripts end by calling userlife.check_preload(), which says so with the
 * exact command that preloads it.
 *
 * PostgreSQL runs an extension script with client_min_messages raised to
 * WARNING, so a NOTICE raised there would never reach the DBA.  Inside a
 * script check_preload() therefore only marks the NOTICE as due, and a
 * transaction callback raises it just before commit, after the script has
 * given the caller's client_min_messages back; a rollback drops it.
 *
 * Only the session's own settings are read: nothing is written, and the
 * lists are parsed as the server parses them (SplitDirectoriesString).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"

#define USERLIFE_LIBRARY	"userlife"

/* a NOTICE due at the commit of the CREATE/ALTER EXTENSION that called us */
static bool notice_due = false;
static bool callback_registered = false;

/*
 * names_userlife
 *		Whether one element of a preload list loads this library: "userlife",
 *		"$libdir/userlife" or a path, with or without the .so suffix.
 */
static bool
names_userlife(const char *element)
{
	const char *base = strrchr(element, '/');
	size_t		len;

	base = base ? base + 1 : element;
	len = strlen(base);
	if (len > strlen(DLSUFFIX) &&
		strcmp(base + len - strlen(DLSUFFIX), DLSUFFIX) == 0)
		len -= strlen(DLSUFFIX);
	return len == strlen(USERLIFE_LIBRARY) &&
		strncmp(base, USERLIFE_LIBRARY, len) == 0;
}

/*
 * preload_list
 *		The elements of a preload setting as this session has it; NIL when
 *		it is empty or does not parse (the server would not load it either).
 */
static List *
preload_list(const char *setting)
{
	const char *value = GetConfigOption(setting, true, false);
	List	   *elements = NIL;

	if (value == NULL ||
		!SplitDirectoriesString(pstrdup(value), ',', &elements))
		return NIL;
	return elements;
}

/*
 * preload_command_value
 *		The value that adds userlife to session_preload_libraries as it is:
 *		one quoted literal per element, since the setting is a list.
 */
static char *
preload_command_value(List *session)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, session)
		appendStringInfo(&buf, "%s, ", quote_literal_cstr((char *) lfirst(lc)));
	appendStringInfoString(&buf, quote_literal_cstr(USERLIFE_LIBRARY));
	return buf.data;
}

/*
 * preloaded
 *		Whether userlife is in shared_preload_libraries or
 *		session_preload_libraries as this session has them.
 */
static bool
preloaded(void)
{
	ListCell   *lc;

	foreach(lc, list_concat(preload_list("shared_preload_libraries"),
							preload_list("session_preload_libraries")))
	{
		if (names_userlife((char *) lfirst(lc)))
			return true;
	}
	return false;
}

/* preload_notice: the NOTICE, with the commands for this session's settings */
static void
preload_notice(void)
{
	char	   *value = preload_command_value(preload_list("session_preload_libraries"));

	ereport(NOTICE,
			(errcode(ERRCODE_SUCCESSFUL_COMPLETION),
			 errmsg("library \"%s\" is not preloaded", USERLIFE_LIBRARY),
			 errdetail("Until a session's first userlife call, SHOW does not know the "
					   "userlife.* settings and a misspelt userlife.* setting is "
					   "accepted without error."),
			 errhint("Preload it in new sessions of every database with "
					 "ALTER SYSTEM SET session_preload_libraries = %s; "
					 "SELECT pg_reload_conf(); or of this database with "
					 "ALTER DATABASE %s SET session_preload_libraries = %s;",
					 value, quote_identifier(get_database_name(MyDatabaseId)),
					 value)));
}

/* notice_at_commit: raises a NOTICE an extension script marked as due */
static void
notice_at_commit(XactEvent event, void *arg)
{
	if (!notice_due)
		return;
	if (event == XACT_EVENT_PRE_COMMIT)
	{
		notice_due = false;
		preload_notice();
	}
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
			 event == XACT_EVENT_PRE_PREPARE)
		notice_due = false;
}

/*
 * userlife_check_preload
 *		check_preload(): true when this session preloaded userlife;
 *		otherwise a NOTICE with the commands that preload it (at commit,
 *		when called from an extension script), and false.
 */
PG_FUNCTION_INFO_V1(userlife_check_preload);
Datum
userlife_check_preload(PG_FUNCTION_ARGS)
{
	if (preloaded())
		PG_RETURN_BOOL(true);
	if (!creating_extension)
		preload_notice();
	else
	{
		if (!callback_registered)
		{
			RegisterXactCallback(notice_at_commit, NULL);
			callback_registered = true;
		}
		notice_due = true;
	}
	PG_RETURN_BOOL(false);
}
