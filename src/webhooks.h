/*-------------------------------------------------------------------------
 *
 * webhooks.h
 *		What the rest of userlife uses of webhook delivery (webhooks.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef USERLIFE_WEBHOOKS_H
#define USERLIFE_WEBHOOKS_H

extern void WebhooksInit(void);
extern int64 WebhooksOutboxFloor(void);
extern void WebhooksMaintenance(int64 *attempts_dropped, int64 *deliveries_dropped,
								int64 *endpoints_disabled);

#endif							/* USERLIFE_WEBHOOKS_H */
