/*-------------------------------------------------------------------------
 *
 * signature.h
 *		Signed requests: API keys, HMAC signatures and their replay
 *		window (signature.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_SIGNATURE_H
#define USERLIFE_SIGNATURE_H

extern void SignatureInit(void);
extern int64 SignatureForgetExpired(void);

#endif							/* USERLIFE_SIGNATURE_H */
