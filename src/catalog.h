/*-------------------------------------------------------------------------
 *
 * catalog.h
 *		The OIDs of userlife's schema, tables and status type, cached until
 *		invalidated (catalog.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_CATALOG_H
#define USERLIFE_CATALOG_H

#include "userlife.h"

extern void CatalogInit(void);
extern Oid	CatalogRememberSchema(void);
extern void CatalogForgetOnChange(Oid *relid);
extern Oid	UserlifeRelid(const char *relname);
extern Oid	UserlifeUsersRelid(void);
extern Oid	UserlifeTransitionsRelid(void);
extern Oid	UserlifeStatusTypeOid(void);
extern UserStatus UserlifeStatusFromDatum(Datum d);

#endif							/* USERLIFE_CATALOG_H */
