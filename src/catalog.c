/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		The OIDs of userlife's own catalog objects (the schema, the tables
 *		users and transitions, the type user_status and its labels), looked
 *		up once and cached until an invalidation says they may have changed.
 *
 * Memory: cached OIDs and enum labels live in static variables and are
 * reset by a relcache callback when userlife.users or userlife.transitions
 * is invalidated (which DROP EXTENSION does), never by time.  When the
 * schema userlife goes or comes, every kept plan is retired as well (see
 * UtilRetirePlans in util.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "userlife.h"
#include "catalog.h"
#include "util.h"

const char *const UserStatusNames[USER_STATUS_COUNT] = {
	"active", "inactive", "suspended", "flagged", "blocked", "deleted"
};

static Oid	users_relid = InvalidOid;
static Oid	transitions_relid = InvalidOid;
static Oid	status_typid = InvalidOid;
static Oid	status_enum_oids[USER_STATUS_COUNT];

/* the schema userlife as last looked up, and its pg_namespace cache hash */
static Oid	schema_oid = InvalidOid;
static uint32 schema_hash = 0;

/*
 * relation OIDs other files cache what they read from a relation's
 * definition under (CatalogForgetOnChange)
 */
#define MAX_WATCHED_RELIDS 8
static Oid *watched_relids[MAX_WATCHED_RELIDS];
static int	n_watched_relids = 0;

static void reset_catalog_cache(Datum arg, Oid relid);
static void schema_changed(Datum arg, int cacheid, uint32 hashvalue);

void
CatalogInit(void)
{
	CacheRegisterRelcacheCallback(reset_catalog_cache, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, schema_changed, (Datum) 0);
}

/*
 * CatalogForgetOnChange
 *		For the XxxInit functions: *relid names the relation something was
 *		read from (column numbers, an index); it is set to InvalidOid when
 *		that relation's definition changes, and what was read must then be
 *		read again.
 */
void
CatalogForgetOnChange(Oid *relid)
{
	if (n_watched_relids >= MAX_WATCHED_RELIDS)
		elog(ERROR, "too many cached relation OIDs");
	watched_relids[n_watched_relids++] = relid;
}

static void
reset_catalog_cache(Datum arg, Oid relid)
{
	int			i;

	for (i = 0; i < n_watched_relids; i++)
		if (relid == InvalidOid || relid == *watched_relids[i])
			*watched_relids[i] = InvalidOid;
	if (relid == InvalidOid || relid == users_relid || relid == transitions_relid)
	{
		users_relid = InvalidOid;
		transitions_relid = InvalidOid;
		status_typid = InvalidOid;
	}
}

/*
 * schema_changed
 *		pg_namespace changed.  When the entry is the schema userlife (or
 *		the change cannot be told apart, hash 0, or the schema was never
 *		looked up), the extension may have been dropped or created: forget
 *		every cached OID and retire every kept plan.  An invalidation
 *		callback must not fail or read catalogs, so it only moves pointers.
 */
static void
schema_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	if (hashvalue != 0 && OidIsValid(schema_oid) && hashvalue != schema_hash)
		return;
	schema_oid = InvalidOid;
	users_relid = InvalidOid;
	transitions_relid = InvalidOid;
	status_typid = InvalidOid;
	UtilRetirePlans();
}

/* CatalogRememberSchema: the OID of schema userlife, noting its cache hash for schema_changed */
Oid
CatalogRememberSchema(void)
{
	Oid			nsp = get_namespace_oid(USERLIFE_SCHEMA, true);

	if (OidIsValid(nsp) && nsp != schema_oid)
	{
		schema_hash = GetSysCacheHashValue1(NAMESPACEOID, ObjectIdGetDatum(nsp));
		schema_oid = nsp;
	}
	return nsp;
}

static Oid
userlife_namespace(void)
{
	Oid			nsp = CatalogRememberSchema();

	if (!OidIsValid(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"userlife\" is not installed in this database")));
	return nsp;
}

/* UserlifeRelid: OID of table userlife.<relname>; 55000 when it is missing */
Oid
UserlifeRelid(const char *relname)
{
	Oid			relid = get_relname_relid(relname, userlife_namespace());

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table userlife.%s does not exist", relname)));
	return relid;
}

/* UserlifeUsersRelid: OID of userlife.users, cached until invalidated */
Oid
UserlifeUsersRelid(void)
{
	if (!OidIsValid(users_relid))
		users_relid = UserlifeRelid("users");
	return users_relid;
}

/* UserlifeTransitionsRelid: OID of userlife.transitions, cached until invalidated */
Oid
UserlifeTransitionsRelid(void)
{
	if (!OidIsValid(transitions_relid))
		transitions_relid = UserlifeRelid("transitions");
	return transitions_relid;
}

/* UserlifeStatusTypeOid: OID of userlife.user_status, with its label OIDs */
Oid
UserlifeStatusTypeOid(void)
{
	if (!OidIsValid(status_typid))
	{
		Oid			typid;
		int			i;

		(void) UserlifeUsersRelid();	/* so that the reset callback sees it */
		typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
								CStringGetDatum("user_status"),
								ObjectIdGetDatum(userlife_namespace()));
		if (!OidIsValid(typid))
			elog(ERROR, "type userlife.user_status does not exist");
		for (i = 0; i < USER_STATUS_COUNT; i++)
		{
			HeapTuple	tup = SearchSysCache2(ENUMTYPOIDNAME,
											  ObjectIdGetDatum(typid),
											  CStringGetDatum(UserStatusNames[i]));

			if (!HeapTupleIsValid(tup))
				elog(ERROR, "label \"%s\" of userlife.user_status does not exist",
					 UserStatusNames[i]);
			status_enum_oids[i] = ((Form_pg_enum) GETSTRUCT(tup))->oid;
			ReleaseSysCache(tup);
		}
		status_typid = typid;
	}
	return status_typid;
}

/* UserlifeStatusFromDatum: the UserStatus of a user_status enum Datum */
UserStatus
UserlifeStatusFromDatum(Datum d)
{
	Oid			label = DatumGetObjectId(d);
	int			i;

	(void) UserlifeStatusTypeOid();
	for (i = 0; i < USER_STATUS_COUNT; i++)
		if (status_enum_oids[i] == label)
			return (UserStatus) i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid user status")));
	return USER_ACTIVE;			/* keep compiler quiet */
}
