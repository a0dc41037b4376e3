/*-------------------------------------------------------------------------
 *
 * refund.c
 *	  loyalty.refund(request jsonb) (SPEC section 7): give back money and
 *	  points for some or all of what is left of a purchase, idempotent by
 *	  operation_id.
 *
 * Amounts are proportional to the refunded quantity and computed on the
 * cumulative quantity: after refunds of q1, q2, ... of a line of quantity
 * Q and total T, the money refunded is round(T * (q1 + q2 + ...) / Q), so
 * the refund that takes the last of a line takes exactly the remainder and
 * a full refund returns exactly T.  Points earned and spent per line and
 * account are refunded the same way (rounded to the points precision).
 * Earned points are reversed through ledger_reverse_accrual (the
 * purchase's own lots first, a shortfall becomes debt), spent points come
 * back through ledger_return_spent with their original expiry.  The
 * purchase row is locked first, so refunds of one purchase serialize, and
 * only then are its lines and points read, each with a snapshot taken
 * after the lock: a refund that waited for another sees what that one
 * took, so asking for more than is left fails with LY005.
 *
 * The refund that leaves nothing of the purchase (full) gives back the
 * coupons it used, voids the unused coupons it issued, and gives back the
 * promotion uses it counted (loyalty.purchase.usage_counted and
 * customer_usage_counted), so usage_limit and per_customer_limit count only
 * purchases that stand.  A partial refund keeps them.
 *
 * Response: {"operation_id", "purchase", "customer", "at",
 * "lines": [{"index", "sku", "qty", "amount"}], "totals": {"amount"},
 * "points": {"reversed": {account: points}, "returned": {...}},
 * "certificates_voided": [codes] when refunded lines sold gift certificates,
 * "full": true when nothing of the purchase is left}.
 *
 * loyalty_refund runs short steps over one Refund, in this order (the order
 * of its statements and locks): load the purchase and its lines under the
 * lock, check the request's optional "customer" against the purchase's
 * (LY002 for someone else's purchase), plan what each line returns (pure
 * C), void the certificates sold, load the points and plan their return,
 * write the ledger movements and the facts, build the response, store it
 * with the refund row and the coupon and usage give-back.  This file does not price or parse a check: what the
 * check core owns (coupons, promotion uses) is called in give_back and
 * void_certificates only.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "budget.h"
#include "event_points.h"
#include "check_db.h"
#include "clock.h"
#include "config_cache.h"
#include "coupons.h"
#include "customers.h"
#include "ledger.h"
#include "money.h"
#include "operations.h"
#include "request.h"
#include "response.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(loyalty_refund);

static SPIPlanPtr purchase_plan = NULL;
static SPIPlanPtr lines_plan = NULL;
static SPIPlanPtr points_plan = NULL;
static SPIPlanPtr update_lines_plan = NULL;
static SPIPlanPtr update_purchase_plan = NULL;
static SPIPlanPtr insert_refund_plan = NULL;

/* A purchase line as the refund sees it. */
typedef struct RefundLine
{
	int			index;
	char	   *sku;
	int64		qty;			/* thousandths */
	int64		total;			/* minor units */
	int64		refunded_qty;
	int64		refunded_total;
	int64		qty_now;		/* refunded by this request */
	int64		money_now;
} RefundLine;

/* Points of a line on one account. */
typedef struct RefundPoints
{
	int			line;			/* index into the lines array */
	char	   *account;
	int64		earned;			/* hundredths */
	int64		spent;
	int64		earned_refunded;
	int64		spent_refunded;
	int64		earned_now;
	int64		spent_now;
} RefundPoints;

/* One refund from its request to its response: what each step hands on. */
typedef struct Refund
{
	/* the request and the program */
	RefundRequest *req;
	ConfigCache *cfg;
	int64		unit;			/* hundredths per point at the precision */
	TimestampTz server_now;
	TimestampTz at;				/* the refund's time, not before the purchase */

	/* the purchase, read under its lock (load_purchase, load_points) */
	Datum		purchase;		/* its operation_id as text, $1 of the reads */
	int64		customer_id;	/* 0 for an anonymous purchase */
	pg_tz	   *tz;				/* its store's, or the program's */
	char	  **counted;		/* promotion uses it counted */
	int			ncounted;
	char	  **customer_counted;
	int			ncustomer_counted;
	RefundLine *lines;
	int			nlines;
	RefundPoints *pts;
	int			npts;

	/* the plan (plan_lines, plan_points) */
	int64		money;			/* minor units returned */
	bool		full;			/* nothing of the purchase is left after */
	List	   *voided;			/* codes of the certificates voided */
} Refund;

/*
 * cumulative returns what refunding "now" more of "qty" (of which "before"
 * were refunded) gives back of "whole", given that "given" already went
 * back: round(whole * (before + now) / qty) - given, rounded to multiples
 * of unit.
 */
static int64
cumulative(int64 whole, int64 qty, int64 before, int64 now, int64 given,
		   int64 unit)
{
	int128		num;
	int64		target;

	if (before + now >= qty)
		return whole - given;
	num = (int128) whole * (before + now);
	target = (int64) (((num + (int128) qty * unit / 2) / ((int128) qty * unit)) * unit);
	if (target > whole)
		target = whole;
	return Max(target - given, 0);
}


/* ---------------------------------------------------------------------
 * Load: the purchase, its lines and points, under the purchase's lock
 * ---------------------------------------------------------------------
 */

/*
 * load_purchase locks the purchase (refunds of one purchase serialize) and
 * its customer, and reads its lines.  The lines are read (not read-only)
 * with a snapshot taken now that the purchase is locked: the statement's
 * own snapshot predates the lock and misses a concurrent refund this one
 * waited for.
 */
static void
load_purchase(Refund *rf)
{
	Oid			t1[1] = {TEXTOID};
	TimestampTz purchase_at;
	char	   *store;
	CachedStore *s;
	uint64		n;

	rf->purchase = CStringGetTextDatum(rf->req->purchase);
	if (spi_exec(saved_plan(&purchase_plan,
							"SELECT customer_id, at, store, usage_counted, customer_usage_counted"
							"  FROM loyalty.purchase WHERE operation_id = $1 FOR UPDATE", 1, t1),
				 &rf->purchase, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OPERATION_NOT_FOUND),
				 errmsg("purchase \"%s\" not found", rf->req->purchase),
				 errdetail("Field \"purchase\" must be the operation_id of a committed purchase.")));
	rf->customer_id = spi_int8(0, 1, 0);
	purchase_at = spi_timestamptz(0, 2, 0);
	store = spi_text(0, 3, CurrentMemoryContext);
	rf->counted = spi_text_array(0, 4, CurrentMemoryContext, &rf->ncounted);
	rf->customer_counted = spi_text_array(0, 5, CurrentMemoryContext,
										  &rf->ncustomer_counted);

	s = store ? config_store(rf->cfg, store) : NULL;
	rf->tz = s ? s->tz : rf->cfg->program_tz;
	if (rf->at < purchase_at)
		rf->at = purchase_at;
	if (rf->customer_id > 0)
		ledger_lock_customer(rf->customer_id);

	n = spi_exec(saved_plan(&lines_plan,
							"SELECT line_index, sku, qty, total, refunded_qty, refunded_total"
							"  FROM loyalty.purchase_line WHERE operation_id = $1"
							" ORDER BY line_index", 1, t1),
				 &rf->purchase, NULL, false, 0);
	rf->nlines = (int) n;
	rf->lines = palloc0(sizeof(RefundLine) * Max(rf->nlines, 1));
	for (uint64 r = 0; r < n; r++)
	{
		RefundLine *l = &rf->lines[r];

		CHECK_FOR_INTERRUPTS();
		l->index = spi_int4(r, 1, 0);
		l->sku = spi_text(r, 2, CurrentMemoryContext);
		l->qty = spi_scaled(r, 3, QTY_SCALE, 0);
		l->total = spi_scaled(r, 4, MONEY_SCALE, 0);
		l->refunded_qty = spi_scaled(r, 5, QTY_SCALE, 0);
		l->refunded_total = spi_scaled(r, 6, MONEY_SCALE, 0);
	}
}

/*
 * check_refund_customer compares the request's "customer" (optional; a
 * sharded chain's router routes the refund by it) with the purchase's, the
 * survivor's for a merged one.  An unknown customer is LY001; a purchase
 * of someone else is LY002, as if it were not there: the customer's
 * partition holds only the customer's purchases.
 */
static void
check_refund_customer(const Refund *rf)
{
	const RefundRequest *req = rf->req;
	int64		named;
	int64		owner = rf->customer_id;

	if (req->customer_kind == CUSTOMER_NONE)
		return;
	named = customer_resolve(req->customer_kind == CUSTOMER_ID ?
							 psprintf("id:" INT64_FORMAT, req->customer_id) :
							 req->customer_text);
	if (named == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND),
				 errmsg("customer not found"),
				 req->customer_kind == CUSTOMER_ID ?
				 errdetail("No customer has id " INT64_FORMAT ".", req->customer_id) :
				 errdetail("No customer has the phone, card or id \"%s\".",
						   req->customer_text)));
	if (owner > 0 && owner != named)
		owner = customer_resolve(psprintf("id:" INT64_FORMAT, owner));
	if (owner != named)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OPERATION_NOT_FOUND),
				 errmsg("purchase \"%s\" not found for this customer", req->purchase),
				 errdetail("Field \"customer\" names a customer who did not make purchase \"%s\".",
						   req->purchase),
				 errhint("Leave \"customer\" out to refund an anonymous purchase.")));
}

/* load_points reads the points per line and account, as the lines are. */
static void
load_points(Refund *rf)
{
	Oid			t1[1] = {TEXTOID};
	uint64		n;

	n = spi_exec(saved_plan(&points_plan,
							"SELECT line_index, account, earned, spent, earned_refunded, spent_refunded"
							"  FROM loyalty.purchase_line_points WHERE operation_id = $1"
							" ORDER BY line_index, account", 1, t1),
				 &rf->purchase, NULL, false, 0);
	rf->npts = (int) n;
	rf->pts = palloc0(sizeof(RefundPoints) * Max(rf->npts, 1));
	for (uint64 r = 0; r < n; r++)
	{
		RefundPoints *p = &rf->pts[r];
		int			idx = spi_int4(r, 1, 0);

		CHECK_FOR_INTERRUPTS();
		p->line = -1;
		for (int i = 0; i < rf->nlines; i++)
			if (rf->lines[i].index == idx)
				p->line = i;
		p->account = spi_text(r, 2, CurrentMemoryContext);
		p->earned = spi_scaled(r, 3, POINTS_SCALE, 0);
		p->spent = spi_scaled(r, 4, POINTS_SCALE, 0);
		p->earned_refunded = spi_scaled(r, 5, POINTS_SCALE, 0);
		p->spent_refunded = spi_scaled(r, 6, POINTS_SCALE, 0);
	}
}


/* ---------------------------------------------------------------------
 * Plan: what each line and its points return (pure C)
 * ---------------------------------------------------------------------
 */

/*
 * plan_lines decides the quantity and money each line returns: what the
 * request names (22023 for a line the purchase lacks, LY005 beyond what is
 * left), or everything left; LY005 when nothing is left at all.
 */
static void
plan_lines(Refund *rf)
{
	RefundRequest *req = rf->req;
	bool		any = false;

	if (req->all)
	{
		for (int i = 0; i < rf->nlines; i++)
			rf->lines[i].qty_now = rf->lines[i].qty - rf->lines[i].refunded_qty;
	}
	else
	{
		for (int k = 0; k < req->nlines; k++)
		{
			RefundLineRequest *rl = &req->lines[k];
			RefundLine *l = NULL;

			CHECK_FOR_INTERRUPTS();
			for (int i = 0; i < rf->nlines; i++)
				if (rf->lines[i].index == rl->index)
					l = &rf->lines[i];
			if (l == NULL)
				request_error(psprintf("lines[%d].index", k),
							  "names no line of purchase \"%s\" (it has %d).",
							  req->purchase, rf->nlines);
			if (rl->qty > l->qty - l->refunded_qty)
				ereport(ERROR,
						(errcode(ERRCODE_LOYALTY_REFUND_EXCEEDS),
						 errmsg("refund exceeds what is left of the purchase"),
						 errdetail("Line %d has %s left to refund, the request asks for %s.",
								   rl->index,
								   scaled_to_cstring(l->qty - l->refunded_qty, QTY_SCALE),
								   scaled_to_cstring(rl->qty, QTY_SCALE))));
			l->qty_now = rl->qty;
		}
	}

	rf->money = 0;
	rf->full = true;
	for (int i = 0; i < rf->nlines; i++)
	{
		RefundLine *l = &rf->lines[i];

		l->money_now = l->qty_now > 0 ?
			cumulative(l->total, l->qty, l->refunded_qty, l->qty_now, l->refunded_total, 1) : 0;
		rf->money += l->money_now;
		if (l->refunded_qty + l->qty_now < l->qty)
			rf->full = false;
		any = any || l->qty_now > 0;
	}
	if (!any)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_REFUND_EXCEEDS),
				 errmsg("refund exceeds what is left of the purchase"),
				 errdetail("Purchase \"%s\" was already refunded in full.", req->purchase)));
}

/*
 * plan_points decides the points earned and spent that each refunded line
 * returns, on the same cumulative rule as its money.
 */
static void
plan_points(Refund *rf)
{
	for (int k = 0; k < rf->npts; k++)
	{
		RefundPoints *p = &rf->pts[k];
		RefundLine *l;

		if (p->line < 0)
			continue;
		l = &rf->lines[p->line];
		if (l->qty_now == 0)
			continue;
		p->earned_now = cumulative(p->earned, l->qty, l->refunded_qty, l->qty_now,
								   p->earned_refunded, rf->unit);
		p->spent_now = cumulative(p->spent, l->qty, l->refunded_qty, l->qty_now,
								  p->spent_refunded, rf->unit);
	}
}

/*
 * account_points sums the points the refund reverses (earned) or returns
 * (spent) on one account.
 */
static void
account_points(const Refund *rf, const char *account, int64 *earned,
			   int64 *spent)
{
	*earned = *spent = 0;
	for (int k = 0; k < rf->npts; k++)
		if (strcmp(rf->pts[k].account, account) == 0)
		{
			*earned += rf->pts[k].earned_now;
			*spent += rf->pts[k].spent_now;
		}
}


/* ---------------------------------------------------------------------
 * Calls into the check core: certificates, coupons, promotion uses
 * ---------------------------------------------------------------------
 */

/*
 * void_certificates voids the gift certificates sold by the refunded units
 * (issue 14 item 3) and keeps their codes for the response.
 */
static void
void_certificates(Refund *rf)
{
	int		   *idx = palloc(sizeof(int) * Max(rf->nlines, 1));
	int64	   *qty = palloc(sizeof(int64) * Max(rf->nlines, 1));
	int			m = 0;

	for (int i = 0; i < rf->nlines; i++)
		if (rf->lines[i].qty_now > 0)
		{
			idx[m] = rf->lines[i].index;
			qty[m++] = rf->lines[i].qty_now;
		}
	rf->voided = coupons_refund_sold(rf->req->purchase, m, idx, qty);
}

/*
 * give_back restores the coupons the purchase used and voids the ones it
 * issued, and on a full refund gives back the promotion uses it counted
 * and the money it took from campaign budgets (budget.c).
 */
static void
give_back(Refund *rf)
{
	coupons_refund(rf->req->purchase, rf->req->operation_id, rf->full,
				   rf->server_now);
	if (rf->full)
	{
		check_release_uses(rf->cfg, rf->customer_id, rf->counted, rf->ncounted,
						   rf->customer_counted, rf->ncustomer_counted);
		budget_release(rf->cfg, rf->req->purchase);
		event_points_refund(rf->customer_id, rf->req->purchase,
							rf->req->operation_id, rf->at);
	}
}


/* ---------------------------------------------------------------------
 * Write: ledger movements and facts
 * ---------------------------------------------------------------------
 */

/*
 * write_ledger reverses earned and returns spent points per account; spent
 * points come back first, so the reversal can take them.
 */
static void
write_ledger(Refund *rf)
{
	for (int a = 0; a < rf->cfg->naccounts && rf->customer_id > 0; a++)
	{
		const char *code = rf->cfg->accounts[a].code;
		int64		earned,
					spent;

		account_points(rf, code, &earned, &spent);
		if (spent > 0)
			ledger_return_spent(rf->customer_id, code, spent, rf->req->purchase,
								rf->req->operation_id, rf->at);
		if (earned > 0)
			ledger_reverse_accrual(rf->customer_id, code, earned, rf->req->purchase,
								   rf->req->operation_id, rf->at);
	}
}

/*
 * line_points_json adds the points object of line i: per account what it
 * earned and spent, with this refund's points added to its refunded ones.
 */
static void
line_points_json(const Refund *rf, int i, JsonBuilder *lb)
{
	jb_begin_object(lb);
	for (int k = 0; k < rf->npts; k++)
	{
		const RefundPoints *p = &rf->pts[k];
		int64		earned_refunded = p->earned_refunded + p->earned_now;
		int64		spent_refunded = p->spent_refunded + p->spent_now;

		if (p->line != i)
			continue;
		jb_key(lb, p->account);
		jb_begin_object(lb);
		jb_key(lb, "earned");
		jb_trimmed(lb, false, p->earned, POINTS_SCALE);
		jb_key(lb, "spent");
		jb_trimmed(lb, false, p->spent, POINTS_SCALE);
		if (earned_refunded != 0)
		{
			jb_key(lb, "earned_refunded");
			jb_trimmed(lb, false, earned_refunded, POINTS_SCALE);
		}
		if (spent_refunded != 0)
		{
			jb_key(lb, "spent_refunded");
			jb_trimmed(lb, false, spent_refunded, POINTS_SCALE);
		}
		jb_end_object(lb);
	}
	jb_end_object(lb);
}

/*
 * write_facts updates the purchase's lines (money and points) and the
 * purchase.  A line's points object is written whole, from what was read
 * under the purchase's lock.
 */
static void
write_facts(Refund *rf)
{
	Oid			t2[2] = {TEXTOID, JSONBOID};
	Oid			tn[2] = {TEXTOID, NUMERICOID};
	Datum		v[2];
	JsonBuilder lb = {0};

	jb_begin_array(&lb);
	for (int i = 0; i < rf->nlines; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (rf->lines[i].qty_now == 0)
			continue;
		jb_begin_object(&lb);
		jb_key(&lb, "index");
		jb_int(&lb, false, rf->lines[i].index);
		jb_key(&lb, "qty");
		jb_scaled(&lb, false, rf->lines[i].qty_now, QTY_SCALE);
		jb_key(&lb, "amount");
		jb_money(&lb, false, rf->lines[i].money_now);
		jb_key(&lb, "points");
		line_points_json(rf, i, &lb);
		jb_end_object(&lb);
	}
	jb_end_array(&lb);

	v[0] = rf->purchase;
	v[1] = JsonbPGetDatum(jb_finish(&lb));
	(void) spi_exec(saved_plan(&update_lines_plan,
							   "UPDATE loyalty.purchase_line l"
							   "   SET refunded_qty = l.refunded_qty + x.qty,"
							   "       refunded_total = l.refunded_total + x.amount,"
							   "       points = x.points"
							   "  FROM pg_catalog.jsonb_to_recordset($2) AS x(index int, qty numeric,"
							   "       amount numeric, points jsonb)"
							   " WHERE l.operation_id = $1 AND l.line_index = x.index", 2, t2),
					v, NULL, false, 0);
	v[1] = NumericGetDatum(scaled_to_numeric(rf->money, MONEY_SCALE));
	(void) spi_exec(saved_plan(&update_purchase_plan,
							   "UPDATE loyalty.purchase SET refunded = refunded + $2"
							   " WHERE operation_id = $1", 2, tn),
					v, NULL, false, 0);
}


/* ---------------------------------------------------------------------
 * Respond: build the response, store it with the refund's row
 * ---------------------------------------------------------------------
 */

/* points_json adds the points reversed (earned) or returned (spent) per account. */
static void
points_json(const Refund *rf, bool earned, JsonBuilder *b)
{
	jb_begin_object(b);
	for (int a = 0; a < rf->cfg->naccounts; a++)
	{
		int64		e,
					s;

		account_points(rf, rf->cfg->accounts[a].code, &e, &s);
		if ((earned ? e : s) == 0)
			continue;
		jb_key(b, rf->cfg->accounts[a].code);
		jb_points(b, false, earned ? e : s, rf->cfg->points_precision);
	}
	jb_end_object(b);
}

/* build_response builds the response (see the file header). */
static Jsonb *
build_response(const Refund *rf)
{
	JsonBuilder b = {0};

	jb_begin_object(&b);
	jb_key(&b, "operation_id");
	jb_string(&b, false, rf->req->operation_id);
	jb_key(&b, "purchase");
	jb_string(&b, false, rf->req->purchase);
	jb_key(&b, "customer");
	if (rf->customer_id > 0)
		jb_int(&b, false, rf->customer_id);
	else
		jb_null(&b, false);
	jb_key(&b, "at");
	jb_string(&b, false, response_timestamp(rf->at, rf->tz));
	jb_key(&b, "lines");
	jb_begin_array(&b);
	for (int i = 0; i < rf->nlines; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (rf->lines[i].qty_now == 0)
			continue;
		jb_begin_object(&b);
		jb_key(&b, "index");
		jb_int(&b, false, rf->lines[i].index);
		jb_key(&b, "sku");
		jb_string(&b, false, rf->lines[i].sku);
		jb_key(&b, "qty");
		jb_qty(&b, false, rf->lines[i].qty_now);
		jb_key(&b, "amount");
		jb_money(&b, false, rf->lines[i].money_now);
		jb_end_object(&b);
	}
	jb_end_array(&b);
	jb_key(&b, "totals");
	jb_begin_object(&b);
	jb_key(&b, "amount");
	jb_money(&b, false, rf->money);
	jb_end_object(&b);
	jb_key(&b, "points");
	jb_begin_object(&b);
	jb_key(&b, "reversed");
	points_json(rf, true, &b);
	jb_key(&b, "returned");
	points_json(rf, false, &b);
	jb_end_object(&b);
	if (rf->voided != NIL)
	{
		ListCell   *lc;

		/* the certificates the cashier takes back (not in loyalty.refund) */
		jb_key(&b, "certificates_voided");
		jb_begin_array(&b);
		foreach(lc, rf->voided)
			jb_string(&b, true, lfirst(lc));
		jb_end_array(&b);
	}
	jb_key(&b, "full");
	jb_bool(&b, false, rf->full);
	jb_end_object(&b);
	return jb_finish(&b);
}

/* store_refund writes the refund's row, which carries its response's facts. */
static void
store_refund(const Refund *rf, Jsonb *response)
{
	Oid			t3[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		v[3];

	v[0] = CStringGetTextDatum(rf->req->operation_id);
	v[1] = rf->purchase;
	v[2] = JsonbPGetDatum(response);
	(void) spi_exec(saved_plan(&insert_refund_plan,
							   "INSERT INTO loyalty.refund (operation_id, purchase, customer_id, at,"
							   " amount, lines, points_reversed, points_returned, full_refund)"
							   " SELECT $1, $2, (r ->> 'customer')::int8, (r ->> 'at')::timestamptz,"
							   "        (r -> 'totals' ->> 'amount')::numeric, r -> 'lines',"
							   "        r -> 'points' -> 'reversed', r -> 'points' -> 'returned',"
							   "        (r ->> 'full')::boolean"
							   "   FROM (SELECT $3 AS r) AS x", 3, t3),
					v, NULL, false, 0);
}


/*
 * loyalty_refund implements loyalty.refund(request jsonb) (see the file
 * header): parse, replay or load, plan, write, respond.
 */
Datum
loyalty_refund(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	Refund		rf = {0};
	Jsonb	   *stored;
	Jsonb	   *response;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rf.cfg = config_cache_get();
	rf.req = request_parse_refund(request);
	stored = operation_begin(rf.req->operation_id, "refund", request);
	if (stored != NULL)
	{
		response = spi_copy_varlena(stored, outer);
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}
	rf.unit = rf.cfg->points_precision == 0 ? 100 : 1;
	rf.server_now = clock_server_now(rf.req->has_at, rf.req->at);
	rf.at = rf.req->has_at ? rf.req->at : rf.server_now;
	clock_check_at(rf.cfg, "at", rf.at, rf.server_now);

	load_purchase(&rf);
	check_refund_customer(&rf);
	plan_lines(&rf);
	void_certificates(&rf);
	load_points(&rf);
	plan_points(&rf);
	write_ledger(&rf);
	write_facts(&rf);
	response = build_response(&rf);
	store_refund(&rf, response);
	give_back(&rf);
	operation_finish(rf.req->operation_id, rf.customer_id, response);

	response = spi_copy_varlena(response, outer);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}
