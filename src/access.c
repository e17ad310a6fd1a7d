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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "userlife.h"

PG_FUNCTION_INFO_V1(userlife_bind_partner);
PG_FUNCTION_INFO_V1(userlife_unbind_partner);

static SPIPlanPtr binding_plan = NULL;

static const char *const level_role_names[] = {
	"userlife_reader", "userlife_developer", "userlife_compliance",
	"userlife_developer or userlife_compliance", "userlife_owner"
};

void
AccessInit(void)
{
}

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
 * AccessCheckPartnerBinding
 *		Raises 42501 unless the role, or a role it has the privileges of, is
 *		bound to the partner.  The message is the same whether or not the
 *		partner or any of its users exist.  Must run as the extension owner
 *		inside UserlifeSpiConnect.
 */
void
AccessCheckPartnerBinding(Oid role, const char *partner)
{
	Oid			argtypes[2] = {TEXTOID, OIDOID};
	Datum		values[2];
	SPIPlanPtr	plan;
	int			rc;

	if (AccessIsPartnerWide(role))
		return;
	plan = UserlifePreparePlan(&binding_plan,
							   "SELECT 1 FROM userlife.partner_bindings b "
							   "WHERE b.partner = $1 "
							   "AND pg_catalog.pg_has_role($2, b.role::pg_catalog.oid, 'USAGE') "
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
 * AccessEnter
 *		Checks that the calling role may perform an operation of the given
 *		level on the partner (NULL: no partner involved), connects to SPI and
 *		switches to the extension owner.  The caller must pair it with
 *		AccessLeave on success.
 */
void
AccessEnter(AccessScope *scope, AccessLevel level, const char *partner)
{
	scope->caller = GetUserId();
	if (!has_level(scope->caller, level))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: role \"%s\" is not a member of %s",
						GetUserNameFromId(scope->caller, false),
						level_role_names[level])));
	GetUserIdAndSecContext(&scope->saved_user, &scope->saved_sec_context);
	SetUserIdAndSecContext(extension_owner(),
						   scope->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	UserlifeSpiConnect();
	if (partner != NULL)
		AccessCheckPartnerBinding(scope->caller, partner);
}

/* AccessLeave: disconnects from SPI and switches back to the calling role */
void
AccessLeave(AccessScope *scope)
{
	UserlifeSpiFinish();
	SetUserIdAndSecContext(scope->saved_user, scope->saved_sec_context);
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
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	int			rc;
	static SPIPlanPtr bind_plan = NULL;
	static SPIPlanPtr unbind_plan = NULL;
	static SPIPlanPtr partner_plan = NULL;

	UserlifeRequireArg(fcinfo, 0, "role");
	role = PG_GETARG_OID(0);
	partner = UserlifeRequireText(fcinfo, 1, "partner");
	UserlifeCheckPartnerId(partner);

	AccessEnter(&scope, ACCESS_OWNER, NULL);
	values[0] = ObjectIdGetDatum(role);
	values[1] = CStringGetTextDatum(partner);
	rc = SPI_execute_plan(UserlifePreparePlan(&partner_plan,
											  "SELECT 1 FROM userlife.partners p WHERE p.partner = $1",
											  1, argtypes + 1),
						  values + 1, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "partner lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("partner \"%s\" does not exist", partner)));
	if (bind)
		rc = SPI_execute_plan(UserlifePreparePlan(&bind_plan,
												  "INSERT INTO userlife.partner_bindings (role, partner) "
												  "VALUES ($1::pg_catalog.regrole, $2) ON CONFLICT DO NOTHING",
												  2, argtypes),
							  values, NULL, false, 0);
	else
		rc = SPI_execute_plan(UserlifePreparePlan(&unbind_plan,
												  "DELETE FROM userlife.partner_bindings b "
												  "WHERE b.role = $1::pg_catalog.regrole AND b.partner = $2",
												  2, argtypes),
							  values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "partner binding change failed: %s", SPI_result_code_string(rc));
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
	if (SPI_execute_plan(UserlifePreparePlan(&plan,
											 "SELECT coalesce(pg_catalog.array_agg(DISTINCT b.partner),"
											 " '{}'::pg_catalog.text[]) FROM userlife.partner_bindings b"
											 " WHERE pg_catalog.pg_has_role($1, b.role::pg_catalog.oid, 'USAGE')",
											 1, argtypes),
						 values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "partner binding lookup failed");
	result = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							   false, -1);
	UserlifeSpiFinish();
	SetUserIdAndSecContext(saved_user, saved_sec);
	PG_RETURN_DATUM(result);
}
