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
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "check_db.h"
#include "clock.h"
#include "config_cache.h"
#include "coupons.h"
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

/* run runs a saved plan with one text argument and more. */
static void
run(SPIPlanPtr plan, Datum *values, bool read_only)
{
	int			rc = SPI_execute_plan(plan, values, NULL, read_only, 0);

	if (rc < 0)
		elog(ERROR, "refund statement failed: %s", SPI_result_code_string(rc));
}

/* col_scaled reads a numeric column of row r in 10^-scale units. */
static int64
col_scaled(uint64 r, int col, int scale)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, col, &isnull);
	int64		v;

	if (isnull)
		return 0;
	if (!numeric_to_scaled(DatumGetNumeric(d), scale, &v))
		elog(ERROR, "purchase fact out of range");
	return v;
}

/*
 * col_codes reads a text[] column of the first row as C strings; *n gets
 * their number.
 */
static char **
col_codes(int col, int *n)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	Datum	   *elems;
	bool	   *nulls;
	char	  **codes;
	int			i;

	*n = 0;
	if (isnull)
		return NULL;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, n);
	codes = palloc(sizeof(char *) * Max(*n, 1));
	for (i = 0; i < *n; i++)
		codes[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	return codes;
}

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

/*
 * loyalty_refund implements loyalty.refund(request jsonb) (see the file
 * header).
 */
Datum
loyalty_refund(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	ConfigCache *cfg;
	RefundRequest *req;
	Jsonb	   *stored;
	Jsonb	   *response;
	Oid			t1[1] = {TEXTOID};
	Datum		v[3];
	bool		isnull;
	int64		customer_id = 0;
	TimestampTz purchase_at;
	TimestampTz at;
	TimestampTz server_now;
	char	   *store;
	char	  **counted;
	char	  **customer_counted;
	int			ncounted;
	int			ncustomer_counted;
	pg_tz	   *tz;
	RefundLine *lines;
	int			nlines;
	RefundPoints *pts;
	int			npts;
	int64		money = 0;
	bool		full = true;
	List	   *voided;
	JsonBuilder b = {0};
	JsonBuilder lb = {0};
	int64		unit;
	uint64		r;
	int			i,
				k,
				a;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	cfg = config_cache_get();
	req = request_parse_refund(request);
	stored = operation_begin(req->operation_id, "refund", request);
	if (stored != NULL)
	{
		response = MemoryContextAlloc(outer, VARSIZE(stored));
		memcpy(response, stored, VARSIZE(stored));
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}
	unit = cfg->points_precision == 0 ? 100 : 1;
	server_now = clock_server_now(req->has_at, req->at);
	at = req->has_at ? req->at : server_now;
	clock_check_at(cfg, "at", at, server_now);

	/* the purchase, locked: refunds of one purchase serialize */
	v[0] = CStringGetTextDatum(req->purchase);
	run(saved_plan(&purchase_plan,
					"SELECT customer_id, at, store, usage_counted, customer_usage_counted"
					"  FROM loyalty.purchase WHERE operation_id = $1 FOR UPDATE", 1, t1), v, false);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OPERATION_NOT_FOUND),
				 errmsg("purchase \"%s\" not found", req->purchase),
				 errdetail("Field \"purchase\" must be the operation_id of a committed purchase.")));
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			customer_id = DatumGetInt64(d);
		purchase_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														SPI_tuptable->tupdesc, 2, &isnull));
		store = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
		counted = col_codes(4, &ncounted);
		customer_counted = col_codes(5, &ncustomer_counted);
	}
	{
		CachedStore *s = store ? config_store(cfg, store) : NULL;

		tz = s ? s->tz : cfg->program_tz;
	}
	if (at < purchase_at)
		at = purchase_at;
	if (customer_id > 0)
		ledger_lock_customer(customer_id);

	/*
	 * its lines, read (not read-only) with a snapshot taken now that the
	 * purchase is locked: the statement's own snapshot predates the lock
	 * and misses a concurrent refund this one waited for
	 */
	run(saved_plan(&lines_plan,
					"SELECT line_index, sku, qty, total, refunded_qty, refunded_total"
					"  FROM loyalty.purchase_line WHERE operation_id = $1"
					" ORDER BY line_index", 1, t1), v, false);
	nlines = (int) SPI_processed;
	lines = palloc0(sizeof(RefundLine) * Max(nlines, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		CHECK_FOR_INTERRUPTS();
		lines[r].index = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
													 SPI_tuptable->tupdesc, 1, &isnull));
		lines[r].sku = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		lines[r].qty = col_scaled(r, 3, QTY_SCALE);
		lines[r].total = col_scaled(r, 4, MONEY_SCALE);
		lines[r].refunded_qty = col_scaled(r, 5, QTY_SCALE);
		lines[r].refunded_total = col_scaled(r, 6, MONEY_SCALE);
	}

	/* what this request refunds */
	if (req->all)
	{
		for (i = 0; i < nlines; i++)
			lines[i].qty_now = lines[i].qty - lines[i].refunded_qty;
	}
	else
	{
		for (k = 0; k < req->nlines; k++)
		{
			RefundLineRequest *rl = &req->lines[k];
			RefundLine *l = NULL;

			CHECK_FOR_INTERRUPTS();
			for (i = 0; i < nlines; i++)
				if (lines[i].index == rl->index)
					l = &lines[i];
			if (l == NULL)
				request_error(psprintf("lines[%d].index", k),
							  "names no line of purchase \"%s\" (it has %d).",
							  req->purchase, nlines);
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
	for (i = 0; i < nlines; i++)
	{
		RefundLine *l = &lines[i];

		l->money_now = l->qty_now > 0 ?
			cumulative(l->total, l->qty, l->refunded_qty, l->qty_now, l->refunded_total, 1) : 0;
		money += l->money_now;
		if (l->refunded_qty + l->qty_now < l->qty)
			full = false;
	}
	{
		bool		any = false;

		for (i = 0; i < nlines; i++)
			any = any || lines[i].qty_now > 0;
		if (!any)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_REFUND_EXCEEDS),
					 errmsg("refund exceeds what is left of the purchase"),
					 errdetail("Purchase \"%s\" was already refunded in full.", req->purchase)));
	}

	/* gift certificates sold by the refunded units are voided (issue 14 item 3) */
	{
		int		   *idx = palloc(sizeof(int) * Max(nlines, 1));
		int64	   *qty = palloc(sizeof(int64) * Max(nlines, 1));
		int			m = 0;

		for (i = 0; i < nlines; i++)
			if (lines[i].qty_now > 0)
			{
				idx[m] = lines[i].index;
				qty[m++] = lines[i].qty_now;
			}
		voided = coupons_refund_sold(req->purchase, m, idx, qty);
	}

	/* points per line and account, read as the lines are */
	run(saved_plan(&points_plan,
					"SELECT line_index, account, earned, spent, earned_refunded, spent_refunded"
					"  FROM loyalty.purchase_line_points WHERE operation_id = $1"
					" ORDER BY line_index, account", 1, t1), v, false);
	npts = (int) SPI_processed;
	pts = palloc0(sizeof(RefundPoints) * Max(npts, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		int			idx = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[r],
													  SPI_tuptable->tupdesc, 1, &isnull));

		CHECK_FOR_INTERRUPTS();
		pts[r].line = -1;
		for (i = 0; i < nlines; i++)
			if (lines[i].index == idx)
				pts[r].line = i;
		pts[r].account = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2);
		pts[r].earned = col_scaled(r, 3, POINTS_SCALE);
		pts[r].spent = col_scaled(r, 4, POINTS_SCALE);
		pts[r].earned_refunded = col_scaled(r, 5, POINTS_SCALE);
		pts[r].spent_refunded = col_scaled(r, 6, POINTS_SCALE);
	}
	for (k = 0; k < npts; k++)
	{
		RefundLine *l;

		if (pts[k].line < 0)
			continue;
		l = &lines[pts[k].line];
		if (l->qty_now == 0)
			continue;
		pts[k].earned_now = cumulative(pts[k].earned, l->qty, l->refunded_qty, l->qty_now,
									   pts[k].earned_refunded, unit);
		pts[k].spent_now = cumulative(pts[k].spent, l->qty, l->refunded_qty, l->qty_now,
									  pts[k].spent_refunded, unit);
	}

	/* ledger: per account, reverse earned and return spent points */
	for (a = 0; a < cfg->naccounts && customer_id > 0; a++)
	{
		const char *code = cfg->accounts[a].code;
		int64		earned = 0,
					spent = 0;

		for (k = 0; k < npts; k++)
			if (strcmp(pts[k].account, code) == 0)
			{
				earned += pts[k].earned_now;
				spent += pts[k].spent_now;
			}
		/* spent points come back first, so the reversal can take them */
		if (spent > 0)
			ledger_return_spent(customer_id, code, spent, req->purchase,
								req->operation_id, at);
		if (earned > 0)
			ledger_reverse_accrual(customer_id, code, earned, req->purchase,
								   req->operation_id, at);
	}

	/*
	 * the facts: lines (money and points), purchase, refund.  A line's
	 * points object is written whole, from what was read under the
	 * purchase's lock, with this refund's points added to its refunded ones.
	 */
	jb_begin_array(&lb);
	for (i = 0; i < nlines; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (lines[i].qty_now == 0)
			continue;
		jb_begin_object(&lb);
		jb_key(&lb, "index");
		jb_int(&lb, false, lines[i].index);
		jb_key(&lb, "qty");
		jb_scaled(&lb, false, lines[i].qty_now, QTY_SCALE);
		jb_key(&lb, "amount");
		jb_money(&lb, false, lines[i].money_now);
		jb_key(&lb, "points");
		jb_begin_object(&lb);
		for (k = 0; k < npts; k++)
		{
			int64		earned_refunded = pts[k].earned_refunded + pts[k].earned_now;
			int64		spent_refunded = pts[k].spent_refunded + pts[k].spent_now;

			if (pts[k].line != i)
				continue;
			jb_key(&lb, pts[k].account);
			jb_begin_object(&lb);
			jb_key(&lb, "earned");
			jb_trimmed(&lb, false, pts[k].earned, POINTS_SCALE);
			jb_key(&lb, "spent");
			jb_trimmed(&lb, false, pts[k].spent, POINTS_SCALE);
			if (earned_refunded != 0)
			{
				jb_key(&lb, "earned_refunded");
				jb_trimmed(&lb, false, earned_refunded, POINTS_SCALE);
			}
			if (spent_refunded != 0)
			{
				jb_key(&lb, "spent_refunded");
				jb_trimmed(&lb, false, spent_refunded, POINTS_SCALE);
			}
			jb_end_object(&lb);
		}
		jb_end_object(&lb);
		jb_end_object(&lb);
	}
	jb_end_array(&lb);
	{
		Oid			t2[2] = {TEXTOID, JSONBOID};
		Oid			t3[3] = {TEXTOID, TEXTOID, JSONBOID};
		Jsonb	   *ljb = jb_finish(&lb);

		v[1] = JsonbPGetDatum(ljb);
		run(saved_plan(&update_lines_plan,
						"UPDATE loyalty.purchase_line l"
						"   SET refunded_qty = l.refunded_qty + x.qty,"
						"       refunded_total = l.refunded_total + x.amount,"
						"       points = x.points"
						"  FROM pg_catalog.jsonb_to_recordset($2) AS x(index int, qty numeric,"
						"       amount numeric, points jsonb)"
						" WHERE l.operation_id = $1 AND l.line_index = x.index", 2, t2), v, false);
		v[1] = NumericGetDatum(scaled_to_numeric(money, MONEY_SCALE));
		{
			Oid			tn[2] = {TEXTOID, NUMERICOID};

			run(saved_plan(&update_purchase_plan,
							"UPDATE loyalty.purchase SET refunded = refunded + $2"
							" WHERE operation_id = $1", 2, tn), v, false);
		}

		/* the response, which also carries the refund's facts */
		jb_begin_object(&b);
		jb_key(&b, "operation_id");
		jb_string(&b, false, req->operation_id);
		jb_key(&b, "purchase");
		jb_string(&b, false, req->purchase);
		jb_key(&b, "customer");
		if (customer_id > 0)
			jb_int(&b, false, customer_id);
		else
			jb_null(&b, false);
		jb_key(&b, "at");
		jb_string(&b, false, response_timestamp(at, tz));
		jb_key(&b, "lines");
		jb_begin_array(&b);
		for (i = 0; i < nlines; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (lines[i].qty_now == 0)
				continue;
			jb_begin_object(&b);
			jb_key(&b, "index");
			jb_int(&b, false, lines[i].index);
			jb_key(&b, "sku");
			jb_string(&b, false, lines[i].sku);
			jb_key(&b, "qty");
			jb_qty(&b, false, lines[i].qty_now);
			jb_key(&b, "amount");
			jb_money(&b, false, lines[i].money_now);
			jb_end_object(&b);
		}
		jb_end_array(&b);
		jb_key(&b, "totals");
		jb_begin_object(&b);
		jb_key(&b, "amount");
		jb_money(&b, false, money);
		jb_end_object(&b);
		jb_key(&b, "points");
		jb_begin_object(&b);
		for (k = 0; k < 2; k++)
		{
			jb_key(&b, k == 0 ? "reversed" : "returned");
			jb_begin_object(&b);
			for (a = 0; a < cfg->naccounts; a++)
			{
				int64		sum = 0;
				int			j;

				for (j = 0; j < npts; j++)
					if (strcmp(pts[j].account, cfg->accounts[a].code) == 0)
						sum += k == 0 ? pts[j].earned_now : pts[j].spent_now;
				if (sum == 0)
					continue;
				jb_key(&b, cfg->accounts[a].code);
				jb_points(&b, false, sum, cfg->points_precision);
			}
			jb_end_object(&b);
		}
		jb_end_object(&b);
		if (voided != NIL)
		{
			ListCell   *lc;

			/* the certificates the cashier takes back (not in loyalty.refund) */
			jb_key(&b, "certificates_voided");
			jb_begin_array(&b);
			foreach(lc, voided)
				jb_string(&b, true, lfirst(lc));
			jb_end_array(&b);
		}
		jb_key(&b, "full");
		jb_bool(&b, false, full);
		jb_end_object(&b);
		response = jb_finish(&b);

		v[0] = CStringGetTextDatum(req->operation_id);
		v[1] = CStringGetTextDatum(req->purchase);
		v[2] = JsonbPGetDatum(response);
		run(saved_plan(&insert_refund_plan,
						"INSERT INTO loyalty.refund (operation_id, purchase, customer_id, at,"
						" amount, lines, points_reversed, points_returned, full_refund)"
						" SELECT $1, $2, (r ->> 'customer')::int8, (r ->> 'at')::timestamptz,"
						"        (r -> 'totals' ->> 'amount')::numeric, r -> 'lines',"
						"        r -> 'points' -> 'reversed', r -> 'points' -> 'returned',"
						"        (r ->> 'full')::boolean"
						"   FROM (SELECT $3 AS r) AS x", 3, t3), v, false);
	}
	coupons_refund(req->purchase, req->operation_id, full, server_now);
	if (full)
		check_release_uses(cfg, customer_id, counted, ncounted,
						   customer_counted, ncustomer_counted);
	operation_finish(req->operation_id, customer_id, response);

	stored = MemoryContextAlloc(outer, VARSIZE(response));
	memcpy(stored, response, VARSIZE(response));
	SPI_finish();
	PG_RETURN_JSONB_P(stored);
}
