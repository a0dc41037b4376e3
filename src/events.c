/*-------------------------------------------------------------------------
 *
 * events.c
 *	  The event outbox's notification (SPEC section 11): the statement-level
 *	  trigger loyalty.event_notify() on loyalty.event.
 *
 * Consumers LISTEN on loyalty_event and then call loyalty.take_events; the
 * notification carries no payload, so a transaction that writes many events
 * queues one notification (NOTIFY folds identical ones).  The setting
 * loyalty.notify = off skips it for consumers that poll.  In C because it
 * fires on every statement that writes events, a few times per purchase.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "commands/async.h"
#include "commands/trigger.h"
#include "fmgr.h"

PG_FUNCTION_INFO_V1(event_notify);

/*
 * event_notify is the AFTER INSERT ... FOR EACH STATEMENT trigger of
 * loyalty.event: NOTIFY loyalty_event, unless loyalty.notify is off.
 */
Datum
event_notify(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "event_notify: not called by trigger manager");
	if (loyalty_notify)
		Async_Notify("loyalty_event", "");
	return PointerGetDatum(NULL);
}
