/*-------------------------------------------------------------------------
 *
 * access.c
 *		Roles and partner bindings: who may call what, on which partner.
 *
 * Every SQL-callable function enters through AccessEnter, which checks the
 * calling role against the SPEC §3 matrix and the partner bindings and then
 * switches the current user to the owner of userlife.users (the extension
 * owner) so that the function can write tables no other role may write.
 * AccessLeave switches back; an error in between is undone by the
 * (sub)transaction abort, which restores the user id itself.
 *
 * A binding names its role twice: by OID (regrole) and by the name the role
 * had when it was bound.  DROP ROLE cannot be hooked, so a dropped role's
 * bindings stay behind, and PostgreSQL may hand its OID to a role created
 * later; such a binding is honoured only while the role with that OID still
 * has that name (USERLIFE_BINDING_LIVE), so the new role inherits nothing.
 * run_maintenance drops the bindings that no longer match
 * (AccessDropStaleBindings); bind_partner again re-binds a renamed role.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "userlife.h"
#include "access.h"
#include "catalog.h"
#include "lifecycle.h"
#include "util.h"

PG_FUNCTION_INFO_V1(userlife_bind_partner);
PG_FUNCTION_INFO_V1(userlife_unbind_partner);

static SPIPlanPtr binding_plan = NULL;

/* SQL condition: binding b is still the role it was made for */
#define USERLIFE_BINDING_LIVE \
	"b.role_name OPERATOR(pg_catalog.=) pg_catalog.pg_get_userbyid(b.role::pg_catalog.oid)::pg_catalog.text"

static const char *const level_role_names[] = {
	"userlife_reader", "userlife_developer", "userlife_compliance",
	"userlife_developer or userlife_compliance", "userlife_owner"
};

static bool
member_of(Oid role, const char *group)
{
	Oid			group_oid = get_role_oid(group, true);

	return OidIsValid(group_oid) && has_privs_of_role(role, group_oid);
}

/* has_level: does the role hold the column of the SPEC §3 matrix? */
static bool
has_level(Oid role, AccessLevel level)
{
	if (superuser_arg(role) || member_of(role, "userlife_owner"))
		return true;
	if (member_of(role, "userlife_admin"))
		return level != ACCESS_OWNER;
	switch (level)
	{
		case ACCESS_READER:
			return member_of(role, "userlife_reader") ||
				member_of(role, "userlife_developer") ||
				member_of(role, "userlife_compliance");
		case ACCESS_DEVELOPER:
			return member_of(role, "userlife_developer");
		case ACCESS_COMPLIANCE:
			return member_of(role, "userlife_compliance");
		case ACCESS_SIGNED:
			return member_of(role, "userlife_developer") ||
				member_of(role, "userlife_compliance");
		case ACCESS_OWNER:
			return false;
	}
	return false;
}

/* AccessIsPartnerWide: superusers and userlife_owner members act on every partner */
bool
AccessIsPartnerWide(Oid role)
{
	return superuser_arg(role) || member_of(role, "userlife_owner");
}

/*
 * check_partner_binding
 *		Raises 42501 unless the role, or a role it has the privileges of, is
 *		bound to the partner.  The message is the same whether or not the
 *		partner or any of its users exist.  Must run as the extension owner
 *		inside UserlifeSpiConnect.
 */
static void
check_partner_binding(Oid role, const char *partner)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		values[2];
	SPIPlanPtr	plan;
	int			rc;

	if (AccessIsPartnerWide(role))
		return;
	plan = UserlifePreparePlan(&binding_plan,
							   "SELECT 1 FROM userlife.partner_bindings b "
							   "WHERE b.partner = $1 AND " USERLIFE_BINDING_LIVE
							   " AND pg_catalog.pg_has_role($2, b.role::pg_catalog.oid, 'USAGE') "
							   "LIMIT 1",
							   2, argtypes);
	values[0] = CStringGetTextDatum(partner);
	values[1] = ObjectIdGetDatum(role);
	rc = SPI_execute_plan(plan, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "partner binding lookup failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for partner \"%s\"", partner),
				 errhint("The partner must be bound to your role with userlife.bind_partner().")));
}

static Oid
extension_owner(void)
{
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(UserlifeUsersRelid()));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", UserlifeUsersRelid());
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * AccessRefuseOnStandby
 *		Raises 25006 on a hot standby when the SQL function being called is
 *		volatile, that is, may write.  Called first, before the role check
 *		and any lookup, so that every writing function fails on a standby
 *		at its start with the same clear error, and never later with
 *		whatever its first write meets (a row lock, an xid, XX000).  The
 *		catalog decides which functions write, so a function added later is
 *		covered as soon as it is declared volatile.  Costs nothing on a
 *		primary: RecoveryInProgress() is a local flag once recovery ended.
 */
void
AccessRefuseOnStandby(FunctionCallInfo fcinfo)
{
	Oid			fn = InvalidOid;

	if (!RecoveryInProgress())
		return;
	if (fcinfo != NULL && fcinfo->flinfo != NULL)
		fn = fcinfo->flinfo->fn_oid;
	if (OidIsValid(fn) && func_volatile(fn) != PROVOLATILE_VOLATILE)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("cannot run %s on a read-only standby",
					OidIsValid(fn) ? get_func_name(fn) : "a writing userlife function"),
			 errdetail("The server is a hot standby: it replays the primary's changes and accepts none of its own."),
			 errhint("Connect to the primary server to change data.")));
}

/*
 * AccessEnterCall (through the AccessEnter macros)
 *		Checks that the calling role may perform an operation of the given
 *		level on the partner (NULL: no partner involved), connects to SPI and
 *		switches to the extension owner.  The caller must pair it with
 *		AccessLeave on success.  Unless reads_only, a volatile function is
 *		refused on a hot standby first (AccessRefuseOnStandby).
 */
void
AccessEnterCall(FunctionCallInfo fcinfo, AccessScope *scope, AccessLevel level,
				const char *partner, bool reads_only)
{
	if (!reads_only)
		AccessRefuseOnStandby(fcinfo);
	scope->caller = GetUserId();
	if (!has_level(scope->caller, level))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: role \"%s\" is not a member of \"%s\"",
						GetUserNameFromId(scope->caller, false),
						level_role_names[level])));
	GetUserIdAndSecContext(&scope->saved_user, &scope->saved_sec_context);
	SetUserIdAndSecContext(extension_owner(),
						   scope->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	UserlifeSpiConnect();
	if (partner != NULL)
		check_partner_binding(scope->caller, partner);
}

/*
 * AccessEnterPartnerCall (through AccessEnterPartner)
 *		AccessEnterCall for a partner the caller named: its id is checked
 *		first, so that a malformed id is 22023 whatever the caller's rights.
 */
void
AccessEnterPartnerCall(FunctionCallInfo fcinfo, AccessScope *scope, AccessLevel level,
					   const char *partner)
{
	UserlifeCheckPartnerId(partner);
	AccessEnterCall(fcinfo, scope, level, partner, false);
}

/* AccessUserArgs: the partner and external_id arguments of a call on one user */
UserCall
AccessUserArgs(FunctionCallInfo fcinfo)
{
	UserCall	call;

	memset(&call.scope, 0, sizeof(call.scope));
	call.partner = UserlifeRequireText(fcinfo, 0, "partner");
	call.external_id = UserlifeRequireText(fcinfo, 1, "external_id");
	return call;
}

/* AccessLeave: disconnects from SPI and switches back to the calling role */
void
AccessLeave(AccessScope *scope)
{
	UserlifeSpiFinish();
	SetUserIdAndSecContext(scope->saved_user, scope->saved_sec_context);
}

/*
 * AccessLeaveWithRows
 *		The end of a set-returning function that answers with the rows of
 *		its last statement: they go into its tuplestore (see
 *		UserlifeStoreCompositeRows) before AccessLeave frees them.
 */
Datum
AccessLeaveWithRows(AccessScope *scope, ReturnSetInfo *rsinfo)
{
	UserlifeStoreCompositeRows(rsinfo);
	AccessLeave(scope);
	return (Datum) 0;
}

/*
 * AccessIsEntered: whether we run between AccessEnter and AccessLeave, for
 * the Assert()s of the functions that must
 */
bool
AccessIsEntered(void)
{
	Oid			user;
	int			sec_context;

	GetUserIdAndSecContext(&user, &sec_context);
	return (sec_context & SECURITY_LOCAL_USERID_CHANGE) != 0 && user == extension_owner();
}

static void
change_binding(FunctionCallInfo fcinfo, bool bind)
{
	Oid			role;
	char	   *partner;
	AccessScope scope;
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		values[3];
	static SPIPlanPtr bind_plan = NULL;
	static SPIPlanPtr unbind_plan = NULL;

	UserlifeRequireArg(fcinfo, 0, "role");
	role = PG_GETARG_OID(0);
	partner = UserlifeRequireText(fcinfo, 1, "partner");
	UserlifeCheckPartnerId(partner);
	/*
	 * A regrole given as a number is not checked by its input function; a
	 * binding must name a role that exists (22023, a malformed argument).
	 */
	if (bind && !SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("role with OID %u does not exist", role),
				 errdetail("A partner can be bound only to an existing role.")));

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	values[0] = ObjectIdGetDatum(role);
	values[1] = CStringGetTextDatum(partner);
	values[2] = bind ? CStringGetTextDatum(GetUserNameFromId(role, false)) : (Datum) 0;
	LifecycleRequirePartner(partner);
	/* binding again refreshes the name: a renamed or stale binding is the role's now */
	if (bind)
		UserlifeRun(&bind_plan,
					"INSERT INTO userlife.partner_bindings AS b (role, partner, role_name) "
					"VALUES ($1::pg_catalog.regrole, $2, $3) "
					"ON CONFLICT (role, partner) DO UPDATE SET role_name = excluded.role_name "
					"WHERE b.role_name IS DISTINCT FROM excluded.role_name",
					3, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
	else
		UserlifeRun(&unbind_plan,
					"DELETE FROM userlife.partner_bindings b "
					"WHERE b.role = $1::pg_catalog.regrole AND b.partner = $2",
					2, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
	AccessLeave(&scope);
}

/* bind_partner(role, partner): lets a role act on a partner's users */
Datum
userlife_bind_partner(PG_FUNCTION_ARGS)
{
	change_binding(fcinfo, true);
	PG_RETURN_VOID();
}

/* unbind_partner(role, partner): withdraws a role's access to a partner */
Datum
userlife_unbind_partner(PG_FUNCTION_ARGS)
{
	change_binding(fcinfo, false);
	PG_RETURN_VOID();
}

/*
 * sees_every_partner(): whether row-level security lets the current role
 * see every partner's rows (superusers and userlife_owner members).
 */
PG_FUNCTION_INFO_V1(userlife_sees_every_partner);
Datum
userlife_sees_every_partner(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(AccessIsPartnerWide(GetUserId()));
}

/*
 * bound_partners(): the partners bound to the current role or to a role
 * it has the privileges of; what row-level security lets it see.  Reads
 * partner_bindings as the extension owner, which the caller cannot.
 */
PG_FUNCTION_INFO_V1(userlife_bound_partners);
Datum
userlife_bound_partners(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			caller = GetUserId();
	Oid			saved_user;
	int			saved_sec;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	bool		isnull;
	Datum		result;

	GetUserIdAndSecContext(&saved_user, &saved_sec);
	SetUserIdAndSecContext(extension_owner(), saved_sec | SECURITY_LOCAL_USERID_CHANGE);
	UserlifeSpiConnect();
	values[0] = ObjectIdGetDatum(caller);
	UserlifeRun(&plan,
				"SELECT coalesce(pg_catalog.array_agg(DISTINCT b.partner),"
				" '{}'::pg_catalog.text[]) FROM userlife.partner_bindings b"
				" WHERE " USERLIFE_BINDING_LIVE
				" AND pg_catalog.pg_has_role($1, b.role::pg_catalog.oid, 'USAGE')",
				1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
	result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							   false, -1);
	UserlifeSpiFinish();
	SetUserIdAndSecContext(saved_user, saved_sec);
	PG_RETURN_DATUM(result);
}

/*
 * AccessDropStaleBindings
 *		Deletes the bindings whose role was dropped or renamed (see the file
 *		banner) and returns how many.  They are already ignored; this only
 *		keeps the table honest.  Must run inside AccessEnter.
 */
int64
AccessDropStaleBindings(void)
{
	static SPIPlanPtr plan = NULL;

	Assert(AccessIsEntered());

	UserlifeRun(&plan,
				"DELETE FROM userlife.partner_bindings b WHERE NOT (" USERLIFE_BINDING_LIVE ")",
				0, NULL, NULL, NULL, false, 0, SPI_OK_DELETE);
	return (int64) SPI_processed;
}

/*------------------------------------------------------------------------
 * Privileges whatever the installing role's default privileges
 *------------------------------------------------------------------------
 */

/* add_grantees: appends ", role" for each grantee of acl but PUBLIC and owner, once */
static void
add_grantees(StringInfo sql, List **seen, Datum acldatum, Oid owner)
{
	Datum	   *items;
	int			n;
	int			i;
	int16		typlen;
	bool		typbyval;
	char		typalign;

	/* ACL_DAT trips -Wsign-compare; an aclitem[] is an ordinary array */
	get_typlenbyvalalign(ACLITEMOID, &typlen, &typbyval, &typalign);
	deconstruct_array(DatumGetAclP(acldatum), ACLITEMOID, typlen, typbyval, typalign,
					  &items, NULL, &n);
	for (i = 0; i < n; i++)
	{
		Oid			grantee = ((AclItem *) DatumGetPointer(items[i]))->ai_grantee;
		char	   *name;

		if (grantee == ACL_ID_PUBLIC || grantee == owner || list_member_oid(*seen, grantee))
			continue;
		name = GetUserNameFromId(grantee, true);
		if (name == NULL)
			continue;
		*seen = lappend_oid(*seen, grantee);
		appendStringInfo(sql, ", %s", quote_identifier(name));
	}
}

/*
 * describe_member
 *		For one member object of the extension: the GRANT object type
 *		keyword, its qualified name, its owner, and in *revoke the REVOKE
 *		statement's grantees (PUBLIC and every role that holds a privilege
 *		on it or on one of its columns, the owner apart).  False for objects
 *		that carry no privileges (operators, array types, ...).
 */
static bool
describe_member(Oid classid, Oid objid, const char **kind, char **name, Oid *owner,
				StringInfo grantees)
{
	HeapTuple	tup;
	Datum		acl;
	bool		isnull;
	List	   *seen = NIL;

	appendStringInfoString(grantees, "PUBLIC");
	if (classid == RelationRelationId)
	{
		Form_pg_class rel;
		AttrNumber	att;

		tup = SearchSysCache1(RELOID, ObjectIdGetDatum(objid));
		if (!HeapTupleIsValid(tup))
			return false;
		rel = (Form_pg_class) GETSTRUCT(tup);
		/* tables, views, sequences; an index or a TOAST table has no privileges */
		if (strchr("rpvmfS", rel->relkind) == NULL || rel->relkind == '\0')
		{
			ReleaseSysCache(tup);
			return false;
		}
		*kind = rel->relkind == RELKIND_SEQUENCE ? "SEQUENCE" : "TABLE";
		*owner = rel->relowner;
		*name = quote_qualified_identifier(get_namespace_name(rel->relnamespace),
										   NameStr(rel->relname));
		acl = SysCacheGetAttr(RELOID, tup, Anum_pg_class_relacl, &isnull);
		if (!isnull)
			add_grantees(grantees, &seen, acl, *owner);
		/* REVOKE ... ON TABLE revokes the grantees' column privileges too */
		for (att = 1; att <= rel->relnatts; att++)
		{
			HeapTuple	atttup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(objid),
												 Int16GetDatum(att));

			if (!HeapTupleIsValid(atttup))
				continue;
			acl = SysCacheGetAttr(ATTNUM, atttup, Anum_pg_attribute_attacl, &isnull);
			if (!isnull)
				add_grantees(grantees, &seen, acl, *owner);
			ReleaseSysCache(atttup);
		}
		ReleaseSysCache(tup);
		return true;
	}
	if (classid == ProcedureRelationId)
	{
		tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(objid));
		if (!HeapTupleIsValid(tup))
			return false;
		*kind = "ROUTINE";
		*owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		*name = format_procedure_qualified(objid);
		acl = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proacl, &isnull);
	}
	else if (classid == TypeRelationId)
	{
		tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(objid));
		if (!HeapTupleIsValid(tup))
			return false;
		/* an array type takes its element type's privileges */
		if (IsTrueArrayType((Form_pg_type) GETSTRUCT(tup)))
		{
			ReleaseSysCache(tup);
			return false;
		}
		*kind = "TYPE";
		*owner = ((Form_pg_type) GETSTRUCT(tup))->typowner;
		*name = format_type_be_qualified(objid);
		acl = SysCacheGetAttr(TYPEOID, tup, Anum_pg_type_typacl, &isnull);
	}
	else if (classid == NamespaceRelationId)
	{
		tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(objid));
		if (!HeapTupleIsValid(tup))
			return false;
		*kind = "SCHEMA";
		*owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
		*name = pstrdup(quote_identifier(NameStr(((Form_pg_namespace) GETSTRUCT(tup))->nspname)));
		acl = SysCacheGetAttr(NAMESPACEOID, tup, Anum_pg_namespace_nspacl, &isnull);
	}
	else
		return false;
	if (!isnull)
		add_grantees(grantees, &seen, acl, *owner);
	ReleaseSysCache(tup);
	return true;
}

/*
 * strip_privileges(): every object of the extension keeps its owner's
 * privileges and nothing else; returns how many objects it went through.
 *
 * ALTER DEFAULT PRIVILEGES of the installing role apply to every object the
 * extension's scripts create, so a database could get the tables' secrets
 * readable, or the owner's functions callable, by roles SPEC §3 never
 * names.  The update script calls this, then grants exactly what SPEC §3
 * says.  It runs the REVOKE and GRANT statements themselves (not catalog
 * updates) so that the dependencies on roles and the extension's initial
 * privileges (pg_init_privs, what pg_dump compares with) follow.  Refused
 * outside the extension's own scripts, where it would leave every role
 * without its privileges.
 */
PG_FUNCTION_INFO_V1(userlife_strip_privileges);
Datum
userlife_strip_privileges(PG_FUNCTION_ARGS)
{
	Oid			ext = get_extension_oid("userlife", true);
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	SPITupleTable *members;
	uint64		n;
	uint64		i;
	int64		done = 0;

	AccessRefuseOnStandby(fcinfo);
	if (!creating_extension || !OidIsValid(ext) || CurrentExtensionObject != ext)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("userlife.strip_privileges() runs only inside the scripts of extension \"userlife\""),
				 errhint("CREATE EXTENSION and ALTER EXTENSION UPDATE call it.")));
	UserlifeSpiConnect();
	values[0] = ObjectIdGetDatum(ext);
	if (SPI_execute_with_args("SELECT d.classid, d.objid FROM pg_catalog.pg_depend d"
							  " WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass"
							  " AND d.refobjid = $1 AND d.deptype = 'e' ORDER BY 1, 2",
							  1, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "extension member lookup failed");
	members = SPI_tuptable;
	n = SPI_processed;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			classid = DatumGetObjectId(SPI_getbinval(members->vals[i], members->tupdesc, 1, &isnull));
		Oid			objid = DatumGetObjectId(SPI_getbinval(members->vals[i], members->tupdesc, 2, &isnull));
		const char *kind;
		char	   *name;
		Oid			owner;
		StringInfoData grantees;
		char	   *sql;

		initStringInfo(&grantees);
		if (!describe_member(classid, objid, &kind, &name, &owner, &grantees))
			continue;
		sql = psprintf("REVOKE ALL ON %s %s FROM %s CASCADE", kind, name, grantees.data);
		elog(DEBUG1, "userlife: %s", sql);
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "\"%s\" failed", sql);
		/* a default privilege may have taken the owner's own away */
		sql = psprintf("GRANT ALL ON %s %s TO %s", kind, name,
					   quote_identifier(GetUserNameFromId(owner, false)));
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "\"%s\" failed", sql);
		done++;
	}
	UserlifeSpiFinish();
	PG_RETURN_INT64(done);
}
