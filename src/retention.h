/*-------------------------------------------------------------------------
 *
 * retention.h
 *		Legal hold, purge and erasure of deleted users, and the periodic
 *		maintenance run (retention.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_RETENTION_H
#define USERLIFE_RETENTION_H

extern void RetentionInit(void);

#endif							/* USERLIFE_RETENTION_H */
