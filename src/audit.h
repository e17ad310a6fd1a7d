/*-------------------------------------------------------------------------
 *
 * audit.h
 *		The users triggers and the audit they write (audit.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_AUDIT_H
#define USERLIFE_AUDIT_H

extern void AuditInit(void);

#endif							/* USERLIFE_AUDIT_H */
