/*-------------------------------------------------------------------------
 *
 * event_points.h
 *	  Event points (issue 18): points for a customer's own events, as
 *	  loyalty.points_event configures them — welcome, first purchase,
 *	  birthday.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_EVENT_POINTS_H
#define LOYALTY_EVENT_POINTS_H

#include "check.h"

/*
 * event_points_grant grants the points of points_event "event" to the
 * (locked) customer under operation_id, dated at, once: returns the points
 * (hundredths) granted, 0 when the event is not configured or enabled, or
 * operation_id already granted them.
 */
extern int64 event_points_grant(int64 customer_id, const char *event,
								const char *operation_id, TimestampTz at);

/*
 * event_points_first_purchase grants the first-purchase points when the
 * purchase operation_id of the priced check r is its customer's first.
 */
extern void event_points_first_purchase(CheckResult *r, const char *operation_id);

/*
 * event_points_refund takes back, on the full refund refund_operation_id
 * of purchase purchase_operation_id, the first-purchase points it brought.
 */
extern void event_points_refund(int64 customer_id, const char *purchase_operation_id,
								const char *refund_operation_id, TimestampTz at);

#endif							/* LOYALTY_EVENT_POINTS_H */
