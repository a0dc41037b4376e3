/*-------------------------------------------------------------------------
 *
 * events.c
 *	  The event outbox (SPEC section 11) from C: the statement-level
 *	  trigger loyalty.event_notify() on loyalty.event, and the batch in
 *	  which a purchase gathers its events to write them in one statement.
 *
 * Consumers LISTEN on loyalty_event and then call loyalty.take_events; the
 * notification carries no payload, so a transaction that writes many events
 * queues one notification (NOTIFY folds identical ones).  The setting
 * loyalty.notify = off skips it for consumers that poll.  In C because it
 * fires on every statement that writes events.
 *
 * A purchase's events (coupons issued, points earned) are the same rows
 * the SQL functions write, with the same payloads; gathering them costs
 * the purchase one insert into the outbox instead of one per writer.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "events.h"
#include "spi_util.h"

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

/* event_batch_add: see events.h. */
void
event_batch_add(EventBatch *batch, const char *kind, Jsonb *payload)
{
	if (batch->n == batch->size)
	{
		batch->size = Max(4, batch->size * 2);
		if (batch->kinds == NULL)
		{
			batch->kinds = palloc(sizeof(Datum) * batch->size);
			batch->payloads = palloc(sizeof(Datum) * batch->size);
		}
		else
		{
			batch->kinds = repalloc(batch->kinds, sizeof(Datum) * batch->size);
			batch->payloads = repalloc(batch->payloads, sizeof(Datum) * batch->size);
		}
	}
	batch->kinds[batch->n] = CStringGetTextDatum(kind);
	batch->payloads[batch->n] = JsonbPGetDatum(payload);
	batch->n++;
}

/* event_batch_write: see events.h. */
void
event_batch_write(EventBatch *batch, int64 customer_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, TEXTARRAYOID, JSONBARRAYOID};
	Datum		values[3];

	if (batch->n == 0)
		return;
	values[0] = Int64GetDatum(customer_id);
	values[1] = PointerGetDatum(construct_array(batch->kinds, batch->n, TEXTOID,
												-1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(batch->payloads, batch->n, JSONBOID,
												-1, false, TYPALIGN_INT));
	(void) spi_exec(saved_plan(&plan,
							   "INSERT INTO loyalty.event (customer_id, kind, payload)"
							   " SELECT $1, x.kind, x.payload"
							   "   FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3))"
							   "        WITH ORDINALITY AS x(kind, payload, n)"
							   "  ORDER BY x.n", 3, types),
					values, NULL, false, 0);
	batch->n = 0;
}

/* jb_timestamptz: see events.h. */
void
jb_timestamptz(JsonBuilder *b, bool elem, TimestampTz t)
{
	if (TIMESTAMP_NOT_FINITE(t))
		jb_null(b, elem);
	else
		jb_string(b, elem, JsonEncodeDateTime(NULL, TimestampTzGetDatum(t),
											  TIMESTAMPTZOID, NULL));
}
