/*-------------------------------------------------------------------------
 *
 * events.h
 *	  Writing to the event outbox (SPEC section 11) from C: a purchase
 *	  gathers the events it causes and writes them with one statement.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_EVENTS_H
#define LOYALTY_EVENTS_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#include "jsonb_builder.h"

/* Events of one customer waiting to be written, in order. */
typedef struct EventBatch
{
	int			n;
	int			size;
	Datum	   *kinds;			/* text */
	Datum	   *payloads;		/* jsonb */
} EventBatch;

/* event_batch_add appends an event (kind, payload) to the batch. */
extern void event_batch_add(EventBatch *batch, const char *kind, Jsonb *payload);

/*
 * event_batch_write inserts the batch's events for the customer, in the
 * order they were added, with one statement, and empties the batch.
 */
extern void event_batch_write(EventBatch *batch, int64 customer_id);

/*
 * jb_timestamptz adds a timestamp as jsonb_build_object renders it (ISO
 * 8601 in the session's time zone), or null for DT_NOEND.
 */
extern void jb_timestamptz(JsonBuilder *b, bool elem, TimestampTz t);

#endif							/* LOYALTY_EVENTS_H */
