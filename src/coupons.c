/*-------------------------------------------------------------------------
 *
 * coupons.c
 *	  Coupons and gift certificates in the database (SPEC section 6):
 *	  reading the codes a request brings (before the engine runs), using
 *	  them up when a purchase commits, issuing new ones, and giving them
 *	  back on a full refund.  What the codes do to a check is decided in
 *	  memory by the coupon stage (coupons_apply.c); nothing here calls the
 *	  engine.  purchase locks the rows it reads, so two concurrent
 *	  purchases can never both use a single-use code.
 *
 * Issuing is linear in the number of codes (at most a few thousand: a
 * certificate_per_amount rule issues at most its max_per_check, 1000 at
 * most): one INSERT for all of them, and the codes it wrote are found in a
 * hash table.  0.8 matched each written code by scanning the rows, which
 * took 9 s for 90,000 certificates and over 11 minutes, deaf to cancel
 * and statement_timeout, for a million (issue 14).  Every loop here whose
 * length a request or the data controls calls CHECK_FOR_INTERRUPTS.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "coupon_code.h"
#include "coupons.h"
#include "money.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

static SPIPlanPtr use_plan = NULL;
static SPIPlanPtr use_log_plan = NULL;
static SPIPlanPtr issue_plan = NULL;
static SPIPlanPtr refund_plan = NULL;
static SPIPlanPtr refund_sold_plan = NULL;

#define COUPON_COLUMNS \
	"SELECT c.code, c.promotion, c.kind, (c.value * 100)::int8," \
	" (c.balance * 100)::int8, (c.percent * 100)::int4, (c.min_total * 100)::int8," \
	" c.valid_from, c.valid_until, c.uses >= c.max_uses OR c.status = 'used'" \
	"   OR (c.kind = 'certificate' AND c.balance <= 0)," \
	" c.status = 'void'," \
	" (SELECT coalesce(m.merged_into, m.id) FROM loyalty.customer m WHERE m.id = c.customer_id)" \
	" FROM loyalty.coupon c WHERE c.code = ANY ($1)"

/* canonical_code is the code as stored: a generated code's canonical form, else upper case. */
static char *
canonical_code(const char *input)
{
	char		code[COUPON_CODE_LEN + 1];
	const char *why;
	char	   *s;

	if (coupon_code_normalize(input, code, &why))
		return pstrdup(code);
	s = pstrdup(input);
	for (char *p = s; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = *p - 'a' + 'A';
	return s;
}

/*
 * coupons_read reads the rows of every code of the request in one query,
 * locking them when the check is a purchase (FOR NO KEY UPDATE, so two
 * concurrent purchases can never both use a single-use code), into the
 * check's input: the codes as stored and their rows, for coupons_check to
 * judge.
 */
void
coupons_read(CheckInput *in)
{
	static SPIPlanPtr read_plan = NULL;
	static SPIPlanPtr read_locked_plan = NULL;
	CheckRequest *req = in->req;
	int			n = req->ncoupons;
	Datum	   *codes;
	Datum		values[1];
	Oid			types[1] = {TEXTARRAYOID};
	uint64		nrows;

	in->coupon_codes = palloc(sizeof(char *) * Max(n, 1));
	in->ncoupon_rows = 0;
	in->coupon_rows = NULL;
	if (n == 0)
		return;

	codes = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		in->coupon_codes[i] = canonical_code(req->coupons[i]);
		codes[i] = CStringGetTextDatum(in->coupon_codes[i]);
	}
	values[0] = PointerGetDatum(construct_array(codes, n, TEXTOID, -1, false, TYPALIGN_INT));
	if (req->for_purchase)
		nrows = spi_exec(saved_plan(&read_locked_plan, COUPON_COLUMNS " FOR NO KEY UPDATE OF c",
									1, types), values, NULL, false, 0);
	else
		nrows = spi_exec(saved_plan(&read_plan, COUPON_COLUMNS, 1, types),
						 values, NULL, true, 0);

	in->ncoupon_rows = (int) nrows;
	in->coupon_rows = palloc0(sizeof(CouponRow) * Max(nrows, 1));
	for (uint64 row = 0; row < nrows; row++)
	{
		CouponRow  *cr = &in->coupon_rows[row];
		char	   *kind = spi_text(row, 3, CurrentMemoryContext);

		CHECK_FOR_INTERRUPTS();
		cr->code = spi_text(row, 1, CurrentMemoryContext);
		cr->promotion = spi_text(row, 2, CurrentMemoryContext);
		cr->kind = strcmp(kind, "certificate") == 0 ? 'c'
			: strcmp(kind, "personal") == 0 ? 'u' : 'p';
		cr->has_value = !spi_isnull(row, 4);
		cr->value = spi_int8(row, 4, 0);
		cr->balance = spi_int8(row, 5, 0);
		cr->has_percent = !spi_isnull(row, 6);
		cr->percent = spi_int4(row, 6, 0);
		cr->min_total = spi_int8(row, 7, 0);
		cr->valid_from = spi_timestamptz(row, 8, 0);
		cr->has_until = !spi_isnull(row, 9);
		cr->valid_until = spi_timestamptz(row, 9, 0);
		cr->used_up = spi_bool(row, 10, false);
		cr->is_void = spi_bool(row, 11, false);
		cr->has_owner = !spi_isnull(row, 12);
		cr->owner = spi_int8(row, 12, 0);
	}
}

/*
 * coupons_assign_codes gives every coupon and certificate the check issues
 * its code(s), before the response is built: the response names them, and
 * it is stored with the operation before the coupons are written.
 */
void
coupons_assign_codes(CheckResult *r)
{
	ListCell   *lc;

	foreach(lc, r->issued)
	{
		IssuedItem *it = lfirst(lc);
		int			count = it->kind == ISSUED_CERTIFICATE ? it->count : 1;

		it->codes = NIL;
		for (int k = 0; k < count; k++)
		{
			char	   *code = palloc(COUPON_CODE_LEN + 1);

			CHECK_FOR_INTERRUPTS();
			coupon_code_generate(code);
			it->codes = lappend(it->codes, code);
		}
	}
}

/* One coupon or certificate a purchase issues. */
typedef struct IssueRow
{
	IssuedItem *item;
	char	   *code;			/* the string in item->codes */
	bool		written;
} IssueRow;

/* passes issue_all makes before giving up on colliding codes */
#define ISSUE_ATTEMPTS	8

/* An entry of the table from a code not yet written to its IssueRow. */
typedef struct PendingCode
{
	char		code[COUPON_CODE_LEN + 1];	/* the key */
	int			row;
} PendingCode;

/*
 * pending_codes returns a hash table from the code of every row not yet
 * written to the row's index.  A code two rows share (two random codes
 * alike) maps to the first: the INSERT writes it once, and the other row
 * stays pending, to get a new code.
 */
static HTAB *
pending_codes(IssueRow *rows, int nrows, int pending)
{
	HASHCTL		ctl;
	HTAB	   *h;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = COUPON_CODE_LEN + 1;
	ctl.entrysize = sizeof(PendingCode);
	ctl.hcxt = CurrentMemoryContext;
	h = hash_create("loyalty codes to issue", Max(pending, 16), &ctl,
					HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (int i = 0; i < nrows; i++)
	{
		PendingCode *e;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		if (rows[i].written)
			continue;
		e = hash_search(h, rows[i].code, HASH_ENTER, &found);
		if (!found)
			e->row = i;
	}
	return h;
}

/*
 * issue_rows lists the rows a purchase writes: one per code of every
 * issued item, in the items' order.  *nrows gets their number.
 */
static IssueRow *
issue_rows(CheckResult *r, int *nrows)
{
	IssueRow   *rows;
	ListCell   *lc;
	int			n = 0;

	foreach(lc, r->issued)
		n += list_length(((IssuedItem *) lfirst(lc))->codes);
	rows = palloc0(sizeof(IssueRow) * Max(n, 1));
	n = 0;
	foreach(lc, r->issued)
	{
		IssuedItem *it = lfirst(lc);
		ListCell   *cc;

		foreach(cc, it->codes)
		{
			CHECK_FOR_INTERRUPTS();
			rows[n].item = it;
			rows[n++].code = lfirst(cc);
		}
	}
	*nrows = n;
	return rows;
}

/*
 * issue_pass writes, in one statement, the rows not written yet (the coupon
 * table's constraints are prepared once per statement, not once per code)
 * and marks the ones written; a row whose code collided with an existing
 * one stays unwritten.  values[0..2] (customer, moment, operation) are
 * filled by the caller.  Returns how many rows are still unwritten.
 */
static int
issue_pass(CheckResult *r, IssueRow *rows, int nrows, int pending,
		   Datum *values, char *nulls)
{
	Oid			types[11] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTARRAYOID, TEXTARRAYOID,
		TEXTARRAYOID, INT4ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, TIMESTAMPTZARRAYOID,
	INT4ARRAYOID};
	Datum	   *code = palloc(sizeof(Datum) * pending);
	Datum	   *promo = palloc(sizeof(Datum) * pending);
	Datum	   *kind = palloc(sizeof(Datum) * pending);
	Datum	   *percent = palloc(sizeof(Datum) * pending);
	Datum	   *value = palloc(sizeof(Datum) * pending);
	Datum	   *min_total = palloc(sizeof(Datum) * pending);
	Datum	   *until = palloc(sizeof(Datum) * pending);
	Datum	   *line = palloc(sizeof(Datum) * pending);
	bool	   *promo_null = palloc(sizeof(bool) * pending);
	bool	   *line_null = palloc(sizeof(bool) * pending);
	bool	   *percent_null = palloc(sizeof(bool) * pending);
	bool	   *value_null = palloc(sizeof(bool) * pending);
	bool	   *until_null = palloc(sizeof(bool) * pending);
	int			dims[1];
	int			lbs[1] = {1};
	int			n = 0;
	uint64		nwritten;
	HTAB	   *unwritten;

	for (int i = 0; i < nrows; i++)
	{
		const IssuedItem *it = rows[i].item;
		bool		certificate = it->kind == ISSUED_CERTIFICATE;
		bool		is_percent = it->value.kind == DISCOUNT_PERCENT;

		CHECK_FOR_INTERRUPTS();
		if (rows[i].written)
			continue;
		code[n] = CStringGetTextDatum(rows[i].code);
		/* sold by a line (no promotion): bound to no customer */
		promo_null[n] = it->promo == NULL;
		promo[n] = promo_null[n] ? (Datum) 0 : CStringGetTextDatum(it->promo->code);
		line_null[n] = it->promo != NULL;
		line[n] = Int32GetDatum(line_null[n] ? 0 : it->line);
		kind[n] = CStringGetTextDatum(certificate ? "certificate"
									  : r->cust->identified ? "personal" : "promo");
		percent[n] = Int32GetDatum(is_percent ? it->value.percent : 0);
		percent_null[n] = !is_percent;
		value[n] = Int64GetDatum(it->value.amount);
		value_null[n] = is_percent;
		min_total[n] = Int64GetDatum(it->min_total_to_use);
		until[n] = TimestampTzGetDatum(it->valid_until);
		until_null[n] = !it->has_valid_until;
		n++;
	}
	dims[0] = n;
	values[3] = PointerGetDatum(construct_array(code, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_md_array(promo, promo_null, 1, dims, lbs,
												   TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_array(kind, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[6] = PointerGetDatum(construct_md_array(percent, percent_null, 1, dims, lbs,
												   INT4OID, 4, true, TYPALIGN_INT));
	values[7] = PointerGetDatum(construct_md_array(value, value_null, 1, dims, lbs,
												   INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[8] = PointerGetDatum(construct_array(min_total, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[9] = PointerGetDatum(construct_md_array(until, until_null, 1, dims, lbs,
												   TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
												   TYPALIGN_DOUBLE));
	values[10] = PointerGetDatum(construct_md_array(line, line_null, 1, dims, lbs,
													INT4OID, 4, true, TYPALIGN_INT));

	nwritten = spi_exec(saved_plan(&issue_plan,
								   "WITH c AS ("
								   " INSERT INTO loyalty.coupon (code, promotion, customer_id, kind,"
								   " percent, value, balance, min_total, valid_from, valid_until,"
								   " max_uses, issued_by, sold_line)"
								   " SELECT x.code, x.promotion, CASE WHEN x.sold_line IS NULL THEN $1 END,"
								   "  x.kind, round(x.percent::numeric / 100, 2),"
								   "  round(x.value::numeric / 100, 2),"
								   "  CASE WHEN x.kind = 'certificate' THEN round(x.value::numeric / 100, 2) END,"
								   "  round(x.min_total::numeric / 100, 2), $2, x.valid_until,"
								   "  CASE WHEN x.kind = 'certificate' THEN 1000000 ELSE 1 END, $3, x.sold_line"
								   " FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5),"
								   "   pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
								   "   pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11))"
								   "   WITH ORDINALITY AS x(code, promotion, kind, percent, value, min_total,"
								   "   valid_until, sold_line, n)"
								   " ORDER BY x.n"
								   " ON CONFLICT (code) DO NOTHING"
								   " RETURNING code)"
								   " SELECT code FROM c",
								   11, types),
						values, nulls, false, 0);

	/* the codes written; the others collided and get new codes */
	unwritten = pending_codes(rows, nrows, pending);
	for (uint64 k = 0; k < nwritten; k++)
	{
		char	   *written = spi_text(k, 1, CurrentMemoryContext);
		char		key[COUPON_CODE_LEN + 1];
		PendingCode *e;

		CHECK_FOR_INTERRUPTS();
		strlcpy(key, written, sizeof(key));
		e = hash_search(unwritten, key, HASH_FIND, NULL);
		if (e == NULL)
			elog(ERROR, "issued code \"%s\" is not one of the purchase's", written);
		rows[e->row].written = true;
		pending--;
		hash_search(unwritten, key, HASH_REMOVE, NULL);
	}
	hash_destroy(unwritten);
	return pending;
}

/*
 * issue_events adds a coupon_issued event per row to the batch for a known
 * customer, in the order of the rows (as SQL renders coupon_issued); a
 * certificate sold is handed over on the receipt, not announced.
 */
static void
issue_events(CheckResult *r, IssueRow *rows, int nrows, EventBatch *events)
{
	for (int i = 0; i < nrows && r->cust->identified; i++)
	{
		const IssuedItem *it = rows[i].item;
		bool		certificate = it->kind == ISSUED_CERTIFICATE;
		bool		is_percent = it->value.kind == DISCOUNT_PERCENT;
		JsonBuilder b = {0};

		CHECK_FOR_INTERRUPTS();
		if (it->promo == NULL)
			continue;
		jb_begin_object(&b);
		jb_key(&b, "code");
		jb_string(&b, false, rows[i].code);
		jb_key(&b, "kind");
		jb_string(&b, false, certificate ? "certificate" : "personal");
		jb_key(&b, "promotion");
		jb_string(&b, false, it->promo->code);
		jb_key(&b, "percent");
		if (is_percent)
			jb_scaled(&b, false, it->value.percent, 2);
		else
			jb_null(&b, false);
		jb_key(&b, "value");
		if (is_percent)
			jb_null(&b, false);
		else
			jb_money(&b, false, it->value.amount);
		jb_key(&b, "valid_until");
		if (it->has_valid_until)
			jb_timestamptz(&b, false, it->valid_until);
		else
			jb_null(&b, false);
		jb_end_object(&b);
		event_batch_add(events, "coupon_issued", jb_finish(&b));
	}
}

/*
 * issue_all writes every coupon and certificate the purchase issues, with
 * the codes coupons_assign_codes gave them (issue_pass: one statement a
 * pass), and adds a coupon_issued event each for a known customer to the
 * batch.  Codes carry 55 random bits: a collision with an existing code is
 * vanishingly rare, and only the colliding rows get new codes (in place)
 * and are written again.  Linear in the number of rows: the codes written
 * are looked up in a hash table.  Returns whether any code changed.
 */
static bool
issue_all(CheckResult *r, const char *operation_id, EventBatch *events)
{
	Datum		values[11];
	char		nulls[11] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	IssueRow   *rows;
	int			nrows;
	int			pending;
	bool		changed = false;

	rows = issue_rows(r, &nrows);
	if (nrows == 0)
		return false;

	values[0] = Int64GetDatum(r->cust->id);
	if (!r->cust->identified)
		nulls[0] = 'n';
	/* valid from the purchase's moment (a check sent late is still on time) */
	values[1] = TimestampTzGetDatum(r->at);
	values[2] = CStringGetTextDatum(operation_id);

	pending = issue_pass(r, rows, nrows, nrows, values, nulls);
	for (int attempt = 1; pending > 0; attempt++)
	{
		/*
		 * a retry: the rows not written collided, new codes for them (every
		 * pass after the first, even when every row collided)
		 */
		if (attempt == ISSUE_ATTEMPTS)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not find unused codes for the coupons a purchase issues"),
					 errdetail("%d attempts collided with existing codes.", ISSUE_ATTEMPTS)));
		changed = true;
		for (int i = 0; i < nrows; i++)
		{
			CHECK_FOR_INTERRUPTS();
			if (!rows[i].written)
				coupon_code_generate(rows[i].code);
		}
		pending = issue_pass(r, rows, nrows, pending, values, nulls);
	}
	issue_events(r, rows, nrows, events);
	return changed;
}

/*
 * coupons_commit, in a purchase: uses up the coupons and certificates the
 * check applied (coupons_use) and issues what the promotions print, with
 * the codes coupons_assign_codes gave them (their coupon_issued events go
 * to the batch).  Returns true when a code collided and was replaced (the
 * response must be built again).
 */
bool
coupons_commit(CheckResult *r, const char *operation_id, EventBatch *events)
{
	coupons_use(r, operation_id);
	return issue_all(r, operation_id, events);
}

/*
 * coupons_use uses up the coupons and certificates the check applied (rows
 * locked since coupons_read), logged in coupon_use under operation_id: a
 * purchase's, or an order hold's (coupons_refund of the hold gives them
 * back).
 */
void
coupons_use(CheckResult *r, const char *operation_id)
{
	uint64		nrows;

	for (int i = 0; i < r->ncoupons; i++)
	{
		CouponStatus *c = &r->coupons[i];
		Oid			types[2] = {TEXTOID, INT8OID};
		Datum		values[2] = {CStringGetTextDatum(c->code), Int64GetDatum(c->amount)};
		Oid			ltypes[5] = {TEXTOID, TEXTOID, INT8OID, INT8OID, TIMESTAMPTZOID};
		Datum		lvalues[5];
		char		lnulls[5] = {' ', ' ', ' ', ' ', ' '};

		CHECK_FOR_INTERRUPTS();
		if (!c->applied)
			continue;
		nrows = spi_exec(saved_plan(&use_plan,
									"UPDATE loyalty.coupon SET uses = uses + 1,"
									" balance = CASE WHEN kind = 'certificate'"
									"                THEN round(balance - $2::numeric / 100, 2) ELSE balance END,"
									" status = CASE WHEN kind = 'certificate' AND balance * 100 - $2 <= 0"
									"                 OR kind <> 'certificate' AND uses + 1 >= max_uses"
									"               THEN 'used' ELSE status END"
									" WHERE code = $1 AND status = 'active' AND uses < max_uses"
									"   AND (kind <> 'certificate' OR balance * 100 >= $2)",
									2, types),
						 values, NULL, false, 0);
		if (nrows != 1)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("coupon \"%s\" was used by another purchase", c->code),
					 errhint("Send the purchase again.")));

		lvalues[0] = values[0];
		lvalues[1] = CStringGetTextDatum(operation_id);
		lvalues[2] = Int64GetDatum(r->cust->id);
		if (!r->cust->identified)
			lnulls[2] = 'n';
		lvalues[3] = Int64GetDatum(c->amount);
		lvalues[4] = TimestampTzGetDatum(r->at);
		spi_exec(saved_plan(&use_log_plan,
							"INSERT INTO loyalty.coupon_use (code, operation_id, customer_id,"
							" amount, at) VALUES ($1, $2, $3, $4::numeric / 100, $5)",
							5, ltypes),
				 lvalues, lnulls, false, 0);
	}
}

/*
 * coupons_refund, on a full refund: the coupons the purchase used come back
 * if still valid at the server's time (a certificate gets its money back),
 * and what the purchase issued is voided if nobody used it yet.
 */
void
coupons_refund(const char *purchase_operation_id, const char *operation_id,
			   bool full, TimestampTz server_now)
{
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];

	if (!full)
		return;
	values[0] = CStringGetTextDatum(purchase_operation_id);
	values[1] = CStringGetTextDatum(operation_id);
	values[2] = TimestampTzGetDatum(server_now);
	spi_exec(saved_plan(&refund_plan,
						"WITH used AS ("
						"  SELECT u.code, u.amount, u.customer_id FROM loyalty.coupon_use u"
						"   WHERE u.operation_id = $1"
						"), restored AS ("
						"  UPDATE loyalty.coupon c SET uses = c.uses - 1, status = 'active',"
						"         balance = CASE WHEN c.kind = 'certificate'"
						"                        THEN c.balance + u.amount ELSE c.balance END"
						"    FROM used u"
						"   WHERE c.code = u.code AND c.status <> 'void'"
						"     AND (c.valid_until IS NULL OR c.valid_until > $3)"
						"  RETURNING c.code, u.amount, u.customer_id"
						"), logged AS ("
						"  INSERT INTO loyalty.coupon_use (code, operation_id, customer_id, amount, at)"
						"  SELECT code, $2, customer_id, -amount, $3 FROM restored"
						") UPDATE loyalty.coupon SET status = 'void'"
						"   WHERE issued_by = $1 AND uses = 0 AND status = 'active'",
						3, types),
			 values, NULL, false, 0);
}

/*
 * coupons_refund_sold voids, for each refunded line (line_index[k], qty[k]
 * thousandths refunded now), one unused certificate per unit that the
 * line sold (a line of a certificate product), the lowest codes first, and
 * returns the voided codes (the cashier takes those certificates back).
 * A certificate already spent, even in part, is money gone: when a line
 * has fewer unused certificates than units to refund, the refund fails
 * with LY005.  The UPDATE re-checks "unused" on the row's latest version,
 * so a certificate spent by a concurrent purchase is never voided.
 */
List *
coupons_refund_sold(const char *purchase_operation_id, int n,
					const int *line_index, const int64 *qty)
{
	Oid			types[3] = {TEXTOID, INT4ARRAYOID, INT8ARRAYOID};
	Datum		values[3];
	Datum	   *lines = palloc(sizeof(Datum) * Max(n, 1));
	Datum	   *units = palloc(sizeof(Datum) * Max(n, 1));
	List	   *voided = NIL;
	uint64		nrows;
	uint64		row;

	if (n == 0)
		return NIL;
	for (int k = 0; k < n; k++)
	{
		lines[k] = Int32GetDatum(line_index[k]);
		units[k] = Int64GetDatum(qty[k] / QTY_ONE);
	}
	values[0] = CStringGetTextDatum(purchase_operation_id);
	values[1] = PointerGetDatum(construct_array(lines, n, INT4OID, 4, true, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(units, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	nrows = spi_exec(saved_plan(&refund_sold_plan,
								"WITH want AS ("
								"  SELECT x.line, x.units"
								"    FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3))"
								"         AS x(line, units)"
								"), sold AS ("
								"  SELECT c.code, c.sold_line, c.status = 'active' AND c.uses = 0 AS unused,"
								"         pg_catalog.row_number() OVER (PARTITION BY c.sold_line,"
								"           c.status = 'active' AND c.uses = 0 ORDER BY c.code) AS n"
								"    FROM loyalty.coupon c JOIN want w ON w.line = c.sold_line"
								"   WHERE c.issued_by = $1"
								"), voided AS ("
								"  UPDATE loyalty.coupon c SET status = 'void'"
								"    FROM sold s JOIN want w ON w.line = s.sold_line"
								"   WHERE c.code = s.code AND s.unused AND s.n <= w.units"
								"     AND c.status = 'active' AND c.uses = 0"
								"  RETURNING c.code, c.sold_line"
								")"
								" SELECT w.line, w.units,"
								"        (SELECT count(*) FROM sold s WHERE s.sold_line = w.line),"
								"        (SELECT count(*) FROM voided v WHERE v.sold_line = w.line),"
								"        ARRAY(SELECT v.code FROM voided v WHERE v.sold_line = w.line"
								"               ORDER BY v.code)"
								"   FROM want w ORDER BY w.line",
								3, types),
					 values, NULL, false, 0);

	for (row = 0; row < nrows; row++)
	{
		int32		line = spi_int4(row, 1, 0);
		int64		want = spi_int8(row, 2, 0);
		int64		sold = spi_int8(row, 3, 0);
		int64		done = spi_int8(row, 4, 0);
		char	  **codes;
		int			nelems;

		CHECK_FOR_INTERRUPTS();
		if (sold == 0)
			continue;			/* goods, not certificates */
		for (int k = 0; k < n; k++)
			if (line_index[k] == line && qty[k] % QTY_ONE != 0)
				request_error("lines",
							  "must refund whole units of line %d: each unit is a gift certificate.",
							  line);
		if (done < want)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_REFUND_EXCEEDS),
					 errmsg("refund exceeds what is left of the purchase"),
					 errdetail("Line %d sold " INT64_FORMAT " gift certificate(s); the refund asks for " INT64_FORMAT ", but only " INT64_FORMAT " are unused.",
							   line, sold, want, done),
					 errhint("A certificate already spent, even in part, is not refunded; refund the other lines by index.")));
		codes = spi_text_array(row, 5, CurrentMemoryContext, &nelems);
		for (int k = 0; k < nelems; k++)
			voided = lappend(voided, codes[k]);
	}
	return voided;
}
