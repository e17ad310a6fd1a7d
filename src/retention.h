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
extern void RetentionRefuseLegalHold(const char *user_name) pg_attribute_noreturn();

#endif							/* USERLIFE_RETENTION_H */
