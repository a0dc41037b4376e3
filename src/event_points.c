/*-------------------------------------------------------------------------
 *
 * event_points.c
 *	  Event points (issue 18, see event_points.h): the points a customer
 *	  gets for an event of their own, configured in loyalty.points_event.
 *
 * "welcome": loyalty.register grants them to a customer it creates
 * (operation "~welcome:<id>"); registering again creates no one and grants
 * nothing.  "first_purchase": a purchase of an identified, unblocked
 * customer with no other purchase grants them (operation
 * "~first_purchase:<purchase operation_id>"); that purchase's full refund
 * takes them back (ledger_reverse_accrual: debt when already spent), and a
 * later purchase is not a first one.  "birthday": maintenance
 * (loyalty.grant_birthday_points) grants them on the birthday in the
 * program's time zone (operation "~birthday:<id>:<year>": once a year).
 * Every grant is a lot available at once, expiring after the event's
 * lifetime (else the account type's; else never), with an "adjust" entry
 * that pays the account's debt first and an event of the grant's own kind
 * (welcome_points, first_purchase_points, birthday_points), whose message
 * templates ship with the extension.  The operation id makes each grant
 * idempotent: it is recorded (loyalty.operation, kind "event_points"), and a
 * recorded one is not repeated.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "clock.h"
#include "event_points.h"
#include "ledger.h"
#include "money.h"
#include "operations.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(loyalty_grant_event_points);

static SPIPlanPtr event_config_plan = NULL;
static SPIPlanPtr done_plan = NULL;
static SPIPlanPtr first_plan = NULL;
static SPIPlanPtr taken_plan = NULL;

/* event_points_grant: see event_points.h */
int64
event_points_grant(int64 customer_id, const char *event,
				   const char *operation_id, TimestampTz at)
{
	Datum		values[3] = {CStringGetTextDatum(event), TimestampTzGetDatum(at),
	CStringGetTextDatum(operation_id)};
	int64		points;
	char	   *account;
	TimestampTz expires;
	char	   *event_kind;
	char	   *request;
	char	   *response;

	if (spi_exec(saved_plan(&event_config_plan,
							"SELECT e.points, e.account, $2 + coalesce(e.lifetime, a.lifetime)"
							"  FROM loyalty.points_event e"
							"  JOIN loyalty.account_type a ON a.code = e.account"
							" WHERE e.event = $1 AND e.enabled",
							2, (Oid[]) {TEXTOID, TIMESTAMPTZOID}),
				 values, NULL, true, 1) == 0)
		return 0;
	points = spi_scaled(0, 1, 2, 0);
	account = spi_text(0, 2, CurrentMemoryContext);
	expires = spi_isnull(0, 3) ? DT_NOEND : spi_timestamptz(0, 3, 0);
	if (spi_exec(saved_plan(&done_plan,
							"SELECT 1 FROM loyalty.operation WHERE operation_id = $1",
							1, (Oid[]) {TEXTOID}),
				 &values[2], NULL, true, 1) > 0)
		return 0;
	event_kind = psprintf("%s_points", event);
	ledger_accrue_event(customer_id, account, points, operation_id, at, at,
						expires, "adjust", event_kind);
	/* recorded as an internal operation: the ledger's entries name it */
	request = psprintf("{\"event\": \"%s\", \"customer\": " INT64_FORMAT "}",
					   event, customer_id);
	response = psprintf("{\"event\": \"%s\", \"account\": \"%s\", \"points\": %s}",
						event, account, scaled_to_cstring(points, 2));
	operation_record(operation_id, "event_points",
					 DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(request))),
					 customer_id,
					 DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(response))));
	return points;
}

/* event_points_first_purchase: see event_points.h */
void
event_points_first_purchase(CheckResult *r, const char *operation_id)
{
	Datum		values[2];

	if (!r->cfg->first_purchase_points || !r->cust->identified || r->cust->blocked)
		return;
	values[0] = Int64GetDatum(r->cust->id);
	values[1] = CStringGetTextDatum(operation_id);
	if (spi_exec(saved_plan(&first_plan,
							"SELECT 1 FROM loyalty.purchase p"
							" WHERE p.customer_id = $1 AND p.operation_id <> $2 LIMIT 1",
							2, (Oid[]) {INT8OID, TEXTOID}),
				 values, NULL, true, 1) > 0)
		return;
	(void) event_points_grant(r->cust->id, "first_purchase",
							  psprintf("~first_purchase:%s", operation_id), r->at);
}

/* event_points_refund: see event_points.h */
void
event_points_refund(int64 customer_id, const char *purchase_operation_id,
					const char *refund_operation_id, TimestampTz at)
{
	char	   *bonus = psprintf("~first_purchase:%s", purchase_operation_id);
	Datum		values[1] = {CStringGetTextDatum(bonus)};
	uint64		n;
	uint64		i;
	char	  **accounts;
	int64	   *points;

	if (customer_id <= 0)
		return;
	n = spi_exec(saved_plan(&taken_plan,
							"SELECT account, (sum(points) * 100)::int8 FROM loyalty.ledger_entry"
							" WHERE operation_id = $1 AND kind = 'adjust'"
							" GROUP BY account ORDER BY account",
							1, (Oid[]) {TEXTOID}),
				 values, NULL, true, 0);
	accounts = palloc(sizeof(char *) * Max(n, 1));
	points = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		accounts[i] = spi_text(i, 1, CurrentMemoryContext);
		points[i] = spi_int8(i, 2, 0);
	}
	for (i = 0; i < n; i++)
		ledger_reverse_accrual(customer_id, accounts[i], points[i], bonus,
							   refund_operation_id, at);
}

/*
 * loyalty_grant_event_points implements the internal
 * loyalty.grant_event_points(customer_id, event, operation_id, at): locks
 * the customer (a merge's survivor) and grants; returns the points granted
 * (0: none).  at NULL is the server's time.
 */
Datum
loyalty_grant_event_points(PG_FUNCTION_ARGS)
{
	int64		customer_id;
	char	   *event;
	char	   *operation_id;
	TimestampTz at;
	int64		points;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	customer_id = PG_GETARG_INT64(0);
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	operation_id = text_to_cstring(PG_GETARG_TEXT_PP(2));
	at = PG_ARGISNULL(3) ? clock_server_now(false, 0) : PG_GETARG_TIMESTAMPTZ(3);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	customer_id = ledger_lock_survivor(customer_id);
	points = event_points_grant(customer_id, event, operation_id, at);
	SPI_finish();
	PG_RETURN_NUMERIC(scaled_to_numeric(points, 2));
}
