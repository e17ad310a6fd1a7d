/*-------------------------------------------------------------------------
 *
 * util.h
 *		Argument checks, the SPI connection, kept plans and JSON helpers that
 *		every SQL-callable function shares (util.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_UTIL_H
#define USERLIFE_UTIL_H

#include "datatype/timestamp.h"

#include "userlife.h"
#include "fmgr.h"
#include "executor/spi.h"
#include "nodes/execnodes.h"
#include "utils/jsonb.h"

extern void UtilInit(void);
extern void UtilRetirePlans(void);

/* arguments */
extern char *UserlifeRequireText(FunctionCallInfo fcinfo, int argno, const char *argname);
extern char *UserlifeOptionalText(FunctionCallInfo fcinfo, int argno);
extern void UserlifeRequireArg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern void UserlifeCheckPartnerId(const char *partner);
extern void UserlifeCheckExternalId(const char *external_id);
extern void UserlifeCheckEmail(const char *email);
extern void UserlifeCheckBatchSize(int n, int max, const char *items, const char *function);
extern const char *UserlifeEffectiveReason(const char *explicit_reason);

/* SPI with a fixed search path, and plans prepared once per backend */
extern void UserlifeSpiConnect(void);
extern void UserlifeSpiFinish(void);
extern SPIPlanPtr UserlifePreparePlan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes);
extern void UserlifeRun(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
						Datum *values, const char *nulls, bool read_only, long count, int expected);
extern void UserlifeRunForUser(SPIPlanPtr *cache, const char *sql, const char *partner,
							   const char *external_id, bool read_only, long count,
							   int expected);
extern void UserlifeRunCustom(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
							  Datum *values, const char *nulls, bool read_only, long count,
							  int expected);
extern void UserlifeStoreCompositeRows(ReturnSetInfo *rsinfo);

/* building jsonb results */
extern void UserlifePushKey(JsonbParseState **state, const char *key);
extern void UserlifePushKeyValue(JsonbParseState **state, const char *key, JsonbValue *v);
extern void UserlifePushKeyString(JsonbParseState **state, const char *key, const char *value);
extern void UserlifePushKeyInt8(JsonbParseState **state, const char *key, int64 value);
extern Jsonb *UserlifeJsonbOutOfSpi(Jsonb *built);

/* how messages show caller values and name a user */
#define USERLIFE_MSG_VALUE_CHARS	64
extern const char *UserlifeMsgValue(const char *value);
extern char *UserlifeUserName(const char *partner, const char *external_id);

/* an interval from text, NULL when it does not parse (for GUC check hooks) */
extern Interval *UserlifeParseIntervalQuietly(const char *text);

#endif							/* USERLIFE_UTIL_H */
