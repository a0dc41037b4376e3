/*-------------------------------------------------------------------------
 *
 * orders.c
 *	  Online orders (SPEC section 15): loyalty.order_hold, order_capture,
 *	  order_cancel and the expiry of held orders (loyalty.expire_orders,
 *	  called by run_maintenance).
 *
 * A hold prices the check exactly as a purchase does (purchase_price in
 * check_api.c: the loader, the pure engine, the usage counters of limited
 * promotions claimed) and holds what the check would take:
 *
 *	- points: taken from their lots as ledger entries of kind "hold" under
 *	  the hold's operation_id (ledger_spend_kind, FEFO like a purchase), so
 *	  no other check can spend them and the lots keep their expiry;
 *	- coupons and certificate amounts: used up under the hold's operation
 *	  (coupons_use), exactly as a purchase uses them;
 *	- usage counts of limited promotions: counted (check_claim_uses).
 *
 * No accrual, no tier spend, no issued coupons, no facts.  The promotions
 * counted are kept in the order's row (usage_counted,
 * customer_usage_counted).
 *
 * A release (cancel, expiry, a re-hold, and a capture before it commits)
 * gives everything back where it came from: points to their lots
 * (ledger_release_held, "release" entries), coupons and certificate
 * amounts (coupons_refund of the hold), usage counts (check_release_uses).
 * A cancel logs it under its own operation_id, an expiry under
 * "~order-expire:<order_id>", a capture or a re-hold under
 * "~order-release:<its operation_id>": never under the operation_id of a
 * hold, whose coupon uses a later release gives back.
 *
 * A capture of the whole order releases the hold and commits, in the same
 * transaction and under the same locks, the held request as a purchase
 * (purchase_commit, the purchase's own commit path) whose operation_id is
 * the capture's, dated at the hold's "at", redeeming exactly the points
 * held, sending only the coupons the hold applied (a coupon it rejected,
 * say one another order held then, stays out even if it could be applied
 * now) and leaving out the limited promotions whose use the hold did not
 * count (held_out): the capture prices what was held.  Nothing can take
 * the released benefits in between: the customer's row, the coupon rows
 * and the usage counters stay locked by this transaction.  When the
 * purchase does not come out at the held totals (the configuration or the
 * customer's tier changed since the hold) the capture fails with LY007
 * and changes nothing; the order stays held.
 * The capture is judged as of the hold (the server's time then: lots
 * available, coupons valid), so points held on a lot that expired since
 * are spent from it, as held, rather than lost.
 * A captured order is a purchase: refund it with loyalty.refund naming the
 * capture's operation_id.
 *
 * Locks: the customer's row first (like purchase), then the order's row
 * (FOR UPDATE), then whatever the purchase path locks.  The expiry takes
 * held orders and their customers with SKIP LOCKED: it never waits for a
 * check.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/md5.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "budget.h"
#include "check_api.h"
#include "clock.h"
#include "check_db.h"
#include "config_cache.h"
#include "coupons.h"
#include "ledger.h"
#include "money.h"
#include "operation_id.h"
#include "operations.h"
#include "request.h"
#include "response.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(loyalty_order_hold);
PG_FUNCTION_INFO_V1(loyalty_order_capture);
PG_FUNCTION_INFO_V1(loyalty_order_cancel);
PG_FUNCTION_INFO_V1(loyalty_expire_orders);

/* saved plans, prepared on first use */
static SPIPlanPtr hold_fields_plan = NULL;
static SPIPlanPtr call_fields_plan = NULL;
static SPIPlanPtr order_customer_plan = NULL;
static SPIPlanPtr order_lock_plan = NULL;
static SPIPlanPtr hold_time_plan = NULL;
static SPIPlanPtr order_write_plan = NULL;
static SPIPlanPtr order_close_plan = NULL;
static SPIPlanPtr capture_request_plan = NULL;
static SPIPlanPtr totals_plan = NULL;
static SPIPlanPtr capture_fields_plan = NULL;
static SPIPlanPtr same_request_plan = NULL;
static SPIPlanPtr partial_refund_plan = NULL;
static SPIPlanPtr partial_response_plan = NULL;
static SPIPlanPtr held_lines_plan = NULL;
static SPIPlanPtr rest_plan = NULL;
static SPIPlanPtr stored_plan = NULL;
static SPIPlanPtr due_plan = NULL;
static SPIPlanPtr expire_operation_plan = NULL;
static SPIPlanPtr expire_lock_customers_plan = NULL;
static SPIPlanPtr expire_lock_orders_plan = NULL;
static SPIPlanPtr expire_operations_plan = NULL;
static SPIPlanPtr expire_release_plan = NULL;
static SPIPlanPtr expire_coupons_plan = NULL;
static SPIPlanPtr expire_global_plan = NULL;
static SPIPlanPtr expire_customer_plan = NULL;
static SPIPlanPtr expire_close_plan = NULL;

/* one order's row, as locked */
typedef struct OrderRow
{
	bool		found;
	char	   *order_id;
	int64		customer_id;	/* 0: anonymous */
	char	   *state;
	char	   *hold_operation_id;
	char	   *final_operation_id;	/* NULL while held */
	TimestampTz held_at;		/* the server's time of the hold */
	char	  **counted;
	int			ncounted;
	char	  **customer_counted;
	int			ncustomer_counted;
	Jsonb	   *request;		/* the check request as held */
	Jsonb	   *response;		/* the hold's response */
	Jsonb	   *capture_request;	/* the capture call, once captured */
} OrderRow;

/* copy_out copies a jsonb into the given (outer) context. */
static Jsonb *
copy_out(Jsonb *jb, MemoryContext cxt)
{
	Jsonb	   *copy = MemoryContextAlloc(cxt, VARSIZE(jb));

	memcpy(copy, jb, VARSIZE(jb));
	return copy;
}

/* spi_jsonb reads a jsonb column of the last result (NULL when null). */
static Jsonb *
spi_jsonb(uint64 row, int col)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	if (isnull)
		return NULL;
	return DatumGetJsonbPCopy(d);
}

/*
 * order_id_check raises 22023 naming "order_id" unless the field was a
 * non-empty string of at most 200 characters.
 */
static void
order_id_check(const char *type, const char *value)
{
	if (type == NULL)
		request_error("order_id", "is required.");
	if (strcmp(type, "string") != 0)
		request_error("order_id", "must be a string.");
	if (value[0] == '\0' || pg_mbstrlen(value) > 200)
		request_error("order_id", "must have 1 to 200 characters.");
}

/*
 * order_not_found raises LY002: the order the call names was never held.
 */
static void
order_not_found(const char *order_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_LOYALTY_OPERATION_NOT_FOUND),
			 errmsg("order \"%s\" not found", order_id),
			 errdetail("No order with this id was held."),
			 errhint("Hold the order with loyalty.order_hold first.")));
}

/*
 * wrong_state raises LY008: the order's state does not allow the call.
 */
static void
wrong_state(const OrderRow *o, const char *call)
{
	ereport(ERROR,
			(errcode(ERRCODE_LOYALTY_ORDER_STATE),
			 errmsg("order \"%s\" is %s", o->order_id, o->state),
			 errdetail("%s needs a held order; this one is %s.", call, o->state),
			 errhint("A held order is captured or cancelled once; hold a new order instead.")));
}

/*
 * order_customer returns the customer of an order without locking it (0
 * for an anonymous order); LY002 when there is no such order.
 */
static int64
order_customer(const char *order_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(order_id)};

	if (spi_exec(saved_plan(&order_customer_plan,
							"SELECT customer_id FROM loyalty.\"order\" WHERE order_id = $1",
							1, types),
				 values, NULL, true, 0) == 0)
		order_not_found(order_id);
	return spi_int8(0, 1, 0);
}

/*
 * order_lock locks the order's row (FOR UPDATE) and reads it; o->found is
 * false when there is none.  skip: SKIP LOCKED (the expiry).
 */
static void
order_lock(const char *order_id, OrderRow *o)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(order_id)};

	memset(o, 0, sizeof(*o));
	o->order_id = pstrdup(order_id);
	if (spi_exec(saved_plan(&order_lock_plan,
							"SELECT customer_id, state, hold_operation_id, final_operation_id,"
							" usage_counted, customer_usage_counted, request, response,"
							" capture_request, held_at"
							" FROM loyalty.\"order\" WHERE order_id = $1 FOR UPDATE",
							1, types),
				 values, NULL, false, 0) == 0)
		return;
	o->found = true;
	o->customer_id = spi_int8(0, 1, 0);
	o->state = spi_text(0, 2, CurrentMemoryContext);
	o->hold_operation_id = spi_text(0, 3, CurrentMemoryContext);
	o->final_operation_id = spi_isnull(0, 4) ? NULL : spi_text(0, 4, CurrentMemoryContext);
	o->counted = spi_text_array(0, 5, CurrentMemoryContext, &o->ncounted);
	o->customer_counted = spi_text_array(0, 6, CurrentMemoryContext,
										 &o->ncustomer_counted);
	o->request = spi_jsonb(0, 7);
	o->response = spi_jsonb(0, 8);
	o->capture_request = spi_jsonb(0, 9);
	o->held_at = spi_timestamptz(0, 10, 0);
}

/*
 * order_release gives back everything the order's hold holds: points to
 * their lots, coupons and certificate amounts (those still valid at
 * coupons_now), usage counts.  operation_id (already in loyalty.operation)
 * is the releasing call's.  Returns the points released (hundredths).
 */
static int64
order_release(ConfigCache *cfg, const OrderRow *o, const char *operation_id,
			  TimestampTz server_now, TimestampTz coupons_now)
{
	int64		points = 0;

	if (o->customer_id > 0)
		points = ledger_release_held(o->customer_id, o->hold_operation_id,
									 operation_id, server_now);
	coupons_refund(o->hold_operation_id, operation_id, true, coupons_now);
	check_release_uses(cfg, o->customer_id, o->counted, o->ncounted,
					   o->customer_counted, o->ncustomer_counted);
	/* campaign budgets the hold claimed (a capture's purchase claims anew) */
	budget_release(cfg, o->hold_operation_id);
	return points;
}

/*
 * order_close marks a held order captured, cancelled or expired by
 * operation_id; a capture records its call and the purchase's response.
 */
static void
order_close(const char *order_id, const char *state, const char *operation_id,
			TimestampTz server_now, Jsonb *capture_request, Jsonb *response)
{
	Oid			types[6] = {TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, JSONBOID, JSONBOID};
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(order_id);
	values[1] = CStringGetTextDatum(state);
	values[2] = CStringGetTextDatum(operation_id);
	values[3] = TimestampTzGetDatum(server_now);
	values[4] = capture_request ? JsonbPGetDatum(capture_request) : (Datum) 0;
	values[5] = response ? JsonbPGetDatum(response) : (Datum) 0;
	if (capture_request == NULL)
		nulls[4] = 'n';
	if (response == NULL)
		nulls[5] = 'n';
	spi_exec(saved_plan(&order_close_plan,
						"UPDATE loyalty.\"order\" SET state = $2, final_operation_id = $3,"
						" closed_at = $4,"
						" captured_at = CASE WHEN $2 = 'captured' THEN $4 END,"
						" capture_request = $5, response = coalesce($6, response)"
						" WHERE order_id = $1",
						6, types),
			 values, nulls, false, 0);
}

/*
 * internal_operation records an internal operation ("~..."): the expiry
 * of an order (kind expire) or the release of a hold that a capture
 * commits or a re-hold replaces (kind order_release); the coupon uses and
 * ledger entries of the release reference it.
 */
static void
internal_operation(const char *operation_id, const char *kind,
				   int64 customer_id, const char *order_id)
{
	Oid			types[4] = {TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[4] = {CStringGetTextDatum(operation_id), CStringGetTextDatum(kind),
	Int64GetDatum(customer_id), CStringGetTextDatum(order_id)};
	char		nulls[4] = {' ', ' ', customer_id > 0 ? ' ' : 'n', ' '};

	spi_exec(saved_plan(&expire_operation_plan,
						"INSERT INTO loyalty.operation (operation_id, kind, customer_id,"
						" request, response)"
						" VALUES ($1, $2, $3, jsonb_build_object('order_id', $4::text),"
						"         jsonb_build_object('order_id', $4::text))",
						4, types),
			 values, nulls, false, 0);
}

/*
 * release_operation_id names the internal operation under which a call
 * (a re-hold, or a capture) releases the hold it replaces:
 * "~order-release:<operation_id>".  The release must not be logged under
 * the call's own operation_id: a re-hold's own id is the new hold's, and
 * releasing that hold later gives back every coupon use logged under it,
 * the old hold's give-backs included.  An operation_id too long for the
 * prefix (operation ids have at most 200 characters) is named by its MD5:
 * "~order-release:#<md5>".
 */
static char *
release_operation_id(const char *operation_id)
{
	char		hex[33];
	const char *errstr = NULL;

	if (strlen("~order-release:") + pg_mbstrlen(operation_id) <= OPERATION_ID_MAX)
		return psprintf("~order-release:%s", operation_id);
	if (!pg_md5_hash(operation_id, strlen(operation_id), hex, &errstr))
		elog(ERROR, "could not compute an MD5 hash: %s", errstr);
	return psprintf("~order-release:#%s", hex);
}

/*
 * see_released makes what this call just released visible to the loader's
 * read-only queries (the usage counters), which read with the active
 * snapshot: a copy of it that sees this command's writes is pushed; the
 * caller pops it (PopActiveSnapshot) once the check is priced.
 */
static void
see_released(void)
{
	CommandCounterIncrement();
	PushCopiedSnapshot(GetActiveSnapshot());
	UpdateActiveSnapshotCommandId();
}

/*
 * usage_arrays lists the limited promotions a priced check counted a use
 * of, as check_claim_uses counted them: on the promotion's own counter
 * (usage_limit) and on the customer's (per_customer_limit, identified
 * customers).
 */
static void
usage_arrays(CheckResult *r, Datum *global, Datum *customer)
{
	ConfigCache *cfg = r->cfg;
	Datum	   *g = palloc(sizeof(Datum) * Max(cfg->npromotions, 1));
	Datum	   *c = palloc(sizeof(Datum) * Max(cfg->npromotions, 1));
	int			ng = 0;
	int			nc = 0;
	ListCell   *lc;

	foreach(lc, r->applied)
	{
		AppliedPromotion *ap = lfirst(lc);

		if (ap->promo->usage_limit > 0)
			g[ng++] = CStringGetTextDatum(ap->promo->code);
		if (ap->promo->per_customer_limit > 0 && r->cust->identified)
			c[nc++] = CStringGetTextDatum(ap->promo->code);
	}
	*global = PointerGetDatum(construct_array(g, ng, TEXTOID, -1, false, TYPALIGN_INT));
	*customer = PointerGetDatum(construct_array(c, nc, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * loyalty_order_hold implements loyalty.order_hold(request jsonb): a check
 * request (SPEC section 7) with "order_id", optional "hold_until" and
 * optional "expect_total"; prices it like calculate and holds its
 * benefits (see the file header).  Again on a held order: releases and
 * holds again in one step.  Idempotent by operation_id.
 */
Datum
loyalty_order_hold(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	ConfigCache *cfg;
	CheckRequest *req;
	CustomerInfo *cust;
	CheckResult *r;
	Jsonb	   *check;
	Jsonb	   *stored;
	Jsonb	   *response;
	OrderRow	o;
	char	   *order_id;
	char	   *type;
	bool		has_hold_until = false;
	TimestampTz hold_until = 0;
	bool		has_expect = false;
	int64		expect_total = 0;
	Oid			ftypes[1] = {JSONBOID};
	Datum		fvalues[1];
	int64		customer_id;
	int			a;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();

	/* the order's own fields, then the check request without them */
	if (JB_ROOT_IS_SCALAR(request) || !JB_ROOT_IS_OBJECT(request))
		request_error("", "must be a JSON object.");
	fvalues[0] = JsonbPGetDatum(request);
	spi_exec(saved_plan(&hold_fields_plan,
						"SELECT jsonb_typeof($1->'order_id'), $1->>'order_id',"
						" jsonb_typeof($1->'hold_until'), $1->>'hold_until',"
						" jsonb_typeof($1->'expect_total'), ($1->>'expect_total'),"
						" $1 - 'order_id' - 'hold_until' - 'expect_total'",
						1, ftypes),
			 fvalues, NULL, true, 0);
	type = spi_isnull(0, 1) ? NULL : spi_text(0, 1, CurrentMemoryContext);
	order_id = spi_isnull(0, 2) ? NULL : spi_text(0, 2, CurrentMemoryContext);
	order_id_check(type, order_id);
	if (!spi_isnull(0, 3) && strcmp(spi_text(0, 3, CurrentMemoryContext), "null") != 0)
	{
		if (strcmp(spi_text(0, 3, CurrentMemoryContext), "string") != 0)
			request_error("hold_until", "must be a string (ISO 8601 with a time zone).");
		hold_until = request_parse_at("hold_until", spi_text(0, 4, CurrentMemoryContext));
		has_hold_until = true;
	}
	if (!spi_isnull(0, 5) && strcmp(spi_text(0, 5, CurrentMemoryContext), "null") != 0)
	{
		char	   *s;

		if (strcmp(spi_text(0, 5, CurrentMemoryContext), "number") != 0)
			request_error("expect_total", "must be a number.");
		s = spi_text(0, 6, CurrentMemoryContext);
		if (!numeric_to_scaled(DatumGetNumeric(DirectFunctionCall3(numeric_in,
																   CStringGetDatum(s),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1))),
							   MONEY_SCALE, &expect_total) || expect_total < 0)
			request_error("expect_total", "must be a non-negative amount with at most 2 decimals.");
		has_expect = true;
	}
	check = spi_jsonb(0, 7);

	req = request_parse_check(check, true, cfg->points_precision);
	req->for_purchase = true;

	/* the customer first (like purchase), then the operation and the order */
	cust = check_customer_locked(cfg, req);
	customer_id = cust->identified ? cust->id : 0;
	stored = operation_begin(req->operation_id, "order_hold", request);
	if (stored != NULL)
	{
		response = copy_out(stored, outer);
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}
	order_lock(order_id, &o);
	if (o.found)
	{
		if (strcmp(o.state, "held") != 0)
			wrong_state(&o, "order_hold");
		if (o.customer_id != customer_id)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_ORDER_STATE),
					 errmsg("order \"%s\" is held for another customer", order_id),
					 errdetail("A held order is held again only for its own customer."),
					 errhint("Cancel the order and hold a new one.")));
		/*
		 * a re-hold: everything back, then held anew.  The release is
		 * logged under an internal operation of its own, not under the new
		 * hold's operation_id: the coupons it gives back would otherwise
		 * be given back again when the new hold is released.
		 */
		{
			char	   *release_id = release_operation_id(req->operation_id);

			internal_operation(release_id, "order_release", customer_id, order_id);
			(void) order_release(cfg, &o, release_id,
								 clock_server_now(req->has_at, req->at),
								 clock_server_now(req->has_at, req->at));
		}
		see_released();
	}

	r = purchase_price(cfg, req, cust);
	if (o.found)
		PopActiveSnapshot();
	if (has_expect && r->total != expect_total)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_PRICE_CHANGED),
				 errmsg("the order's total changed"),
				 errdetail("The customer saw %s, the order costs %s now; nothing was held.",
						   scaled_to_cstring(expect_total, MONEY_SCALE),
						   scaled_to_cstring(r->total, MONEY_SCALE)),
				 errhint("Show the customer the new price and send the hold again.")));

	if (!has_hold_until)
	{
		Oid			ttypes[1] = {TIMESTAMPTZOID};
		Datum		tvalues[1] = {TimestampTzGetDatum(r->server_now)};

		spi_exec(saved_plan(&hold_time_plan,
							"SELECT $1 + (SELECT value FROM loyalty.settings"
							"             WHERE key = 'order_hold_time')::interval",
							1, ttypes),
				 tvalues, NULL, true, 0);
		hold_until = spi_timestamptz(0, 1, 0);
	}
	else if (hold_until <= r->server_now)
		request_error("hold_until", "must lie after the server's time.");

	/* hold: coupons and certificate amounts used, points taken onto hold */
	coupons_use(r, req->operation_id);
	if (cust->identified)
		for (a = 0; r->redeem != NULL && a < cfg->naccounts; a++)
			if (r->redeem[a].points > 0)
				ledger_spend_kind(cust->id, cfg->accounts[a].code, r->redeem[a].points,
								  req->operation_id, r->at, r->server_now, "hold");

	/* the held check's response, with the order's fields */
	{
		Oid			types[12] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
			TIMESTAMPTZOID, JSONBOID, JSONBOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID,
		TIMESTAMPTZOID};
		Datum		values[12];
		char		nulls[12] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};

		response = response_build(r, req->operation_id);
		values[0] = CStringGetTextDatum(order_id);
		values[1] = Int64GetDatum(customer_id);
		if (customer_id == 0)
			nulls[1] = 'n';
		values[2] = r->store ? CStringGetTextDatum(r->store->code) : (Datum) 0;
		if (r->store == NULL)
			nulls[2] = 'n';
		values[3] = CStringGetTextDatum(r->channel);
		values[4] = TimestampTzGetDatum(r->server_now);
		values[5] = TimestampTzGetDatum(hold_until);
		values[6] = JsonbPGetDatum(check);
		values[7] = JsonbPGetDatum(response);
		values[8] = CStringGetTextDatum(req->operation_id);
		usage_arrays(r, &values[9], &values[10]);
		values[11] = TimestampTzGetDatum(r->at);
		spi_exec(saved_plan(&order_write_plan,
							"INSERT INTO loyalty.\"order\" AS o (order_id, customer_id, store,"
							" channel, state, held_at, hold_until, request, response,"
							" hold_operation_id, usage_counted, customer_usage_counted)"
							" VALUES ($1, $2, $3, $4, 'held', $5, $6,"
							"         $7 - 'operation_id' || jsonb_build_object('at', $12),"
							"         $8 || jsonb_build_object('order_id', $1, 'state', 'held',"
							"                                  'hold_until', $6),"
							"         $9, $10, $11)"
							" ON CONFLICT (order_id) DO UPDATE SET store = EXCLUDED.store,"
							" channel = EXCLUDED.channel, held_at = EXCLUDED.held_at,"
							" hold_until = EXCLUDED.hold_until, request = EXCLUDED.request,"
							" response = EXCLUDED.response,"
							" hold_operation_id = EXCLUDED.hold_operation_id,"
							" usage_counted = EXCLUDED.usage_counted,"
							" customer_usage_counted = EXCLUDED.customer_usage_counted"
							" RETURNING o.response",
							12, types),
				 values, nulls, false, 0);
		response = spi_jsonb(0, 1);
	}
	operation_finish(req->operation_id, customer_id, response);

	response = copy_out(response, outer);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}

/*
 * call_fields reads the fields of a capture or cancel call: operation_id
 * (the one operation id rule), order_id, and whether the object has keys
 * other than allowed (22023 naming the first).
 */
static void
call_fields(Jsonb *request, const char *allowed_csv, char **operation_id,
			char **order_id)
{
	Oid			types[2] = {JSONBOID, TEXTOID};
	Datum		values[2];
	char	   *type;

	if (JB_ROOT_IS_SCALAR(request) || !JB_ROOT_IS_OBJECT(request))
		request_error("", "must be a JSON object.");
	values[0] = JsonbPGetDatum(request);
	values[1] = CStringGetTextDatum(allowed_csv);
	spi_exec(saved_plan(&call_fields_plan,
						"SELECT jsonb_typeof($1->'operation_id'), $1->>'operation_id',"
						" jsonb_typeof($1->'order_id'), $1->>'order_id',"
						" (SELECT min(k) FROM jsonb_object_keys($1) k"
						"   WHERE k <> ALL (string_to_array($2, ',')))",
						2, types),
			 values, NULL, true, 0);
	if (!spi_isnull(0, 5))
		request_error(spi_text(0, 5, CurrentMemoryContext), "is not a field of this call.");
	type = spi_isnull(0, 1) ? NULL : spi_text(0, 1, CurrentMemoryContext);
	if (type == NULL)
		request_error("operation_id", "is required.");
	if (strcmp(type, "string") != 0)
		request_error("operation_id", "must be a string.");
	*operation_id = spi_text(0, 2, CurrentMemoryContext);
	{
		const char *problem = operation_id_problem(*operation_id, strlen(*operation_id), false);

		if (problem != NULL)
			request_error("operation_id", "%s.", problem);
	}
	type = spi_isnull(0, 3) ? NULL : spi_text(0, 3, CurrentMemoryContext);
	*order_id = spi_isnull(0, 4) ? NULL : spi_text(0, 4, CurrentMemoryContext);
	order_id_check(type, *order_id);
}

/*
 * loyalty_order_cancel implements loyalty.order_cancel(request jsonb):
 * {"operation_id", "order_id"}; releases everything a held order holds.
 * The order becomes cancelled.  Idempotent by operation_id.
 */
Datum
loyalty_order_cancel(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	ConfigCache *cfg;
	char	   *operation_id;
	char	   *order_id;
	int64		customer_id;
	Jsonb	   *stored;
	Jsonb	   *response;
	OrderRow	o;
	int64		points;
	TimestampTz server_now;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	call_fields(request, "operation_id,order_id", &operation_id, &order_id);
	server_now = clock_server_now(false, 0);

	customer_id = order_customer(order_id);
	if (customer_id > 0)
		ledger_lock_customer(customer_id);
	stored = operation_begin(operation_id, "order_cancel", request);
	if (stored != NULL)
	{
		response = copy_out(stored, outer);
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}
	order_lock(order_id, &o);
	if (strcmp(o.state, "held") != 0)
		wrong_state(&o, "order_cancel");
	points = order_release(cfg, &o, operation_id, server_now, server_now);
	order_close(order_id, "cancelled", operation_id, server_now, NULL, NULL);

	{
		Oid			types[2] = {TEXTOID, INT8OID};
		Datum		values[2] = {CStringGetTextDatum(order_id), Int64GetDatum(points)};

		spi_exec(saved_plan(&stored_plan,
							"SELECT jsonb_build_object('order_id', $1::text, 'state', 'cancelled',"
							" 'released_points', trim_scale($2::numeric / 100))",
							2, types),
				 values, NULL, true, 0);
		response = spi_jsonb(0, 1);
	}
	operation_finish(operation_id, customer_id, response);
	response = copy_out(response, outer);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}

/*
 * uncaptured_lines checks the lines a partial capture names against the
 * held order (22023 naming the field: an index the order does not have, a
 * quantity above the line's) and returns the refund request for the rest,
 * {"operation_id": "<capture>/uncaptured", "purchase": "<capture>",
 * "lines": [{index, qty}]}, or NULL when every held unit is captured.
 */
static Jsonb *
uncaptured_lines(const OrderRow *o, const RefundRequest *captured,
				 const char *operation_id)
{
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(o->response)};
	Oid			rtypes[4] = {TEXTOID, TEXTOID, INT4ARRAYOID, INT8ARRAYOID};
	Datum		rvalues[4];
	uint64		nheld;
	int64	   *rest;
	Datum	   *idx;
	Datum	   *qty;
	int			n = 0;
	char	   *refund_id;

	nheld = spi_exec(saved_plan(&held_lines_plan,
								"SELECT (l->>'qty')::numeric FROM jsonb_array_elements($1->'lines') l"
								" ORDER BY (l->>'index')::int",
								1, types),
					 values, NULL, true, 0);
	rest = palloc(sizeof(int64) * Max(nheld, 1));
	for (uint64 i = 0; i < nheld; i++)
		rest[i] = spi_scaled(i, 1, 3, 0);
	for (int k = 0; k < captured->nlines; k++)
	{
		int			i = captured->lines[k].index;

		CHECK_FOR_INTERRUPTS();
		if (i < 0 || i >= (int) nheld)
			request_error(psprintf("lines[%d].index", k), "names no line of the order (it has %d).",
						  (int) nheld);
		if (captured->lines[k].qty > rest[i])
			request_error(psprintf("lines[%d].qty", k), "exceeds the quantity held on line %d (%s).",
						  i, scaled_to_cstring(rest[i], 3));
		rest[i] -= captured->lines[k].qty;
	}
	idx = palloc(sizeof(Datum) * Max(nheld, 1));
	qty = palloc(sizeof(Datum) * Max(nheld, 1));
	for (uint64 i = 0; i < nheld; i++)
		if (rest[i] > 0)
		{
			idx[n] = Int32GetDatum((int32) i);
			qty[n++] = Int64GetDatum(rest[i]);
		}
	if (n == 0)
		return NULL;
	refund_id = psprintf("%s/uncaptured", operation_id);
	if (pg_mbstrlen(refund_id) > OPERATION_ID_MAX)
		request_error("operation_id", "must have at most %d characters for a partial capture.",
					  OPERATION_ID_MAX - 11);
	rvalues[0] = CStringGetTextDatum(refund_id);
	rvalues[1] = CStringGetTextDatum(operation_id);
	rvalues[2] = PointerGetDatum(construct_array(idx, n, INT4OID, 4, true, TYPALIGN_INT));
	rvalues[3] = PointerGetDatum(construct_array(qty, n, INT8OID, 8, FLOAT8PASSBYVAL,
												 TYPALIGN_DOUBLE));
	spi_exec(saved_plan(&rest_plan,
						"SELECT jsonb_build_object('operation_id', $1::text, 'purchase', $2::text,"
						" 'lines', (SELECT jsonb_agg(jsonb_build_object('index', u.i,"
						"                   'qty', trim_scale(u.q::numeric / 1000)) ORDER BY u.i)"
						"             FROM unnest($3, $4) AS u(i, q)))",
						4, rtypes),
			 rvalues, NULL, true, 0);
	return spi_jsonb(0, 1);
}

/*
 * held_out lists, by promotion index, the limited promotions a capture
 * leaves out: those with a usage_limit whose use the hold did not count
 * (usage_counted), and, for an identified customer, those with a
 * per_customer_limit it did not count (customer_usage_counted).  A hold
 * refused such a promotion because its last use was taken (by another
 * order, say); if that use was given back since, re-pricing would apply it
 * and the capture would no longer come out at the held prices (LY007):
 * the capture prices what was held.
 */
static bool *
held_out(ConfigCache *cfg, const OrderRow *o)
{
	bool	   *out = palloc0(sizeof(bool) * Max(cfg->npromotions, 1));

	for (int i = 0; i < cfg->npromotions; i++)
	{
		const CachedPromotion *p = &cfg->promotions[i];
		bool		counted = false;
		bool		customer_counted = false;

		CHECK_FOR_INTERRUPTS();
		for (int k = 0; k < o->ncounted; k++)
			if (strcmp(o->counted[k], p->code) == 0)
				counted = true;
		for (int k = 0; k < o->ncustomer_counted; k++)
			if (strcmp(o->customer_counted[k], p->code) == 0)
				customer_counted = true;
		if ((p->usage_limit > 0 && !counted) ||
			(p->per_customer_limit > 0 && o->customer_id > 0 && !customer_counted))
			out[i] = true;
	}
	return out;
}

/*
 * loyalty_order_capture implements loyalty.order_capture(request jsonb):
 * {"operation_id", "order_id", "lines"?, "store"?}; the whole held order
 * becomes a purchase with the capture's operation_id (see the file header)
 * and the call returns what that purchase returned.  With "lines"
 * ([{index, qty}], a partial capture) the units not named are then
 * refunded at once by loyalty.refund ("<capture>/uncaptured"), so the
 * captured part keeps the held prices exactly (refund's proportional
 * arithmetic); the response adds that refund's as "uncaptured".
 * Idempotent by operation_id: the same call again returns the stored
 * response.
 */
Datum
loyalty_order_capture(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	ConfigCache *cfg;
	char	   *operation_id;
	char	   *order_id;
	int64		customer_id;
	Jsonb	   *purchase_request;
	Jsonb	   *stored;
	Jsonb	   *response;
	CheckRequest *req;
	CustomerInfo *cust;
	OrderRow	o;
	TimestampTz server_now;
	RefundRequest *captured = NULL;
	Jsonb	   *rest = NULL;
	int64	   *held_given;
	int64	   *held_points;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	call_fields(request, "operation_id,order_id,store,lines", &operation_id, &order_id);
	{
		Oid			types[1] = {JSONBOID};
		Datum		values[1] = {JsonbPGetDatum(request)};

		spi_exec(saved_plan(&capture_fields_plan,
							"SELECT $1 ? 'lines', jsonb_typeof($1->'store'),"
							" jsonb_build_object('operation_id', $1->'operation_id',"
							"                    'purchase', $1->'operation_id', 'lines', $1->'lines')",
							1, types),
				 values, NULL, true, 0);
		if (!spi_isnull(0, 2) && strcmp(spi_text(0, 2, CurrentMemoryContext), "string") != 0)
			request_error("store", "must be a string.");
		/* the lines captured, read as a refund's lines are: [{index, qty}] */
		if (spi_bool(0, 1, false))
			captured = request_parse_refund(spi_jsonb(0, 3));
	}
	server_now = clock_server_now(false, 0);

	customer_id = order_customer(order_id);
	if (customer_id > 0)
		ledger_lock_customer(customer_id);
	order_lock(order_id, &o);

	/* the same capture again: the purchase's response */
	if (strcmp(o.state, "captured") == 0 && o.final_operation_id != NULL &&
		strcmp(o.final_operation_id, operation_id) == 0)
	{
		Oid			types[2] = {JSONBOID, JSONBOID};
		Datum		values[2] = {JsonbPGetDatum(o.capture_request), JsonbPGetDatum(request)};

		spi_exec(saved_plan(&same_request_plan,
							"SELECT $1 = $2", 2, types),
				 values, NULL, true, 0);
		if (!spi_bool(0, 1, false))
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_OPERATION_CONFLICT),
					 errmsg("operation_id \"%s\" was used with a different request",
							operation_id),
					 errdetail("The order was captured by this operation with another request."),
					 errhint("Use a new operation_id for a new request.")));
		response = copy_out(o.response, outer);
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}
	if (strcmp(o.state, "held") != 0)
		wrong_state(&o, "order_capture");
	if (captured != NULL)
		rest = uncaptured_lines(&o, captured, operation_id);

	/*
	 * The purchase the capture commits: the held request under the
	 * capture's operation_id, at the hold's "at", redeeming exactly the
	 * points the hold applied and sending only the coupons the hold
	 * applied (the hold's response lists the request's coupons in their
	 * order, each "applied" or "rejected").  A coupon the hold rejected
	 * (used up by another order then, say) is not applied at the capture
	 * even when it could be now: the capture prices what was held.
	 */
	{
		Oid			types[3] = {JSONBOID, TEXTOID, JSONBOID};
		Datum		values[3] = {JsonbPGetDatum(o.request), CStringGetTextDatum(operation_id),
		JsonbPGetDatum(o.response)};

		spi_exec(saved_plan(&capture_request_plan,
							"SELECT ($1 - 'coupons') || jsonb_build_object('operation_id', $2::text)"
							" || CASE WHEN $1 ? 'redeem'"
							"         THEN jsonb_build_object('redeem', $3->'redeem'->'applied')"
							"         ELSE '{}' END"
							" || coalesce((SELECT jsonb_build_object('coupons',"
							"                       jsonb_agg(c.code ORDER BY c.i))"
							"                FROM jsonb_array_elements(CASE WHEN jsonb_typeof($1->'coupons') = 'array'"
							"                                               THEN $1->'coupons' ELSE '[]' END)"
							"                     WITH ORDINALITY AS c (code, i)"
							"               WHERE $3->'coupons'->((c.i - 1)::int)->>'status' = 'applied'"
							"              HAVING count(*) > 0), '{}')",
							3, types),
				 values, NULL, true, 0);
		purchase_request = spi_jsonb(0, 1);
	}
	stored = operation_begin(operation_id, "purchase", purchase_request);
	if (stored != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OPERATION_CONFLICT),
				 errmsg("operation_id \"%s\" was used with a different request",
						operation_id),
				 errdetail("A purchase with this operation_id exists."),
				 errhint("Use a new operation_id for a new request.")));

	/*
	 * What the hold took from campaign budgets, read before the release
	 * gives it back: the capture takes no more (a hold whose discount a
	 * nearly spent budget capped stays capped, though a release by another
	 * order refilled the budget since).
	 */
	held_given = budget_held(cfg, o.hold_operation_id, &held_points);

	/*
	 * The release is logged under an internal operation of its own: the
	 * purchase logs its own coupon uses under the capture's id.
	 */
	{
		char	   *release_id = release_operation_id(operation_id);

		internal_operation(release_id, "order_release", customer_id, order_id);
		(void) order_release(cfg, &o, release_id, server_now, o.held_at);
		see_released();
	}

	req = request_parse_check(purchase_request, true, cfg->points_precision);
	req->for_purchase = true;
	req->at_held = true;
	req->held_now = o.held_at;
	req->held_out = held_out(cfg, &o);
	req->held_given = held_given;
	req->held_points = held_points;
	cust = check_customer_locked(cfg, req);
	response = purchase_commit(cfg, req, purchase_request, cust, true);
	PopActiveSnapshot();

	/*
	 * the purchase must come out at the held prices (money: amount,
	 * discount, redeemed, total); the points it earns follow the customer's
	 * tier at the capture, which a concurrent purchase may have raised
	 */
	{
		Oid			types[2] = {JSONBOID, JSONBOID};
		Datum		values[2] = {JsonbPGetDatum(response), JsonbPGetDatum(o.response)};

		spi_exec(saved_plan(&totals_plan,
							"SELECT ($1->'totals') - 'accrual' = ($2->'totals') - 'accrual',"
							" $1->'totals'->>'total', $2->'totals'->>'total'",
							2, types),
				 values, NULL, true, 0);
		if (!spi_bool(0, 1, false))
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_PRICE_CHANGED),
					 errmsg("order \"%s\" cannot be captured at the held prices", order_id),
					 errdetail("Held at %s, it would be captured at %s (the configuration or the customer changed since the hold); nothing changed.",
							   spi_text(0, 3, CurrentMemoryContext),
							   spi_text(0, 2, CurrentMemoryContext)),
					 errhint("Cancel the order and hold it again at today's prices.")));
	}
	/* a partial capture: the rest is refunded at once, exactly, as refund does */
	if (rest != NULL)
	{
		Oid			types[2] = {JSONBOID, JSONBOID};
		Datum		values[2];

		values[0] = JsonbPGetDatum(rest);
		spi_exec(saved_plan(&partial_refund_plan,
							"SELECT loyalty.refund($1)", 1, types),
				 values, NULL, false, 0);
		values[0] = JsonbPGetDatum(response);
		values[1] = JsonbPGetDatum(spi_jsonb(0, 1));
		spi_exec(saved_plan(&partial_response_plan,
							"SELECT $1 || jsonb_build_object('uncaptured', $2)", 2, types),
				 values, NULL, true, 0);
		response = spi_jsonb(0, 1);
	}
	order_close(order_id, "captured", operation_id, server_now, request, response);

	response = copy_out(response, outer);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}

/* the orders of one expiry batch, as locked (expire_batch) */
typedef struct ExpireSet
{
	int			n;
	Datum	   *ids;			/* text */
	Datum	   *customers;		/* int8, 0: anonymous */
	Datum	   *holds;			/* text: the hold's operation_id */
	Datum	   *ops;			/* text: "~order-expire:<order_id>" */
	Datum	   *ords;			/* int4: position in the batch */
} ExpireSet;

/* text_array, int8_array, int4_array build a one-dimensional array datum */
static Datum
text_array(Datum *elems, int n)
{
	return PointerGetDatum(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
int8_array(Datum *elems, int n)
{
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

static Datum
int4_array(Datum *elems, int n)
{
	return PointerGetDatum(construct_array(elems, n, INT4OID, 4, true, TYPALIGN_INT));
}

/*
 * expire_release_uses gives back the usage counts the batch's orders
 * counted, as check_release_uses would have order by order: the global
 * counters one promotion at a time in the configuration cache's order
 * (codes it does not know after them), each by the number of its uses
 * counted, never below zero; the customers' counters in one statement,
 * one use per order and promotion (the order's customer row is locked).
 */
static void
expire_release_uses(ConfigCache *cfg, char ***counted, int *ncounted,
					ExpireSet *set, char ***customer_counted, int *ncustomer_counted)
{
	int			total = 0;
	char	  **codes;
	int64	   *counts;
	bool	   *done;
	int			ncodes = 0;
	int			i,
				k,
				j;
	Datum	   *cust;
	Datum	   *promo;
	Datum	   *ord;
	int			m = 0;

	for (i = 0; i < set->n; i++)
		total += ncounted[i];
	codes = palloc(sizeof(char *) * Max(total, 1));
	counts = palloc0(sizeof(int64) * Max(total, 1));
	done = palloc0(sizeof(bool) * Max(total, 1));
	for (i = 0; i < set->n; i++)
		for (k = 0; k < ncounted[i]; k++)
		{
			for (j = 0; j < ncodes; j++)
				if (strcmp(codes[j], counted[i][k]) == 0)
					break;
			if (j == ncodes)
				codes[ncodes++] = counted[i][k];
			counts[j]++;
		}
	/* i == npromotions: the codes the cache does not know */
	for (i = 0; i <= cfg->npromotions; i++)
		for (j = 0; j < ncodes; j++)
		{
			Oid			types[2] = {TEXTOID, INT8OID};
			Datum		values[2];

			CHECK_FOR_INTERRUPTS();
			if (done[j] ||
				(i < cfg->npromotions && strcmp(cfg->promotions[i].code, codes[j]) != 0))
				continue;
			done[j] = true;
			values[0] = CStringGetTextDatum(codes[j]);
			values[1] = Int64GetDatum(counts[j]);
			spi_exec(saved_plan(&expire_global_plan,
								"UPDATE loyalty.promotion_usage"
								" SET uses = uses - least(uses, $2)"
								" WHERE promotion = $1 AND uses > 0",
								2, types),
					 values, NULL, false, 0);
		}

	total = 0;
	for (i = 0; i < set->n; i++)
		if (DatumGetInt64(set->customers[i]) > 0)
			total += ncustomer_counted[i];
	if (total == 0)
		return;
	cust = palloc(sizeof(Datum) * total);
	promo = palloc(sizeof(Datum) * total);
	ord = palloc(sizeof(Datum) * total);
	for (i = 0; i < set->n; i++)
		if (DatumGetInt64(set->customers[i]) > 0)
			for (k = 0; k < ncustomer_counted[i]; k++)
			{
				cust[m] = set->customers[i];
				promo[m] = CStringGetTextDatum(customer_counted[i][k]);
				ord[m++] = set->ords[i];
			}
	{
		Oid			types[3] = {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID};
		Datum		values[3] = {int8_array(cust, m), text_array(promo, m), int4_array(ord, m)};

		spi_exec(saved_batch_plan(&expire_customer_plan,
								  "UPDATE loyalty.promotion_customer_usage u"
								  "   SET uses = u.uses - least(u.uses, x.n)"
								  "  FROM (SELECT c, p, count(DISTINCT o) AS n"
								  "          FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
								  "                          pg_catalog.unnest($3)) AS x (c, p, o)"
								  "         GROUP BY c, p) x"
								  " WHERE u.customer_id = x.c AND u.promotion = x.p AND u.uses > 0",
								  3, types),
				 values, NULL, false, 0);
	}
}

/*
 * expire_batch expires the due held orders among ids/customers (n of
 * them, in the order they fell due) in a few statements over arrays, and
 * returns how many it expired.  It locks first the customers (FOR NO KEY
 * UPDATE SKIP LOCKED), then the orders that are still held and due and
 * whose customer it locked (FOR UPDATE SKIP LOCKED): the lock order of a
 * check, and it never waits for one.  Then, for all the locked orders at
 * once, exactly what order_cancel's release and order_close do one order
 * at a time: the internal operations, the points back to their lots (one
 * "release" entry per order and lot, in the order the orders fell due),
 * the coupons and certificate amounts, the usage counts, the orders'
 * state.
 */
static int64
expire_batch(ConfigCache *cfg, TimestampTz as_of, Datum *ids, Datum *customers, int n)
{
	ExpireSet	set;
	char	 ***counted;
	int		   *ncounted;
	char	 ***customer_counted;
	int		   *ncustomer_counted;
	Datum		locked;
	bool		isnull;
	uint64		rows;
	int			i;

	/* the customers: the ones a check holds are left for the next run */
	{
		Oid			types[1] = {INT8ARRAYOID};
		Datum		values[1] = {int8_array(customers, n)};

		spi_exec(saved_batch_plan(&expire_lock_customers_plan,
								  "SELECT pg_catalog.array_agg(c.id) FROM"
								  " (SELECT id FROM loyalty.customer WHERE id = ANY ($1)"
								  "   ORDER BY id FOR NO KEY UPDATE SKIP LOCKED) c",
								  1, types),
				 values, NULL, false, 0);
		locked = spi_datum(0, 1, &isnull);
		if (isnull)
			locked = int8_array(NULL, 0);
		else
			locked = PointerGetDatum(DatumGetArrayTypePCopy(locked));
	}
	/* the orders: still held and due, and not being captured right now */
	{
		Oid			types[3] = {TEXTARRAYOID, INT8ARRAYOID, TIMESTAMPTZOID};
		Datum		values[3] = {text_array(ids, n), locked, TimestampTzGetDatum(as_of)};

		rows = spi_exec(saved_batch_plan(&expire_lock_orders_plan,
										 "SELECT order_id, coalesce(customer_id, 0), hold_operation_id,"
										 "       usage_counted, customer_usage_counted"
										 "  FROM loyalty.\"order\""
										 " WHERE order_id = ANY ($1) AND state = 'held' AND hold_until <= $3"
										 "   AND (coalesce(customer_id, 0) <= 0 OR customer_id = ANY ($2))"
										 " ORDER BY hold_until, order_id"
										 "   FOR UPDATE SKIP LOCKED",
										 3, types),
						values, NULL, false, 0);
	}
	if (rows == 0)
		return 0;

	set.n = (int) rows;
	set.ids = palloc(sizeof(Datum) * set.n);
	set.customers = palloc(sizeof(Datum) * set.n);
	set.holds = palloc(sizeof(Datum) * set.n);
	set.ops = palloc(sizeof(Datum) * set.n);
	set.ords = palloc(sizeof(Datum) * set.n);
	counted = palloc(sizeof(char **) * set.n);
	ncounted = palloc(sizeof(int) * set.n);
	customer_counted = palloc(sizeof(char **) * set.n);
	ncustomer_counted = palloc(sizeof(int) * set.n);
	for (i = 0; i < set.n; i++)
	{
		char	   *id = spi_text(i, 1, CurrentMemoryContext);

		CHECK_FOR_INTERRUPTS();
		set.ids[i] = CStringGetTextDatum(id);
		set.customers[i] = Int64GetDatum(spi_int8(i, 2, 0));
		set.holds[i] = CStringGetTextDatum(spi_text(i, 3, CurrentMemoryContext));
		set.ops[i] = CStringGetTextDatum(psprintf("~order-expire:%s", id));
		set.ords[i] = Int32GetDatum(i);
		counted[i] = spi_text_array(i, 4, CurrentMemoryContext, &ncounted[i]);
		customer_counted[i] = spi_text_array(i, 5, CurrentMemoryContext,
											 &ncustomer_counted[i]);
	}

	/* the internal operations, which the entries and coupon uses reference */
	{
		Oid			types[4] = {TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID};
		Datum		values[4] = {text_array(set.ops, set.n), text_array(set.ids, set.n),
		int8_array(set.customers, set.n), int4_array(set.ords, set.n)};

		spi_exec(saved_batch_plan(&expire_operations_plan,
								  "INSERT INTO loyalty.operation (operation_id, kind, customer_id,"
								  "        request, response)"
								  " SELECT x.op, 'expire', CASE WHEN x.c > 0 THEN x.c END,"
								  "        pg_catalog.jsonb_build_object('order_id', x.id),"
								  "        pg_catalog.jsonb_build_object('order_id', x.id)"
								  "   FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
								  "                   pg_catalog.unnest($3), pg_catalog.unnest($4))"
								  "        AS x (op, id, c, o)"
								  "  ORDER BY x.o",
								  4, types),
				 values, NULL, false, 0);
	}

	/*
	 * the points, back to the lots they were held on (ledger_release_held
	 * for every order): a lot held by several orders of one customer gets
	 * them all back in one update.  Each order's entries are read through
	 * the operation indexes (LATERAL ... OFFSET 0 keeps the join a nested
	 * loop: a hash join would read every hold entry of the ledger for
	 * every batch); every held lot exists (the foreign key), so each gets
	 * its "release" entries.
	 */
	{
		Oid			types[5] = {INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		TIMESTAMPTZOID};
		Datum		values[5] = {int8_array(set.customers, set.n), text_array(set.holds, set.n),
			text_array(set.ops, set.n), int4_array(set.ords, set.n),
		TimestampTzGetDatum(as_of)};

		spi_exec(saved_batch_plan(&expire_release_plan,
								  "WITH x AS ("
								  "  SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
								  "                          pg_catalog.unnest($3), pg_catalog.unnest($4))"
								  "         AS x (customer_id, hold, op, o)"
								  "   WHERE x.customer_id > 0"
								  "), moves AS ("
								  "  SELECT x.o, x.customer_id, x.hold, x.op, e.lot_id, e.account, e.points"
								  "    FROM x, LATERAL ("
								  "         SELECT e.lot_id, e.account, e.points FROM loyalty.ledger_entry e"
								  "          WHERE e.operation_id = x.hold AND e.kind = 'hold'"
								  "            AND e.customer_id = x.customer_id"
								  "         UNION ALL"
								  "         SELECT e.lot_id, e.account, e.points FROM loyalty.ledger_entry e"
								  "          WHERE e.ref_operation_id = x.hold AND e.kind = 'release'"
								  "            AND e.customer_id = x.customer_id"
								  "         OFFSET 0) e"
								  "), held AS ("
								  "  SELECT m.o, m.customer_id, m.hold, m.op, m.lot_id, m.account,"
								  "         -sum(m.points) AS open"
								  "    FROM moves m"
								  "   GROUP BY m.o, m.customer_id, m.hold, m.op, m.lot_id, m.account"
								  "  HAVING -sum(m.points) > 0"
								  "), upd AS ("
								  "  UPDATE loyalty.lot l SET remaining = l.remaining + h.open"
								  "    FROM (SELECT lot_id, sum(open) AS open FROM held GROUP BY lot_id) h"
								  "   WHERE l.id = h.lot_id RETURNING l.id"
								  ") INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id,"
								  "         operation_id, ref_operation_id, kind, points, at)"
								  "  SELECT h.customer_id, h.account, h.lot_id, h.op, h.hold, 'release', h.open, $5"
								  "    FROM held h"
								  "   ORDER BY h.o, h.lot_id, h.account",
								  5, types),
				 values, NULL, false, 0);
	}

	/* coupons and certificate amounts (coupons_refund of every hold) */
	{
		Oid			types[3] = {TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID};
		Datum		values[3] = {text_array(set.holds, set.n), text_array(set.ops, set.n),
		TimestampTzGetDatum(as_of)};

		spi_exec(saved_batch_plan(&expire_coupons_plan,
								  "WITH x AS ("
								  "  SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
								  "         AS x (hold, op)"
								  "), used AS ("
								  "  SELECT u.code, u.amount, u.customer_id, x.op"
								  "    FROM x JOIN loyalty.coupon_use u ON u.operation_id = x.hold"
								  "), restored AS ("
								  "  UPDATE loyalty.coupon c SET uses = c.uses - a.n, status = 'active',"
								  "         balance = CASE WHEN c.kind = 'certificate'"
								  "                        THEN c.balance + a.amount ELSE c.balance END"
								  "    FROM (SELECT code, count(*) AS n, sum(amount) AS amount"
								  "            FROM used GROUP BY code) a"
								  "   WHERE c.code = a.code AND c.status <> 'void'"
								  "     AND (c.valid_until IS NULL OR c.valid_until > $3)"
								  "  RETURNING c.code"
								  "), logged AS ("
								  "  INSERT INTO loyalty.coupon_use (code, operation_id, customer_id, amount, at)"
								  "  SELECT u.code, u.op, u.customer_id, -u.amount, $3"
								  "    FROM used u WHERE u.code IN (SELECT code FROM restored)"
								  ") UPDATE loyalty.coupon SET status = 'void'"
								  "   WHERE issued_by = ANY ($1) AND uses = 0 AND status = 'active'",
								  3, types),
				 values, NULL, false, 0);
	}

	/* campaign budgets the holds claimed (budget.c; only when some promotion has one) */
	for (i = 0; cfg->any_budget && i < set.n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		budget_release(cfg, TextDatumGetCString(set.holds[i]));
	}

	expire_release_uses(cfg, counted, ncounted, &set, customer_counted, ncustomer_counted);

	/* the orders: expired by their internal operation (order_close) */
	{
		Oid			types[3] = {TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID};
		Datum		values[3] = {text_array(set.ids, set.n), text_array(set.ops, set.n),
		TimestampTzGetDatum(as_of)};

		spi_exec(saved_batch_plan(&expire_close_plan,
								  "UPDATE loyalty.\"order\" o SET state = 'expired',"
								  "       final_operation_id = x.op, closed_at = $3,"
								  "       captured_at = NULL, capture_request = NULL"
								  "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2))"
								  "       AS x (id, op)"
								  " WHERE o.order_id = x.id",
								  3, types),
				 values, NULL, false, 0);
	}
	return set.n;
}

/*
 * loyalty_expire_orders implements loyalty.expire_orders(as_of, max_orders):
 * releases up to max_orders held orders whose hold_until has passed, as
 * order_cancel would, and marks them expired; returns how many.  Orders
 * and customers a check holds locked are skipped (SKIP LOCKED): the next
 * run takes them, and a check never waits for this.  Each expiry is the
 * internal operation "~order-expire:<order_id>" (kind expire).  The due
 * orders are expired EXPIRE_BATCH at a time, each batch in a few
 * statements over arrays (expire_batch).
 */
#define EXPIRE_BATCH 5000

Datum
loyalty_expire_orders(PG_FUNCTION_ARGS)
{
	TimestampTz as_of = PG_GETARG_TIMESTAMPTZ(0);
	int32		max_orders = PG_GETARG_INT32(1);
	ConfigCache *cfg;
	Oid			types[2] = {TIMESTAMPTZOID, INT4OID};
	Datum		values[2];
	uint64		n;
	uint64		i;
	Datum	   *ids;
	Datum	   *customers;
	int64		expired = 0;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	values[0] = TimestampTzGetDatum(as_of);
	values[1] = Int32GetDatum(max_orders);
	n = spi_exec(saved_plan(&due_plan,
							"SELECT order_id, customer_id FROM loyalty.\"order\""
							" WHERE state = 'held' AND hold_until <= $1"
							" ORDER BY hold_until, order_id LIMIT $2",
							2, types),
				 values, NULL, false, 0);
	ids = palloc(sizeof(Datum) * Max(n, 1));
	customers = palloc(sizeof(Datum) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		ids[i] = CStringGetTextDatum(spi_text(i, 1, CurrentMemoryContext));
		customers[i] = Int64GetDatum(spi_int8(i, 2, 0));
	}
	for (i = 0; i < n; i += EXPIRE_BATCH)
	{
		MemoryContext batch_cxt = AllocSetContextCreate(CurrentMemoryContext,
														"expire_orders batch",
														ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(batch_cxt);

		CHECK_FOR_INTERRUPTS();
		expired += expire_batch(cfg, as_of, ids + i, customers + i,
								(int) Min(n - i, EXPIRE_BATCH));
		MemoryContextSwitchTo(old);
		MemoryContextDelete(batch_cxt);
	}
	SPI_finish();
	PG_RETURN_INT64(expired);
}
