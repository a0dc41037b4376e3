/*-------------------------------------------------------------------------
 *
 * check_load.c
 *	  The step between the request and the engine (see check_load.h): bind
 *	  the request to the configuration, then load everything the engine
 *	  needs from the database into one CheckInput, so that engine_run is
 *	  plain C over memory.
 *
 * The errors check_bind raises are the ones the engine raised before 0.9,
 * with the same texts and in the same order: "at" outside its window, an
 * unknown store, then per line a missing price, a certificate line's
 * quantity and price, the check's certificates and the total.  A purchase
 * binds after its replay was looked up, so a check sent again late still
 * gets its receipt.
 *
 * Queries, in this order (each one statement, only when needed): the
 * usage counters of limited promotions (check_usage), the coupon rows
 * (coupons_read).  The customer is loaded before, by the caller, with
 * their balances in the same statement (check_db.c); a customer loaded
 * without them (backtests) has them read here (ledger_balances).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "miscadmin.h"

#include "budget.h"
#include "check_db.h"
#include "check_load.h"
#include "clock.h"
#include "coupons.h"
#include "ledger.h"

/*
 * bind_certificate_line checks line i of a certificate product: whole
 * units, each a certificate worth the unit price, positive and at most
 * setting certificate_max_value.  *sold counts the certificates of the
 * lines before it; a check sells at most CHECK_MAX_CERTIFICATES.
 */
static void
bind_certificate_line(ConfigCache *cfg, int i, const RequestLine *rl,
					  int64 price, int64 *sold)
{
	if (rl->qty % QTY_ONE != 0)
		request_error(psprintf("lines[%d].qty", i),
					  "must be a whole number: SKU \"%s\" sells gift certificates, one a unit.",
					  rl->sku);
	if (price <= 0 || price > cfg->certificate_max_value)
		request_error(psprintf("lines[%d].price", i),
					  "must be greater than 0 and at most %s (setting certificate_max_value): it is the value of each gift certificate SKU \"%s\" sells.",
					  check_money_text(cfg->certificate_max_value), rl->sku);
	*sold += rl->qty / QTY_ONE;
	if (*sold > CHECK_MAX_CERTIFICATES)
		request_error(psprintf("lines[%d].qty", i),
					  "must keep the check's gift certificates at %d at most.",
					  CHECK_MAX_CERTIFICATES);
}

/*
 * check_bind_lines binds the lines of in->req into in->lines (see
 * check_load.h).
 */
void
check_bind_lines(ConfigCache *cfg, CheckInput *in)
{
	CheckRequest *req = in->req;
	int64		amount = 0;
	int64		sold = 0;		/* gift certificates */

	for (int i = 0; i < req->nlines; i++)
	{
		RequestLine *rl = &req->lines[i];
		BoundLine  *bl = &in->lines[i];
		CachedProduct *p = config_product(cfg, rl->sku);

		CHECK_FOR_INTERRUPTS();
		bl->product = p;
		bl->price = rl->price;
		if (bl->price < 0)
		{
			if (p == NULL || p->price < 0)
				request_error(psprintf("lines[%d].price", i),
							  "is required: SKU \"%s\" has no catalog price.", rl->sku);
			bl->price = p->price;
		}
		bl->amount = money_times_qty(bl->price, rl->qty);
		if (p != NULL && p->gift_certificate && in->mode == ENGINE_CHECK)
			bind_certificate_line(cfg, i, rl, bl->price, &sold);
		amount += bl->amount;
		if (amount >= REQUEST_MAX_CHECK)
			request_error("lines", "must add up to less than 10000000000.");
	}
}

/* check_bind binds the request to the configuration (see check_load.h). */
CheckInput *
check_bind(ConfigCache *cfg, CheckRequest *req, CustomerInfo *cust,
		   EngineMode mode)
{
	CheckInput *in = palloc0(sizeof(CheckInput));

	in->req = req;
	in->cust = cust;
	in->mode = mode;
	/* a held order's capture is judged as of its hold (orders.c) */
	in->server_now = req->at_held ? req->held_now : clock_server_now(req->has_at, req->at);
	in->at = req->has_at ? req->at : in->server_now;
	if (!req->at_held)
		clock_check_at(cfg, "at", in->at, in->server_now);
	if (req->store != NULL)
	{
		in->store = config_store(cfg, req->store);
		if (in->store == NULL)
			request_error("store", "names an unknown store \"%s\".", req->store);
	}

	in->lines = palloc0(sizeof(BoundLine) * Max(req->nlines, 1));
	check_bind_lines(cfg, in);
	return in;
}

/* check_load binds the request and reads what it needs (see check_load.h). */
CheckInput *
check_load(ConfigCache *cfg, CheckRequest *req, CustomerInfo *cust,
		   EngineMode mode)
{
	CheckInput *in = check_bind(cfg, req, cust, mode);
	int			na = cfg->naccounts;

	if (mode != ENGINE_CHECK)
		return in;
	in->usage = check_usage(cfg);
	{
		const int64 *points_left;
		int64	   *left = budget_read(cfg, &points_left);

		/* a held order's capture takes no more than the hold took */
		if (left != NULL && req->held_given != NULL)
			budget_cap_held(cfg, left, (int64 *) points_left,
							req->held_given, req->held_points);
		in->budget_left = left;
		in->points_left = points_left;
	}
	coupons_read(in);
	if (cust->identified && cust->has_balances)
	{
		/* read with the customer (check_db.c) */
		in->balances = cust->balances;
		in->has_balances = true;
	}
	else if (cust->identified && na > 0)
	{
		const char **codes = palloc(sizeof(char *) * na);

		for (int a = 0; a < na; a++)
			codes[a] = cfg->accounts[a].code;
		in->balances = palloc0(sizeof(LedgerBalance) * na);
		/* what may be spent is judged at the server's time, not the check's */
		ledger_balances(cust->id, in->server_now, na, codes, in->balances);
		in->has_balances = true;
	}
	return in;
}
