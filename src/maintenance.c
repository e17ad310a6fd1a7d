/*-------------------------------------------------------------------------
 *
 * maintenance.c
 *		The pg_cron job that runs run_maintenance, and the guards that keep
 *		bulk DDL from bypassing the lifecycle: TRUNCATE of users, and any
 *		DROP that would take the extension while a user is under legal hold.
 *
 * The job runs as the role that called schedule_maintenance: pg_cron takes
 * the job's user from the current user, so cron.schedule is called after
 * switching back from the extension owner.  Its command runs our function
 * only while it is a member of extension userlife (a role that creates a
 * schema userlife and a run_maintenance() of its own after the extension
 * is gone cannot get it run), and the job is removed when the extension is
 * dropped.
 *
 * pg_cron's functions exist only in cron.database_name.  From another
 * database a job can only be created by a connection to that one, which
 * this function does not open: it raises 55000 with the exact call to run
 * there.
 *
 * The DROP guard is an event trigger on ddl_command_start: one on sql_drop
 * would not fire, because it is itself dropped with the extension before
 * the event.  It is enabled ALWAYS, so session_replication_role = replica
 * does not switch it off; event triggers never fire in single-user mode.
 * Everything it does is transactional: a DROP that fails afterwards leaves
 * the job in place.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "userlife.h"
#include "access.h"
#include "maintenance.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_schedule_maintenance);
PG_FUNCTION_INFO_V1(userlife_unschedule_maintenance);
PG_FUNCTION_INFO_V1(userlife_users_truncate_guard);
PG_FUNCTION_INFO_V1(userlife_users_hold_guard);

static ProcessUtility_hook_type prev_utility_hook = NULL;
PG_FUNCTION_INFO_V1(userlife_drop_guard);

#define JOB_PREFIX "userlife-maintenance:"
/* the name and command 0.2.0 registered its job with */
#define LEGACY_JOB_NAME "userlife-maintenance"
#define LEGACY_JOB_COMMAND "SELECT userlife.run_maintenance()"

/*
 * The job's command: run_maintenance is called only when the function that
 * userlife.run_maintenance(integer) names is a member of the extension
 * userlife.  A look-alike made after DROP EXTENSION is no member, so the
 * job then selects no row and calls nothing.  Operators are qualified: the
 * job runs with its role's search_path.
 */
#define JOB_COMMAND \
	"SELECT userlife.run_maintenance() FROM pg_catalog.pg_depend d" \
	" WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass" \
	" AND d.objid OPERATOR(pg_catalog.=) 'userlife.run_maintenance(integer)'::pg_catalog.regprocedure" \
	" AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass" \
	" AND d.deptype OPERATOR(pg_catalog.=) 'e'" \
	" AND d.refobjid OPERATOR(pg_catalog.=) (SELECT e.oid FROM pg_catalog.pg_extension e" \
	" WHERE e.extname OPERATOR(pg_catalog.=) 'userlife')"

/*
 * job_name: "userlife-maintenance:<database>", cut to what pg_cron's
 * jobname column (type name) keeps.  pg_cron keys jobs by name and user,
 * so one role can keep a job for each of several databases.
 */
static char *
job_name(void)
{
	char	   *name = psprintf("%s%s", JOB_PREFIX, get_database_name(MyDatabaseId));
	int			len = pg_mbcliplen(name, strlen(name), NAMEDATALEN - 1);

	name[len] = '\0';
	return name;
}

/*
 * cron_schema
 *		The schema of pg_cron's functions and job table in this database,
 *		found by extension membership; NULL when pg_cron is not installed
 *		here.  Must
 *		run inside UserlifeSpiConnect.
 */
static char *
cron_schema(void)
{
	static SPIPlanPtr plan = NULL;

	/* pg_cron's own schema, not its extnamespace: found by schedule()'s membership */
	UserlifeRun(&plan,
		"SELECT n.nspname FROM pg_catalog.pg_depend d"
		" JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid"
		" JOIN pg_catalog.pg_proc p ON p.oid = d.objid"
		" JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
		" WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass"
		" AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass"
		" AND d.deptype = 'e' AND e.extname = 'pg_cron'"
		" AND p.proname = 'schedule' AND p.pronargs = 3",
		0, NULL, NULL, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* cron_elsewhere: the database pg_cron runs jobs from, when loaded and not this one */
static const char *
cron_elsewhere(void)
{
	const char *db = GetConfigOption("cron.database_name", true, false);

	if (db == NULL || strcmp(db, get_database_name(MyDatabaseId)) == 0)
		return NULL;
	return db;
}

/* no_cron: 55000, with the call to make in pg_cron's database when there is one */
static void
no_cron(const char *schedule) pg_attribute_noreturn();
static void
no_cron(const char *schedule)
{
	const char *cron_db = cron_elsewhere();
	char	   *db = get_database_name(MyDatabaseId);

	if (cron_db == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron is not installed in this database"),
				 errhint("Install pg_cron (shared_preload_libraries = 'pg_cron', then CREATE EXTENSION pg_cron), or call userlife.run_maintenance() from another scheduler.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("pg_cron is not installed in this database"),
			 errdetail("pg_cron runs its jobs from database \"%s\"; a job for database \"%s\" can only be created by a connection to that one.",
					   cron_db, db),
			 errhint("Connect to database \"%s\" as the role that is to run the job and run: SELECT cron.schedule_in_database(%s, %s, %s, %s);",
					 cron_db, quote_literal_cstr(job_name()), quote_literal_cstr(schedule),
					 quote_literal_cstr(JOB_COMMAND), quote_literal_cstr(db))));
}

/*
 * check_cron_privileges
 *		42501 unless the role may call <schema>.schedule(text, text, text)
 *		and log in (pg_cron starts the job's session as that role).
 */
static void
check_cron_privileges(Oid role, const char *schema)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Oid			fn = LookupFuncName(list_make2(makeString((char *) schema), makeString("schedule")),
									3, argtypes, true);
	char	   *rolename = GetUserNameFromId(role, false);
	HeapTuple	tup;
	bool		can_login;

	if (!OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("function %s.schedule(text, text, text) does not exist", schema),
				 errhint("Update pg_cron to version 1.4 or later.")));
	if (pg_namespace_aclcheck(get_namespace_oid(schema, false), role, ACL_USAGE) != ACLCHECK_OK ||
		pg_proc_aclcheck(fn, role, ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not schedule pg_cron jobs", rolename),
				 errdetail("The maintenance job runs as the role that schedules it."),
				 errhint("Run GRANT USAGE ON SCHEMA %s TO %s as a superuser, or schedule as a role that may use pg_cron.",
						 quote_identifier(schema), quote_identifier(rolename))));
	tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for role %u", role);
	can_login = ((Form_pg_authid) GETSTRUCT(tup))->rolcanlogin;
	ReleaseSysCache(tup);
	if (!can_login)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" cannot log in, so pg_cron cannot run its job", rolename),
				 errdetail("The maintenance job runs as the role that schedules it."),
				 errhint("Schedule as a role with LOGIN, or ALTER ROLE %s LOGIN.",
						 quote_identifier(rolename))));
}

/*
 * schedule_maintenance(schedule): registers run_maintenance with pg_cron as
 * the calling role; returns the job id.  Calling it again replaces the
 * schedule of the caller's job.
 */
Datum
userlife_schedule_maintenance(PG_FUNCTION_ARGS)
{
	char	   *schedule = PG_ARGISNULL(0) ? "*/5 * * * *" : text_to_cstring(PG_GETARG_TEXT_PP(0));
	AccessScope scope;
	char	   *schema;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		isnull;
	int64		job_id;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	schema = cron_schema();
	if (schema == NULL)
		no_cron(schedule);
	check_cron_privileges(scope.saved_user, schema);
	/* pg_cron records the current user as the job's user: be the caller again */
	SetUserIdAndSecContext(scope.saved_user, scope.saved_sec_context);
	values[0] = CStringGetTextDatum(job_name());
	values[1] = CStringGetTextDatum(schedule);
	values[2] = CStringGetTextDatum(JOB_COMMAND);
	if (SPI_execute_with_args(psprintf("SELECT %s.schedule($1, $2, $3)", quote_identifier(schema)),
							  3, argtypes, values, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "cron.schedule failed");
	job_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	AccessLeave(&scope);
	PG_RETURN_INT64(job_id);
}

/*
 * remove_jobs
 *		Unschedules every job of this database that schedule_maintenance (of
 *		this or of 0.2.0) registered, whoever registered it; returns how
 *		many.  Must run inside UserlifeSpiConnect as a role that sees and
 *		may remove every job (the extension owner, a superuser).
 */
static int64
remove_jobs(const char *schema)
{
	Oid			argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char	   *sql;
	int64		n;

	values[0] = CStringGetTextDatum(get_database_name(MyDatabaseId));
	values[1] = CStringGetTextDatum(job_name());
	values[2] = CStringGetTextDatum(LEGACY_JOB_NAME);
	values[3] = CStringGetTextDatum(LEGACY_JOB_COMMAND);
	sql = psprintf("SELECT %1$s.unschedule(j.jobid) FROM %1$s.job j WHERE j.database = $1"
				   " AND (j.jobname::pg_catalog.text = $2"
				   " OR (j.jobname::pg_catalog.text = $3 AND j.command = $4))",
				   quote_identifier(schema));
	if (SPI_execute_with_args(sql, 4, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "cron.unschedule failed");
	n = (int64) SPI_processed;
	return n;
}

/* unschedule_maintenance(): removes the maintenance job of this database */
Datum
userlife_unschedule_maintenance(PG_FUNCTION_ARGS)
{
	AccessScope scope;
	char	   *schema;
	int64		n;

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	schema = cron_schema();
	if (schema == NULL)
	{
		const char *cron_db = cron_elsewhere();

		if (cron_db == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("pg_cron is not installed in this database")));
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_cron is not installed in this database"),
				 errdetail("pg_cron keeps its jobs in database \"%s\".", cron_db),
				 errhint("Connect to database \"%s\" as the role that scheduled the job and run: SELECT cron.unschedule(%s);",
						 cron_db, quote_literal_cstr(job_name()))));
	}
	n = remove_jobs(schema);
	AccessLeave(&scope);
	PG_RETURN_BOOL(n > 0);
}

/* refuse_truncate: the one answer to a TRUNCATE that would empty users */
static void
refuse_truncate(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("TRUNCATE of table \"userlife.users\" is not allowed"),
			 errdetail("Users leave through their lifecycle, which writes the audit, keeps a tombstone and honours legal holds."),
			 errhint("Delete users with userlife.delete_user() and purge them with userlife.purge_expired(), or erase one at once with userlife.erase_user().")));
}

/* users_truncate_guard: BEFORE TRUNCATE on users, enabled ALWAYS */
Datum
userlife_users_truncate_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.users_truncate_guard can only be called as a TRUNCATE trigger")));
	refuse_truncate();
	PG_RETURN_NULL();
}

/*
 * users_hold_guard: BEFORE DELETE on users, enabled ALWAYS.  The users
 * guard refuses to delete a user under legal hold, but it is an ordinary
 * trigger, off in replica mode; this one keeps the hold there too.
 */
Datum
userlife_users_hold_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	bool		isnull;
	Datum		hold;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.users_hold_guard can only be called as a row DELETE trigger")));
	if (SessionReplicationRole != SESSION_REPLICATION_ROLE_REPLICA)
		return PointerGetDatum(trigdata->tg_trigtuple);
	desc = RelationGetDescr(trigdata->tg_relation);
	hold = heap_getattr(trigdata->tg_trigtuple, SPI_fnumber(desc, "legal_hold"), desc, &isnull);
	if (!isnull && DatumGetBool(hold))
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_LEGAL_HOLD),
				 errmsg("%s is under legal hold",
						UserlifeUserName(SPI_getvalue(trigdata->tg_trigtuple, desc, SPI_fnumber(desc, "partner")),
										 SPI_getvalue(trigdata->tg_trigtuple, desc, SPI_fnumber(desc, "external_id")))),
				 errdetail("A user under legal hold cannot be purged or erased, in replica mode either."),
				 errhint("Release the hold with userlife.set_legal_hold() first.")));
	return PointerGetDatum(trigdata->tg_trigtuple);
}

/*
 * truncate_guard_fires
 *		Whether users_truncate_guard would fire in this session: a superuser
 *		who disabled it has switched the whole guard off, early form included.
 */
static bool
truncate_guard_fires(Oid users)
{
	Relation	rel = table_open(users, AccessShareLock);
	TriggerDesc *td = rel->trigdesc;
	bool		fires = false;
	int			i;

	for (i = 0; td != NULL && i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (strcmp(t->tgname, "users_truncate_guard") != 0)
			continue;
		fires = t->tgenabled == TRIGGER_FIRES_ALWAYS ||
			(t->tgenabled == TRIGGER_FIRES_ON_ORIGIN &&
			 SessionReplicationRole != SESSION_REPLICATION_ROLE_REPLICA) ||
			(t->tgenabled == TRIGGER_FIRES_ON_REPLICA &&
			 SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA);
	}
	table_close(rel, AccessShareLock);
	return fires;
}

/*
 * truncate_hook
 *		A TRUNCATE naming userlife.users is refused before PostgreSQL checks
 *		the foreign keys into it (which would answer 0A000 first).  The
 *		trigger above covers what this backend cannot see: CASCADE from
 *		another table, and sessions that have not loaded the library.
 */
static void
truncate_hook(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			  ProcessUtilityContext context, ParamListInfo params,
			  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (IsA(pstmt->utilityStmt, TruncateStmt))
	{
		Oid			nsp = get_namespace_oid(USERLIFE_SCHEMA, true);
		Oid			users = OidIsValid(nsp) ? get_relname_relid("users", nsp) : InvalidOid;
		ListCell   *lc;

		foreach(lc, ((TruncateStmt *) pstmt->utilityStmt)->relations)
			if (OidIsValid(users) &&
				RangeVarGetRelid((RangeVar *) lfirst(lc), NoLock, true) == users &&
				truncate_guard_fires(users))
				refuse_truncate();
	}
	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
MaintenanceInit(void)
{
	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = truncate_hook;
}

/* name_oids: the OIDs of the named extensions or schemas that exist */
static Datum
name_oids(List *objects, bool extensions)
{
	Datum	   *oids = palloc0(sizeof(Datum) * (list_length(objects) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, objects)
	{
		Node	   *obj = lfirst(lc);
		Oid			oid;

		if (!IsA(obj, String))
			continue;
		oid = extensions ? get_extension_oid(strVal(obj), true) : get_namespace_oid(strVal(obj), true);
		if (OidIsValid(oid))
			oids[n++] = ObjectIdGetDatum(oid);
	}
	return PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/* role_oids: the OIDs of the roles of DROP OWNED BY */
static Datum
role_oids(List *roles)
{
	Datum	   *oids = palloc0(sizeof(Datum) * (list_length(roles) + 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, roles)
	{
		Oid			oid = get_rolespec_oid(lfirst(lc), true);

		if (OidIsValid(oid))
			oids[n++] = ObjectIdGetDatum(oid);
	}
	return PointerGetDatum(construct_array(oids, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/*
 * drops_userlife
 *		Whether the DROP EXTENSION, DROP SCHEMA or DROP OWNED statement
 *		would drop extension userlife (ext): it names it or its owner, or,
 *		with CASCADE, names an extension or schema that userlife depends on
 *		(pgcrypto, pg_trgm, the schema they live in) or one's owner.  Must
 *		run inside UserlifeSpiConnect.
 */
static bool
drops_userlife(Node *parsetree, Oid ext)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[5] = {OIDOID, OIDARRAYOID, OIDARRAYOID, OIDARRAYOID, BOOLOID};
	Datum		values[5];
	Datum		none = PointerGetDatum(construct_empty_array(OIDOID));
	bool		isnull;

	values[0] = ObjectIdGetDatum(ext);
	values[1] = values[2] = values[3] = none;
	if (IsA(parsetree, DropStmt))
	{
		DropStmt   *stmt = (DropStmt *) parsetree;

		if (stmt->removeType == OBJECT_EXTENSION)
			values[1] = name_oids(stmt->objects, true);
		else if (stmt->removeType == OBJECT_SCHEMA)
			values[2] = name_oids(stmt->objects, false);
		else
			return false;
		values[4] = BoolGetDatum(stmt->behavior == DROP_CASCADE);
	}
	else if (IsA(parsetree, DropOwnedStmt))
	{
		values[3] = role_oids(((DropOwnedStmt *) parsetree)->roles);
		values[4] = BoolGetDatum(((DropOwnedStmt *) parsetree)->behavior == DROP_CASCADE);
	}
	else
		return false;
	UserlifeRun(&plan,
		"WITH RECURSIVE up(classid, objid) AS ("
		" SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass::pg_catalog.oid, $1"
		" UNION SELECT d.refclassid, d.refobjid FROM pg_catalog.pg_depend d"
		" JOIN up ON d.classid = up.classid AND d.objid = up.objid"
		" WHERE d.deptype IN ('n', 'a') AND d.refclassid IN ("
		"  'pg_catalog.pg_extension'::pg_catalog.regclass, 'pg_catalog.pg_namespace'::pg_catalog.regclass))"
		" SELECT EXISTS (SELECT FROM up"
		"  LEFT JOIN pg_catalog.pg_extension e"
		"   ON up.classid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND e.oid = up.objid"
		"  LEFT JOIN pg_catalog.pg_namespace n"
		"   ON up.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND n.oid = up.objid"
		"  WHERE ($5 OR e.oid = $1)"
		"  AND (e.oid = ANY ($2) OR n.oid = ANY ($3) OR e.extowner = ANY ($4) OR n.nspowner = ANY ($4)))",
		5, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* refuse_under_hold: UL004 while any user is under legal hold */
static void
refuse_under_hold(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	int64		held;

	UserlifeRun(&plan,
		"SELECT pg_catalog.count(*) FROM userlife.users u WHERE u.legal_hold",
		0, NULL, NULL, NULL, true, 1, SPI_OK_SELECT);
	held = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (held > 0)
		ereport(ERROR,
				(errcode(ERRCODE_USERLIFE_LEGAL_HOLD),
				 errmsg("extension \"userlife\" cannot be dropped while users are under legal hold"),
				 errdetail_plural("%lld user is under legal hold; dropping the extension would delete it and its audit.",
								  "%lld users are under legal hold; dropping the extension would delete them and their audit.",
								  (unsigned long) held, (long long) held),
				 errhint("Archive the audit and release each hold with userlife.set_legal_hold() once the matter is closed, or restore into a new database instead of over this one.")));
}

/* extension_owner: the owner of extension ext.  Must run inside UserlifeSpiConnect. */
static Oid
extension_owner(Oid ext)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(ext)};
	bool		isnull;

	UserlifeRun(&plan, "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.oid = $1",
				1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "extension %u does not exist", ext);
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * drop_guard: event trigger on ddl_command_start for DROP EXTENSION, DROP
 * SCHEMA and DROP OWNED.  When the statement would drop userlife, refuses
 * it while a user is under legal hold and removes the maintenance job.
 * Runs as the extension owner: a database owner may drop schema public,
 * and with it the extension, without any right on our tables.
 */
Datum
userlife_drop_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata = (EventTriggerData *) fcinfo->context;
	Oid			ext;
	Oid			saved_user;
	int			saved_sec_context;
	char	   *schema;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("userlife.drop_guard can only be called as an event trigger")));
	ext = get_extension_oid("userlife", true);
	if (!OidIsValid(ext) || trigdata->parsetree == NULL)
		PG_RETURN_VOID();
	UserlifeSpiConnect();
	GetUserIdAndSecContext(&saved_user, &saved_sec_context);
	SetUserIdAndSecContext(extension_owner(ext),
						   saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	if (drops_userlife(trigdata->parsetree, ext))
	{
		refuse_under_hold();
		/*
		 * A job kept in pg_cron's database, when that is another one, is out
		 * of reach; its command then runs nothing (see JOB_COMMAND).
		 */
		schema = cron_schema();
		if (schema != NULL)
			(void) remove_jobs(schema);
	}
	SetUserIdAndSecContext(saved_user, saved_sec_context);
	UserlifeSpiFinish();
	PG_RETURN_VOID();
}
