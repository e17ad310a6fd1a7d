/*-------------------------------------------------------------------------
 *
 * monitor.h
 *		Progress in pg_stat_activity and the maintenance log (monitor.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_MONITOR_H
#define USERLIFE_MONITOR_H

#include "utils/jsonb.h"
#include "utils/timestamp.h"

extern bool MonitorProgressBegin(const char *what);
extern void MonitorProgress(const char *fmt,...) pg_attribute_printf(1, 2);
extern void MonitorProgressEnd(bool began);
extern void MonitorRecordMaintenance(Oid caller, TimestampTz started, int32 batch_size,
									 Jsonb *counts);

#endif							/* USERLIFE_MONITOR_H */
