/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  The points ledger's primitives: lock a customer, read balances, spend
 *	  (FEFO), accrue (paying debt first), reverse an accrual, return spent
 *	  points, expire due lots.  Which lots a priced check's points become
 *	  is accrual.c's (it knows the check; the ledger does not).
 *
 * Every movement is a set-based SQL statement run through a saved SPI plan:
 * one statement per primitive in the common case, whatever the number of
 * lots it touches.  Lots hold numeric points at the SQL surface; C passes
 * int64 hundredths and converts with trim_scale(x / 100) and (x * 100)::int8.
 *
 * Concurrency: writers lock the customer row (FOR NO KEY UPDATE, which does
 * not conflict with foreign-key checks) before reading lots, and read them
 * with a snapshot taken after the lock, so a customer's balance can never
 * be spent twice.  The expiry batch locks customers with SKIP LOCKED and so
 * never waits for a check.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "events.h"
#include "ledger.h"
#include "money.h"
#include "operation_id.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

/* saved plans, prepared on first use */
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr balances_plan = NULL;
static SPIPlanPtr spend_plan = NULL;
static SPIPlanPtr accrue_plan = NULL;
static SPIPlanPtr reverse_plan = NULL;
static SPIPlanPtr debt_plan = NULL;
static SPIPlanPtr return_plan = NULL;
static SPIPlanPtr settle_plan = NULL;
static SPIPlanPtr expire_due_plan = NULL;
static SPIPlanPtr expire_plan = NULL;
static SPIPlanPtr expire_operation_plan = NULL;
static SPIPlanPtr release_plan = NULL;

/* points (hundredths) -> numeric points, and back */
#define PTS_IN(p)	"pg_catalog.trim_scale(" p "::numeric / 100)"
#define PTS_OUT(p)	"((" p ") * 100)::int8"

/*
 * points_text prints hundredths of a point as points: "451" for whole
 * points, "12.34" otherwise.
 */
static char *
points_text(int64 points)
{
	if (points % 100 == 0)
		return psprintf(INT64_FORMAT, points / 100);
	return scaled_to_cstring(points, POINTS_SCALE);
}

/*
 * movement_args fills the parameters every movement statement shares: $1
 * customer, $2 account, $3 points (hundredths), $4 at, $5 operation_id and,
 * when ref is given, $6 the operation being reversed or returned.
 */
static void
movement_args(Datum *values, int64 customer_id, const char *account,
			  int64 points, TimestampTz at, const char *operation_id,
			  const char *ref)
{
	values[0] = Int64GetDatum(customer_id);
	values[1] = CStringGetTextDatum(account);
	values[2] = Int64GetDatum(points);
	values[3] = TimestampTzGetDatum(at);
	values[4] = CStringGetTextDatum(operation_id);
	if (ref != NULL)
		values[5] = CStringGetTextDatum(ref);
}

/*
 * take_with_retry runs a statement that takes points from lots (spending,
 * reversing) for "points", then again for whatever a lot emptied by a
 * concurrent expiry left untaken, with a new snapshot each time; returns
 * what was taken.  values[2] ($3) is the number of points asked.
 */
static int64
take_with_retry(SPIPlanPtr plan, Datum *values, int64 points)
{
	int64		taken = 0;

	for (int attempt = 0; attempt < 3 && taken < points; attempt++)
	{
		int64		got;

		values[2] = Int64GetDatum(points - taken);
		got = spi_exec(plan, values, NULL, false, 0) > 0 ? spi_int8(0, 1, 0) : 0;
		if (got == 0)
			break;
		taken += got;
	}
	return taken;
}

/*
 * ledger_lock_customer locks the customer's row until the end of the
 * transaction; LY001 when there is no such customer.
 */
void
ledger_lock_customer(int64 customer_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(customer_id)};
	SPIPlanPtr	plan;

	plan = saved_plan(&lock_plan,
					   "SELECT 1 FROM loyalty.customer WHERE id = $1 FOR NO KEY UPDATE",
					   1, types);
	if (spi_exec(plan, values, NULL, false, 0) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND),
				 errmsg("customer %lld not found", (long long) customer_id)));
}

/*
 * ledger_lock_survivor locks the customer's row and, when a merge absorbed
 * the customer while this waited for it, the survivor's, the way a purchase
 * follows a merge (check_customer_locked); returns the customer locked last.
 */
int64
ledger_lock_survivor(int64 customer_id)
{
	static SPIPlanPtr survivor_plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		values[1];
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		values[0] = Int64GetDatum(customer_id);
		if (spi_exec(saved_plan(&survivor_plan,
								"SELECT merged_into FROM loyalty.customer WHERE id = $1"
								"   FOR NO KEY UPDATE",
								1, types),
					 values, NULL, false, 0) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND),
					 errmsg("customer %lld not found", (long long) customer_id)));
		if (spi_isnull(0, 1))
			return customer_id;
		customer_id = spi_int8(0, 1, 0);
	}
}

/*
 * ledger_balances_result fills balances[i] for accounts[i] from rows 0 to
 * nrows - 1 of the last SPI result, whose columns col to col + 3 are
 * LEDGER_BALANCE_ROWS' (see ledger.h); a row without an account (NULL: the
 * customer holds no open lot) is passed over.  Accounts without a row hold
 * nothing.
 */
void
ledger_balances_result(uint64 nrows, int col, int naccounts,
					   const char *const *accounts, LedgerBalance *balances)
{
	uint64		row;
	int			i;

	for (i = 0; i < naccounts; i++)
	{
		balances[i].available = balances[i].pending = 0;
		balances[i].in_debt = false;
	}
	for (row = 0; row < nrows; row++)
	{
		char	   *account;

		CHECK_FOR_INTERRUPTS();
		if (spi_isnull(row, col))
			continue;
		account = spi_text(row, col, CurrentMemoryContext);
		for (i = 0; i < naccounts; i++)
		{
			if (strcmp(accounts[i], account) == 0)
			{
				balances[i].available = spi_int8(row, col + 1, 0);
				balances[i].pending = spi_int8(row, col + 2, 0);
				balances[i].in_debt = spi_bool(row, col + 3, false);
				break;
			}
		}
	}
}

/*
 * ledger_balances reads every requested account's available and pending
 * points as of "at" in one query.
 */
void
ledger_balances(int64 customer_id, TimestampTz at, int naccounts,
				const char *const *accounts, LedgerBalance *balances)
{
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		values[2];
	uint64		nrows;

	if (naccounts == 0)
		return;
	values[0] = Int64GetDatum(customer_id);
	values[1] = TimestampTzGetDatum(at);
	nrows = spi_exec(saved_plan(&balances_plan, LEDGER_BALANCE_ROWS("$1", "$2"), 2, types),
					 values, NULL, false, 0);
	ledger_balances_result(nrows, 1, naccounts, accounts, balances);
}

/*
 * ledger_spend takes points from the account's lots available at as_of,
 * first expiring first (no expiry last), then oldest, in one statement;
 * LY004 when they hold fewer than asked.
 */
void
ledger_spend(int64 customer_id, const char *account, int64 points,
			 const char *operation_id, TimestampTz at, TimestampTz as_of)
{
	ledger_spend_kind(customer_id, account, points, operation_id, at, as_of,
					  "spend");
}

/*
 * ledger_spend_kind is ledger_spend with the kind of the entries written:
 * "spend" for purchases, "adjust" for manual debits.
 */
void
ledger_spend_kind(int64 customer_id, const char *account, int64 points,
				  const char *operation_id, TimestampTz at, TimestampTz as_of,
				  const char *kind)
{
	Oid			types[7] = {INT8OID, TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID,
	TIMESTAMPTZOID};
	Datum		values[7];
	SPIPlanPtr	plan;
	int64		taken;

	if (points <= 0)
		return;

	/*
	 * The update takes from a lot only what it still holds: the expiry job
	 * does not lock customers, so it may have emptied a lot since this
	 * statement's snapshot.  What such a race leaves untaken is asked of the
	 * next lots, with a new snapshot; with nothing left, LY004.
	 */
	plan = saved_plan(&spend_plan,
					   "WITH c AS ("
					   "  SELECT l.id, " PTS_OUT("l.remaining") " AS rem,"
					   "         sum(" PTS_OUT("l.remaining") ") OVER"
					   "           (ORDER BY l.expires_at NULLS LAST, l.earned_at, l.id) AS running"
					   "    FROM loyalty.lot l"
					   "   WHERE l.customer_id = $1 AND l.account = $2 AND l.remaining > 0"
					   "     AND l.available_at <= $7 AND (l.expires_at IS NULL OR l.expires_at > $7)"
					   "), take AS ("
					   "  SELECT c.id, least(c.rem, $3 - (c.running - c.rem)) AS x"
					   "    FROM c WHERE c.running - c.rem < $3"
					   "), upd AS ("
					   "  UPDATE loyalty.lot l SET remaining = l.remaining - " PTS_IN("t.x")
					   "    FROM take t WHERE l.id = t.id AND " PTS_OUT("l.remaining") " >= t.x"
					   "  RETURNING l.id, t.x"
					   "), ins AS ("
					   "  INSERT INTO loyalty.ledger_entry"
					   "         (customer_id, account, lot_id, operation_id, kind, points, at)"
					   "  SELECT $1, $2, u.id, $5, $6, -" PTS_IN("u.x") ", $4 FROM upd u"
					   "  RETURNING points"
					   ") SELECT " PTS_OUT("coalesce(-sum(points), 0)") " FROM ins",
					   7, types);
	movement_args(values, customer_id, account, points, at, operation_id, kind);
	values[6] = TimestampTzGetDatum(as_of);
	taken = take_with_retry(plan, values, points);

	if (taken < points)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INSUFFICIENT_POINTS),
				 errmsg("not enough points in account \"%s\"", account),
				 errdetail("Asked for %s, the account holds %s available.",
						   points_text(points),
						   points_text(taken))));
}

/*
 * ledger_accrue credits points earned by a purchase: any debt of the
 * account is paid first, the rest becomes a new lot.
 */
void
ledger_accrue(int64 customer_id, const char *account, int64 points,
			  const char *operation_id, TimestampTz at,
			  TimestampTz available_at, TimestampTz expires_at)
{
	ledger_accrue_kind(customer_id, account, points, operation_id, at,
					   available_at, expires_at, "earn");
}

/*
 * ledger_accrue_kind is ledger_accrue with the kind of the lot's first
 * entry: "earn" for purchases, "adjust" for manual grants.
 */
void
ledger_accrue_kind(int64 customer_id, const char *account, int64 points,
				   const char *operation_id, TimestampTz at,
				   TimestampTz available_at, TimestampTz expires_at,
				   const char *kind)
{
	ledger_accrue_event(customer_id, account, points, operation_id, at,
						available_at, expires_at, kind, "points_earned");
}

/*
 * ledger_accrue_event is ledger_accrue_kind with the kind of the event it
 * writes (event points have their own, event_points.c).  One statement
 * pays debt, creates the lot, writes the entries and the event.
 */
void
ledger_accrue_event(int64 customer_id, const char *account, int64 points,
					const char *operation_id, TimestampTz at,
					TimestampTz available_at, TimestampTz expires_at,
					const char *kind, const char *event_kind)
{
	Oid			types[9] = {INT8OID, TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTOID};
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	SPIPlanPtr	plan;

	if (points <= 0)
		return;
	plan = saved_plan(&accrue_plan,
					   "WITH debt AS ("
					   "  SELECT l.id, " PTS_OUT("-l.remaining") " AS owed,"
					   "         sum(" PTS_OUT("-l.remaining") ") OVER (ORDER BY l.id) AS running"
					   "    FROM loyalty.lot l"
					   "   WHERE l.customer_id = $1 AND l.account = $2 AND l.remaining < 0"
					   "), pay AS ("
					   "  SELECT d.id, least(d.owed, $3 - (d.running - d.owed)) AS x"
					   "    FROM debt d WHERE d.running - d.owed < $3"
					   "), repaid AS ("
					   "  UPDATE loyalty.lot l SET remaining = l.remaining + " PTS_IN("p.x")
					   "    FROM pay p WHERE l.id = p.id RETURNING l.id, p.x"
					   "), repay_entries AS ("
					   "  INSERT INTO loyalty.ledger_entry"
					   "         (customer_id, account, lot_id, operation_id, kind, points, at)"
					   "  SELECT $1, $2, r.id, $5, 'repay', " PTS_IN("r.x") ", $4 FROM repaid r"
					   "), rest AS ("
					   "  SELECT " PTS_IN("($3 - coalesce((SELECT sum(p.x) FROM pay p), 0))") " AS v"
					   "), new_lot AS ("
					   "  INSERT INTO loyalty.lot (customer_id, account, amount, remaining,"
					   "         earned_at, available_at, expires_at, operation_id, announced_at)"
					   "  SELECT $1, $2, r.v, r.v, $4, $6, $7, $5,"
					   "         CASE WHEN $6 <= $4 THEN $4 END FROM rest r WHERE r.v > 0"
					   "  RETURNING id, amount"
					   "), earn_entry AS ("
					   "  INSERT INTO loyalty.ledger_entry"
					   "         (customer_id, account, lot_id, operation_id, kind, points, at)"
					   "  SELECT $1, $2, n.id, $5, $8, n.amount, $4 FROM new_lot n"
					   ") INSERT INTO loyalty.event (customer_id, kind, payload)"
					   "  VALUES ($1, $9, pg_catalog.jsonb_build_object("
					   "    'account', $2, 'points', " PTS_IN("$3") ", 'operation_id', $5,"
					   "    'available_at', $6, 'expires_at', $7))",
					   9, types);
	movement_args(values, customer_id, account, points, at, operation_id, NULL);
	values[5] = TimestampTzGetDatum(available_at);
	values[6] = TimestampTzGetDatum(expires_at);
	if (TIMESTAMP_IS_NOEND(expires_at))
		nulls[6] = 'n';
	values[7] = CStringGetTextDatum(kind);
	values[8] = CStringGetTextDatum(event_kind);
	(void) spi_exec(plan, values, nulls, false, 0);
}

/* ledger_accrue_lots: see ledger.h. */
void
ledger_accrue_lots(int64 customer_id, const AccrualLot *lots, int n,
				   const char *operation_id, TimestampTz at, EventBatch *events)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[7] = {INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		values[7];
	Datum	   *account = palloc(sizeof(Datum) * n);
	Datum	   *points = palloc(sizeof(Datum) * n);
	Datum	   *available = palloc(sizeof(Datum) * n);
	Datum	   *expires = palloc(sizeof(Datum) * n);
	bool	   *expires_null = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	int			i;

	if (n <= 0)
		return;
	for (i = 0; i < n; i++)
	{
		Assert(lots[i].points > 0);
		account[i] = CStringGetTextDatum(lots[i].account);
		points[i] = Int64GetDatum(lots[i].points);
		available[i] = TimestampTzGetDatum(lots[i].available_at);
		expires[i] = TimestampTzGetDatum(lots[i].expires_at);
		expires_null[i] = TIMESTAMP_IS_NOEND(lots[i].expires_at);
	}
	values[0] = Int64GetDatum(customer_id);
	values[1] = TimestampTzGetDatum(at);
	values[2] = CStringGetTextDatum(operation_id);
	values[3] = PointerGetDatum(construct_array(account, n, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(points, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[5] = PointerGetDatum(construct_array(available, n, TIMESTAMPTZOID, 8,
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[6] = PointerGetDatum(construct_md_array(expires, expires_null, 1, dims, lbs,
												   TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
												   TYPALIGN_DOUBLE));
	(void) spi_exec(saved_plan(&plan,
						   "WITH new_lot AS ("
						   "  INSERT INTO loyalty.lot (customer_id, account, amount, remaining,"
						   "         earned_at, available_at, expires_at, operation_id, announced_at)"
						   "  SELECT $1, x.account, " PTS_IN("x.points") ", " PTS_IN("x.points") ","
						   "         $2, x.available_at, x.expires_at, $3,"
						   "         CASE WHEN x.available_at <= $2 THEN $2 END"
						   "    FROM ROWS FROM (pg_catalog.unnest($4), pg_catalog.unnest($5),"
						   "         pg_catalog.unnest($6), pg_catalog.unnest($7)) WITH ORDINALITY"
						   "         AS x(account, points, available_at, expires_at, n)"
						   "   ORDER BY x.n"
						   "  RETURNING id, account, amount"
						   ") INSERT INTO loyalty.ledger_entry"
						   "         (customer_id, account, lot_id, operation_id, kind, points, at)"
						   "  SELECT $1, n.account, n.id, $3, 'earn', n.amount, $2 FROM new_lot n ORDER BY n.id",
						   7, types),
				values, NULL, false, 0);

	/* a points_earned event per lot, as ledger_accrue writes it */
	for (i = 0; i < n; i++)
	{
		JsonBuilder b = {0};

		CHECK_FOR_INTERRUPTS();
		jb_begin_object(&b);
		jb_key(&b, "account");
		jb_string(&b, false, lots[i].account);
		jb_key(&b, "points");
		jb_trimmed(&b, false, lots[i].points, POINTS_SCALE);
		jb_key(&b, "operation_id");
		jb_string(&b, false, operation_id);
		jb_key(&b, "available_at");
		jb_timestamptz(&b, false, lots[i].available_at);
		jb_key(&b, "expires_at");
		jb_timestamptz(&b, false, lots[i].expires_at);
		jb_end_object(&b);
		event_batch_add(events, "points_earned", jb_finish(&b));
	}
}

/*
 * ledger_reverse_accrual takes back points a purchase earned: from the
 * purchase's own lots first, then from the account's other lots first
 * expiring first; what is missing becomes a debt lot that later accruals
 * pay off.
 */
void
ledger_reverse_accrual(int64 customer_id, const char *account, int64 points,
					   const char *purchase_operation_id,
					   const char *operation_id, TimestampTz at)
{
	Oid			types[6] = {INT8OID, TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID};
	Datum		values[6];
	SPIPlanPtr	plan;
	int64		taken;

	if (points <= 0)
		return;
	movement_args(values, customer_id, account, points, at, operation_id,
				  purchase_operation_id);

	plan = saved_plan(&reverse_plan,
					   "WITH c AS ("
					   "  SELECT l.id, " PTS_OUT("l.remaining") " AS rem,"
					   "         sum(" PTS_OUT("l.remaining") ") OVER"
					   "           (ORDER BY l.operation_id = $6 DESC, l.expires_at NULLS LAST,"
					   "                     l.earned_at, l.id) AS running"
					   "    FROM loyalty.lot l"
					   "   WHERE l.customer_id = $1 AND l.account = $2 AND l.remaining > 0"
					   "), take AS ("
					   "  SELECT c.id, least(c.rem, $3 - (c.running - c.rem)) AS x"
					   "    FROM c WHERE c.running - c.rem < $3"
					   "), upd AS ("
					   "  UPDATE loyalty.lot l SET remaining = l.remaining - " PTS_IN("t.x")
					   "    FROM take t WHERE l.id = t.id AND " PTS_OUT("l.remaining") " >= t.x"
					   "  RETURNING l.id, t.x"
					   "), ins AS ("
					   "  INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id,"
					   "         operation_id, ref_operation_id, kind, points, at)"
					   "  SELECT $1, $2, u.id, $5, $6, 'reverse', -" PTS_IN("u.x") ", $4 FROM upd u"
					   "  RETURNING points"
					   ") SELECT " PTS_OUT("coalesce(-sum(points), 0)") " FROM ins",
					   6, types);
	/* as in spending, a lot emptied by a concurrent expiry is retried */
	taken = take_with_retry(plan, values, points);
	if (taken >= points)
		return;

	/* the customer already spent them: the rest is owed */
	values[2] = Int64GetDatum(points - taken);
	plan = saved_plan(&debt_plan,
					   "WITH debt AS ("
					   "  INSERT INTO loyalty.lot (customer_id, account, amount, remaining,"
					   "         earned_at, available_at, expires_at, operation_id)"
					   "  VALUES ($1, $2, -" PTS_IN("$3") ", -" PTS_IN("$3") ", $4, $4, NULL, $5)"
					   "  RETURNING id, amount"
					   ") INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id,"
					   "         operation_id, ref_operation_id, kind, points, at)"
					   "  SELECT $1, $2, d.id, $5, $6, 'debt', d.amount, $4 FROM debt d",
					   6, types);
	(void) spi_exec(plan, values, NULL, false, 0);
}

/*
 * settle_debt pays an account's debt from its positive lots (first expiring
 * first), so that a debt is never held next to points: what refunds gave
 * back while a debt was open pays it at once.  values are the movement
 * arguments ($1 customer, $2 account, $4 at, $5 operation_id).  One
 * statement; nothing happens when there is no debt.
 */
static void
settle_debt(Datum *values)
{
	Oid			types[6] = {INT8OID, TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID};
	SPIPlanPtr	plan;

	plan = saved_plan(&settle_plan,
					   "WITH debt AS ("
					   "  SELECT l.id, " PTS_OUT("-l.remaining") " AS owed,"
					   "         sum(" PTS_OUT("-l.remaining") ") OVER (ORDER BY l.id) AS running"
					   "    FROM loyalty.lot l"
					   "   WHERE l.customer_id = $1 AND l.account = $2 AND l.remaining < 0"
					   "), owed AS (SELECT coalesce(sum(d.owed), 0) AS total FROM debt d"
					   "), pos AS ("
					   "  SELECT l.id, " PTS_OUT("l.remaining") " AS rem,"
					   "         sum(" PTS_OUT("l.remaining") ") OVER"
					   "           (ORDER BY l.expires_at NULLS LAST, l.earned_at, l.id) AS running"
					   "    FROM loyalty.lot l"
					   "   WHERE l.customer_id = $1 AND l.account = $2 AND l.remaining > 0"
					   "     AND EXISTS (SELECT 1 FROM debt)"
					   "), takes AS ("
					   "  SELECT p.id, least(p.rem, o.total - (p.running - p.rem)) AS x"
					   "    FROM pos p, owed o WHERE p.running - p.rem < o.total"
					   "), paid AS (SELECT coalesce(sum(t.x), 0) AS total FROM takes t"
					   "), pays AS ("
					   "  SELECT d.id, least(d.owed, p.total - (d.running - d.owed)) AS x"
					   "    FROM debt d, paid p WHERE d.running - d.owed < p.total"
					   "), from_points AS ("
					   "  UPDATE loyalty.lot l SET remaining = l.remaining - " PTS_IN("t.x")
					   "    FROM takes t WHERE l.id = t.id RETURNING l.id, -t.x AS x"
					   "), to_debt AS ("
					   "  UPDATE loyalty.lot l SET remaining = l.remaining + " PTS_IN("p.x")
					   "    FROM pays p WHERE l.id = p.id RETURNING l.id, p.x"
					   ") INSERT INTO loyalty.ledger_entry"
					   "         (customer_id, account, lot_id, operation_id, kind, points, at)"
					   "  SELECT $1, $2, m.id, $5, 'repay', " PTS_IN("m.x") ", $4"
					   "    FROM (SELECT * FROM from_points UNION ALL SELECT * FROM to_debt) m",
					   6, types);
	(void) spi_exec(plan, values, NULL, false, 0);
}

/*
 * ledger_return_spent gives back points a purchase spent, to the lots they
 * came from (latest expiring first), so they keep their original expiry.
 * Asking for more than the purchase spent and has not had back yet is a
 * bug of the caller.
 */
void
ledger_return_spent(int64 customer_id, const char *account, int64 points,
					const char *purchase_operation_id,
					const char *operation_id, TimestampTz at)
{
	Oid			types[6] = {INT8OID, TEXTOID, INT8OID, TIMESTAMPTZOID, TEXTOID, TEXTOID};
	Datum		values[6];
	SPIPlanPtr	plan;
	int64		returned;

	if (points <= 0)
		return;
	plan = saved_plan(&return_plan,
					   "WITH spent AS ("
					   "  SELECT e.lot_id, " PTS_OUT("-sum(e.points)") " AS open"
					   "    FROM loyalty.ledger_entry e"
					   "   WHERE e.customer_id = $1 AND e.account = $2"
					   "     AND (e.operation_id = $6 AND e.kind = 'spend'"
					   "          OR e.ref_operation_id = $6 AND e.kind = 'return')"
					   "   GROUP BY e.lot_id HAVING -sum(e.points) > 0"
					   "), c AS ("
					   "  SELECT s.lot_id AS id, s.open,"
					   "         sum(s.open) OVER (ORDER BY l.expires_at DESC NULLS FIRST, l.id DESC)"
					   "           AS running"
					   "    FROM spent s JOIN loyalty.lot l ON l.id = s.lot_id"
					   "), give AS ("
					   "  SELECT c.id, least(c.open, $3 - (c.running - c.open)) AS x"
					   "    FROM c WHERE c.running - c.open < $3"
					   "), upd AS ("
					   "  UPDATE loyalty.lot l SET remaining = l.remaining + " PTS_IN("g.x")
					   "    FROM give g WHERE l.id = g.id RETURNING l.id, g.x"
					   "), ins AS ("
					   "  INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id,"
					   "         operation_id, ref_operation_id, kind, points, at)"
					   "  SELECT $1, $2, u.id, $5, $6, 'return', " PTS_IN("u.x") ", $4 FROM upd u"
					   "  RETURNING points"
					   ") SELECT " PTS_OUT("coalesce(sum(points), 0)") " FROM ins",
					   6, types);
	movement_args(values, customer_id, account, points, at, operation_id,
				  purchase_operation_id);
	returned = spi_exec(plan, values, NULL, false, 0) > 0 ? spi_int8(0, 1, 0) : 0;
	if (returned == points)
		settle_debt(values);
	if (returned != points)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("cannot return %s points to account \"%s\" of purchase \"%s\"",
						points_text(points), account,
						purchase_operation_id),
				 errdetail("The purchase has %s spent points not yet returned.",
						   points_text(returned))));
}

/*
 * ledger_release_held gives back every point an order hold (entries of
 * kind "hold" under hold_operation_id) still holds, in every account, to
 * the lots it was held on, so they keep their expiry: one "release" entry
 * per lot under operation_id, referencing the hold.  A lot that expired
 * during the hold gets its points back expired: the next expiry run takes
 * them, and no check can spend them meanwhile.  Returns the points
 * released (hundredths).  The caller holds the customer's lock.
 */
int64
ledger_release_held(int64 customer_id, const char *hold_operation_id,
					const char *operation_id, TimestampTz at)
{
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[4];
	SPIPlanPtr	plan;

	plan = saved_plan(&release_plan,
					   "WITH held AS ("
					   "  SELECT e.lot_id, e.account, -sum(e.points) AS open"
					   "    FROM loyalty.ledger_entry e"
					   "   WHERE e.customer_id = $1"
					   "     AND (e.operation_id = $2 AND e.kind = 'hold'"
					   "          OR e.ref_operation_id = $2 AND e.kind = 'release')"
					   "   GROUP BY e.lot_id, e.account HAVING -sum(e.points) > 0"
					   "), upd AS ("
					   "  UPDATE loyalty.lot l SET remaining = l.remaining + h.open"
					   "    FROM held h WHERE l.id = h.lot_id RETURNING l.id, h.account, h.open"
					   "), ins AS ("
					   "  INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id,"
					   "         operation_id, ref_operation_id, kind, points, at)"
					   "  SELECT $1, u.account, u.id, $3, $2, 'release', u.open, $4 FROM upd u"
					   "  RETURNING points"
					   ") SELECT " PTS_OUT("coalesce(sum(points), 0)") " FROM ins",
					   4, types);
	values[0] = Int64GetDatum(customer_id);
	values[1] = CStringGetTextDatum(hold_operation_id);
	values[2] = CStringGetTextDatum(operation_id);
	values[3] = TimestampTzGetDatum(at);
	return spi_exec(plan, values, NULL, false, 0) > 0 ? spi_int8(0, 1, 0) : 0;
}

/*
 * ledger_expire_batch expires one batch of due lots.
 *
 * The first statement takes the next max_lots due lots in (expires_at, id)
 * order, locking them with SKIP LOCKED: a lot a check is spending from
 * right now is left for the next run, and the job never waits for a check.
 * Customers are not locked (that would write every customer's row); a
 * check that read a lot before the job emptied it takes its points
 * elsewhere (ledger_spend).  The locked rows are read at their latest
 * version, so the entries write exactly what was left.
 *
 * The second statement empties those lots by id, writes their entries and
 * one event per customer and account, with the batch passed as arrays.  It
 * is planned for each batch (saved_batch_plan), knowing the batch's size
 * and the lot table's; a generic plan made while the table was small would
 * go on scanning all of it, once for every id of every batch.  (One
 * statement that locked the batch and joined it back to the lots had a
 * generic plan that guessed 10% of the due lots for "LIMIT $2" and chose
 * a merge join over the whole primary key: every batch of a chain's expiry
 * read all 3 million lots.)
 */
void
ledger_expire_batch(TimestampTz as_of, int max_lots,
					TimestampTz after_expires_at, int64 after_id,
					ExpireBatch *result)
{
	Oid			due_types[4] = {TIMESTAMPTZOID, INT4OID, TIMESTAMPTZOID, INT8OID};
	Oid			write_types[6] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
								  NUMERICARRAYOID, TIMESTAMPTZOID, TEXTOID};
	Datum		values[6];
	SPIPlanPtr	plan;
	Datum	   *ids;
	Datum	   *customers;
	Datum	   *accounts;
	Datum	   *remaining;
	char	   *operation_id;
	bool		isnull;
	int			n;
	int			i;

	memset(result, 0, sizeof(*result));
	result->last_expires_at = after_expires_at;
	result->last_id = after_id;

	plan = saved_plan(&expire_due_plan,
					  "SELECT l.id, l.customer_id, l.account, l.remaining, l.expires_at"
					  "  FROM loyalty.lot l"
					  " WHERE l.remaining > 0 AND l.expires_at <= $1"
					  "   AND (l.expires_at, l.id) > ($3, $4)"
					  " ORDER BY l.expires_at, l.id LIMIT $2"
					  "   FOR UPDATE SKIP LOCKED",
					  4, due_types);
	values[0] = TimestampTzGetDatum(as_of);
	values[1] = Int32GetDatum(max_lots);
	values[2] = TimestampTzGetDatum(after_expires_at);
	values[3] = Int64GetDatum(after_id);
	n = (int) spi_exec(plan, values, NULL, false, 0);
	if (n == 0)
		return;

	ids = palloc(sizeof(Datum) * n);
	customers = palloc(sizeof(Datum) * n);
	accounts = palloc(sizeof(Datum) * n);
	remaining = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		ids[i] = spi_datum(i, 1, &isnull);
		customers[i] = spi_datum(i, 2, &isnull);
		accounts[i] = spi_datum(i, 3, &isnull);
		remaining[i] = spi_datum(i, 4, &isnull);
	}
	result->lots_seen = n;
	result->last_expires_at = spi_timestamptz(n - 1, 5, 0);
	result->last_id = DatumGetInt64(ids[n - 1]);

	/*
	 * one expiry operation per transaction, for the entries to reference,
	 * in the internal namespace no client can write (operation_id.h); the
	 * 64-bit transaction id never comes round again, as 32 bits did
	 */
	operation_id = psprintf("%cexpire-" UINT64_FORMAT, OPERATION_ID_INTERNAL,
							U64FromFullTransactionId(GetTopFullTransactionId()));
	{
		Oid			op_types[2] = {TEXTOID, TIMESTAMPTZOID};
		Datum		op_values[2];

		plan = saved_plan(&expire_operation_plan,
						  "INSERT INTO loyalty.operation (operation_id, kind, request, response)"
						  " VALUES ($1, 'expire', pg_catalog.jsonb_build_object('as_of', $2), '{}')"
						  " ON CONFLICT (operation_id) DO NOTHING",
						  2, op_types);
		op_values[0] = CStringGetTextDatum(operation_id);
		op_values[1] = TimestampTzGetDatum(as_of);
		(void) spi_exec(plan, op_values, NULL, false, 0);
	}

	plan = saved_batch_plan(&expire_plan,
							"WITH x AS ("
							"  SELECT * FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
							"                          pg_catalog.unnest($3), pg_catalog.unnest($4))"
							"         AS x (id, customer_id, account, remaining)"
							"), upd AS ("
							"  UPDATE loyalty.lot l SET remaining = 0 WHERE l.id = ANY ($1)"
							"  RETURNING l.id"
							"), ins AS ("
							"  INSERT INTO loyalty.ledger_entry"
							"         (customer_id, account, lot_id, operation_id, kind, points, at)"
							"  SELECT x.customer_id, x.account, x.id, $6, 'expire', -x.remaining, $5"
							"    FROM x"
							"), ev AS ("
							"  INSERT INTO loyalty.event (customer_id, kind, payload)"
							"  SELECT x.customer_id, 'points_expired', pg_catalog.jsonb_build_object("
							"         'account', x.account, 'points', sum(x.remaining), 'at', $5)"
							"    FROM x GROUP BY x.customer_id, x.account"
							") SELECT (SELECT count(*) FROM upd)::int4,"
							"         (SELECT " PTS_OUT("coalesce(sum(remaining), 0)") " FROM x)",
							6, write_types);
	values[0] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(customers, n, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(accounts, n, TEXTOID, -1, false,
												TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(remaining, n, NUMERICOID, -1, false,
												TYPALIGN_INT));
	values[4] = TimestampTzGetDatum(as_of);
	values[5] = CStringGetTextDatum(operation_id);
	(void) spi_exec(plan, values, NULL, false, 0);

	if (spi_int4(0, 1, 0) != n)
		elog(ERROR, "expiry batch emptied a different number of lots than it locked");
	result->points = spi_int8(0, 2, 0);
}
