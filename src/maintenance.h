/*-------------------------------------------------------------------------
 *
 * maintenance.h
 *		The pg_cron maintenance job and the guards against TRUNCATE and DROP
 *		(maintenance.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_MAINTENANCE_H
#define USERLIFE_MAINTENANCE_H

extern void MaintenanceInit(void);

#endif							/* USERLIFE_MAINTENANCE_H */
