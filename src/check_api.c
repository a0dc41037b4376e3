/*-------------------------------------------------------------------------
 *
 * check_api.c
 *	  The SQL-callable check API (SPEC section 7): loyalty.calculate,
 *	  loyalty.purchase and loyalty.catalog_prices.  loyalty.refund is in
 *	  refund.c.
 *
 * Each call does all its SPI work inside one SPI connection, top-down:
 * the configuration cache (rebuilt only after a configuration change), the
 * customer with their balances (check_db.c, one query; a purchase's lock
 * and one query after it), then check_load (check_load.c) binds the
 * request and reads the usage counters of limited promotions (one query,
 * only when some promotion is limited) and the coupon rows (one query,
 * only when codes are sent); engine_run prices the check in memory and
 * response_build renders it.  purchase then writes through saved plans.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "accrual.h"
#include "budget.h"
#include "check_api.h"
#include "check_db.h"
#include "check_load.h"
#include "clock.h"
#include "config_cache.h"
#include "coupons.h"
#include "engine.h"
#include "event_points.h"
#include "events.h"
#include "operations.h"
#include "request.h"
#include "response.h"
#include "spi_util.h"
#include "subscriptions.h"
#include "tiers.h"

PG_FUNCTION_INFO_V1(loyalty_calculate);
PG_FUNCTION_INFO_V1(loyalty_calculate_json);
PG_FUNCTION_INFO_V1(loyalty_purchase);
PG_FUNCTION_INFO_V1(loyalty_catalog_prices);

/* copy_out copies a jsonb into the given (outer) context. */
static Jsonb *
copy_out(Jsonb *jb, MemoryContext cxt)
{
	Jsonb	   *copy = MemoryContextAlloc(cxt, VARSIZE(jb));

	memcpy(copy, jb, VARSIZE(jb));
	return copy;
}

/*
 * loyalty_calculate implements loyalty.calculate(request jsonb): the
 * priced check, without side effects.
 */
Datum
loyalty_calculate(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	ConfigCache *cfg;
	CheckRequest *req;
	CustomerInfo *cust;
	CheckInput *in;
	CheckResult *r;
	Jsonb	   *response;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	req = request_parse_check(request, false, cfg->points_precision);
	cust = check_customer(cfg, req);
	in = check_load(cfg, req, cust, ENGINE_CHECK);
	r = engine_run(cfg, in, NULL);
	response = copy_out(response_build(r, NULL), outer);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}

/*
 * loyalty_calculate_json implements loyalty.calculate_json(request jsonb):
 * calculate's response as json text, for clients that only print or pass
 * it on: no binary jsonb is built and none is printed (issue 21).
 */
Datum
loyalty_calculate_json(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	ConfigCache *cfg;
	CheckRequest *req;
	CustomerInfo *cust;
	CheckInput *in;
	CheckResult *r;
	text	   *response;
	text	   *copy;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	req = request_parse_check(request, false, cfg->points_precision);
	cust = check_customer(cfg, req);
	in = check_load(cfg, req, cust, ENGINE_CHECK);
	r = engine_run(cfg, in, NULL);
	response = response_build_text(r, NULL);
	copy = MemoryContextAlloc(outer, VARSIZE(response));
	memcpy(copy, response, VARSIZE(response));
	SPI_finish();
	PG_RETURN_TEXT_P(copy);
}

/* points_text prints points (hundredths) at the points precision. */
static char *
points_text(ConfigCache *cfg, int64 points)
{
	if (cfg->points_precision == 0)
		return psprintf(INT64_FORMAT, points / 100);
	return scaled_to_cstring(points, 2);
}

/*
 * purchase_price prices a purchase request under the customer's lock
 * exactly as calculate does, raising LY004 when a number of points to
 * redeem exceeds what may be spent, and counts the uses of limited
 * promotions: a promotion whose last use a concurrent purchase took is
 * dropped and the check priced again.  order_hold prices its checks here
 * too (orders.c).
 */
CheckResult *
purchase_price(ConfigCache *cfg, CheckRequest *req, CustomerInfo *cust)
{
	CheckInput *in;
	CheckResult *r;
	bool	   *excluded;

	/*
	 * read once, under the customer's lock; a retry prices the same input
	 * without the promotion whose last use a concurrent purchase took
	 */
	in = check_load(cfg, req, cust, ENGINE_CHECK);
	excluded = palloc0(sizeof(bool) * Max(cfg->npromotions, 1));
	/* a held order's capture: limited promotions the hold did not count */
	if (req->held_out != NULL)
		memcpy(excluded, req->held_out, sizeof(bool) * cfg->npromotions);
	for (;;)
	{
		int			failed;

		CHECK_FOR_INTERRUPTS();
		r = engine_run(cfg, in, excluded);
		if (req->redeem == REDEEM_POINTS && r->redeem_applied < req->redeem_points)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_INSUFFICIENT_POINTS),
					 errmsg("requested points exceed what may be spent"),
					 errdetail("Requested %s points, at most %s may be spent on this check.",
							   points_text(cfg, req->redeem_points),
							   points_text(cfg, r->redeem_max)),
					 errhint("Send \"redeem\": \"max\" to spend as much as possible.")));
		/* a budget used up meanwhile: price again with what is left */
		failed = budget_claim(r, req->operation_id);
		if (failed >= 0)
		{
			const int64 *before = in->budget_left;
			const int64 *before_points = in->points_left;

			in->budget_left = budget_read(cfg, &in->points_left);
			if (before[failed] == in->budget_left[failed] &&
				before_points[failed] == in->points_left[failed])
				excluded[failed] = true;	/* cannot happen: no progress */
			continue;
		}
		failed = check_claim_uses(r);
		if (failed < 0)
			break;
		budget_unclaim(r, req->operation_id);
		excluded[failed] = true;
	}
	return r;
}

/*
 * purchase_commit prices and commits a purchase whose operation is either
 * claimed (claim: operation_begin inserted its row) or to be recorded here
 * (the customer's lock makes the id ours): gives issued coupons their codes,
 * builds the response and records the operation with it, then uses and
 * issues coupons, starts or extends subscriptions, writes the facts, spends
 * and earns points (ledger_accrue_check), writes the events of coupons
 * issued and points earned in one statement, and moves the customer up a
 * tier when the spend now reaches one (tiers_refresh).  Returns the
 * response, in the SPI context.  order_capture commits through it.
 */
Jsonb *
purchase_commit(ConfigCache *cfg, CheckRequest *req, Jsonb *request,
				CustomerInfo *cust, bool claim)
{
	CheckResult *r;
	Jsonb	   *response;
	EventBatch	events = {0};
	bool		collided;
	int			a;

	r = purchase_price(cfg, req, cust);
	coupons_assign_codes(r);
	response = response_build(r, req->operation_id);
	if (!claim)
		operation_record(req->operation_id, "purchase", request,
						 cust->identified ? cust->id : 0, response);
	collided = coupons_commit(r, req->operation_id, &events);
	subscriptions_commit(r, req->operation_id);
	/* an issued code collided and was replaced: the receipt names the new one */
	if (collided)
		response = response_build(r, req->operation_id);
	/* the response of a claimed operation, or the new receipt */
	if (claim || collided)
		operation_finish(req->operation_id, cust->identified ? cust->id : 0, response);
	check_write_purchase(r, req->operation_id, response);
	if (cust->identified)
	{
		for (a = 0; r->redeem != NULL && a < cfg->naccounts; a++)
			if (r->redeem[a].points > 0)
				ledger_spend(cust->id, cfg->accounts[a].code, r->redeem[a].points,
							 req->operation_id, r->at, r->server_now);
		ledger_accrue_check(r, req->operation_id, &events);
		event_batch_write(&events, cust->id);
		event_points_first_purchase(r, req->operation_id);
		tiers_refresh(r);
	}

	return response;
}

/*
 * loyalty_purchase implements loyalty.purchase(request jsonb): calculate
 * and commit in one transaction, idempotent by operation_id.
 *
 * Order: look the operation up (a replay returns the stored response), lock
 * the identified customer (so their balance cannot be spent twice) and look
 * again (a concurrent request with the same id held that lock: its response
 * is now there), or, for an anonymous check, claim the operation (a
 * concurrent request with the same id is waited for on its key); nothing
 * here is held in the shared lock table, so one transaction may run any
 * number of purchases (see operations.c).  Then price the check exactly as
 * calculate does, count uses of limited promotions (a promotion whose last
 * use a concurrent purchase took is dropped and the check priced again),
 * give issued coupons their codes, build the response and record
 * the operation with it (one row version; a claimed one gets its
 * response), then use and issue coupons, start or extend subscriptions,
 * write the facts, spend and earn points (ledger_accrue_check), write the
 * events of coupons issued and points earned in one statement, and move
 * the customer up a tier when the spend now reaches one (tiers_refresh).
 */
Datum
loyalty_purchase(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	ConfigCache *cfg;
	CheckRequest *req;
	CustomerInfo *cust = NULL;
	Jsonb	   *stored;
	Jsonb	   *response;
	bool		claim = true;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	req = request_parse_check(request, true, cfg->points_precision);
	req->for_purchase = true;
	stored = operation_lookup(req->operation_id, "purchase", request);
	if (stored == NULL)
	{
		cust = check_customer_locked(cfg, req);
		if (cust->identified)
		{
			/* a request with this id that held the lock has committed by now */
			claim = false;
			stored = operation_lookup(req->operation_id, "purchase", request);
		}
		else
			stored = operation_begin(req->operation_id, "purchase", request);
	}
	if (stored != NULL)
	{
		response = copy_out(stored, outer);
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}

	response = copy_out(purchase_commit(cfg, req, request, cust, claim), outer);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}


/* ---------------------------------------------------------------------
 * catalog_prices
 * ---------------------------------------------------------------------
 */

/*
 * loyalty_catalog_prices implements loyalty.catalog_prices(customer,
 * store, channel, skus, at): for each SKU (in the order given) its
 * catalog price, the personal price after single-item promotions
 * (percent_off, amount_off, tier_discount, subscription_price) for one
 * unit, and the codes of those promotions.  An unknown SKU, or one without
 * a catalog price, gives NULL prices.
 */
Datum
loyalty_catalog_prices(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *customer = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *store = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *channel = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	Datum	   *skus;
	bool	   *sku_nulls;
	int			nskus;
	ConfigCache *cfg;
	CheckRequest req;
	CustomerInfo *cust;
	CheckInput *in = NULL;
	int			i;

	SetSingleFuncCall(fcinfo, 0);
	if (PG_ARGISNULL(3))
		return (Datum) 0;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
					  &skus, &sku_nulls, &nskus);
	if (nskus > REQUEST_MAX_LINES)
		request_error("skus", "must have at most %d SKUs.", REQUEST_MAX_LINES);
	if (channel != NULL && strcmp(channel, "pos") != 0 &&
		strcmp(channel, "web") != 0 && strcmp(channel, "app") != 0)
		request_error("channel", "must be one of \"pos\", \"web\", \"app\".");

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	memset(&req, 0, sizeof(req));
	req.store = store;
	req.channel = channel;
	/* "at" defaults to the server's time; check_load checks its window */
	req.has_at = !PG_ARGISNULL(4);
	req.at = req.has_at ? PG_GETARG_TIMESTAMPTZ(4) : 0;
	req.nlines = 1;
	if (customer != NULL)
	{
		req.customer_kind = CUSTOMER_TEXT;
		req.customer_text = customer;
	}
	/* a catalog price spends nothing: no balances */
	cust = check_customer_reading(cfg, &req, check_customer_reads(cfg) & ~CUST_READ_BALANCES);

	for (i = 0; i < nskus; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};
		CachedProduct *p;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		if (sku_nulls[i])
			continue;
		values[0] = skus[i];
		p = config_product(cfg, TextDatumGetCString(skus[i]));
		if (p == NULL || p->price < 0)
		{
			nulls[1] = nulls[2] = nulls[3] = true;
		}
		else
		{
			RequestLine line;
			CheckResult *r;
			Datum	   *codes;
			int			k;

			line.sku = p->sku;
			line.qty = QTY_ONE;
			line.price = p->price;
			req.lines = &line;
			/*
			 * binds only (a catalog price reads nothing more): the moment
			 * and the store at the first SKU priced, then each SKU's line
			 */
			if (in == NULL)
				in = check_load(cfg, &req, cust, ENGINE_CATALOG);
			else
				check_bind_lines(cfg, in);
			r = engine_run(cfg, in, NULL);
			codes = palloc(sizeof(Datum) * Max(r->lines[0].npromos, 1));
			for (k = 0; k < r->lines[0].npromos; k++)
				codes[k] = CStringGetTextDatum(r->lines[0].promos[k].promo->code);
			old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
			values[1] = NumericGetDatum(scaled_to_numeric(p->price, MONEY_SCALE));
			values[2] = NumericGetDatum(scaled_to_numeric(r->lines[0].total, MONEY_SCALE));
			values[3] = PointerGetDatum(construct_array(codes, r->lines[0].npromos,
														TEXTOID, -1, false, TYPALIGN_INT));
			MemoryContextSwitchTo(old);
		}
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		values[0] = PointerGetDatum(PG_DETOAST_DATUM_COPY(skus[i]));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return (Datum) 0;
}
