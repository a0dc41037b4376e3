/*-------------------------------------------------------------------------
 *
 * tiers.c
 *	  Customer tiers (SPEC section 3): the upgrade a purchase earns at once
 *	  (tiers_refresh) and loyalty.recalculate_tiers, maintenance's move of
 *	  every customer up or down.  Both write a change through TIER_MOVE,
 *	  the one statement that sets a tier and writes its tier_changed event.
 *
 * The tier is the highest whose threshold the customer's spend in the
 * window (loyalty.tier_window: money paid net of refunds over the last
 * tier_window, or the previous calendar month) reaches; the lowest rank
 * otherwise.  Nothing else here: the engine reads the tier with the
 * customer (check_db.c) and prices tier_discount promotions from it.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "spi_util.h"
#include "tiers.h"

/*
 * TIER_MOVE(source, as_of) is the one statement that changes tiers.  It
 * moves every customer of source, a query of (id, old_tier, new_tier),
 * whose tier is not new_tier yet, and writes each a tier_changed event
 * dated as_of (an SQL expression), except for a customer who had no tier
 * (old_tier NULL); it returns how many moved.  The payload is the one
 * messages and clients read: the new and old tier's code and name, the
 * direction by rank, and as_of.
 */
#define TIER_MOVE(source, as_of) \
	"WITH target AS (" source ")," \
	" moved AS (" \
	"  UPDATE loyalty.customer c SET tier = t.new_tier" \
	"    FROM target t" \
	"   WHERE c.id = t.id AND c.tier IS DISTINCT FROM t.new_tier" \
	"  RETURNING c.id, t.old_tier, t.new_tier)," \
	" events AS (" \
	"  INSERT INTO loyalty.event (customer_id, kind, payload)" \
	"  SELECT m.id, 'tier_changed', pg_catalog.jsonb_build_object(" \
	"         'tier', m.new_tier, 'tier_name', nt.name," \
	"         'old_tier', m.old_tier, 'old_tier_name', ot.name," \
	"         'direction', CASE WHEN ot.rank IS NULL OR nt.rank > ot.rank" \
	"                           THEN 'up' ELSE 'down' END," \
	"         'as_of', " as_of ")" \
	"    FROM moved m" \
	"    JOIN loyalty.tier nt ON nt.code = m.new_tier" \
	"    LEFT JOIN loyalty.tier ot ON ot.code = m.old_tier" \
	"   WHERE m.old_tier IS NOT NULL" \
	"  RETURNING 1)" \
	" SELECT count(*)::int4 FROM moved"

PG_FUNCTION_INFO_V1(loyalty_recalculate_tiers);

/*
 * tiers_refresh moves the customer up to the tier the spend now reaches: the
 * tier held at the start of the check earned on it, an upgrade follows it
 * at once; moving down is maintenance's job (loyalty.recalculate_tiers).
 *
 * Most purchases move nobody, so the common case costs at most one index
 * range scan: nothing at all when the customer already holds the top tier
 * or the window is the previous calendar month (which this purchase is not
 * in); otherwise the spend over the rolling window, compared with the
 * cached thresholds.  Only an actual upgrade writes, through TIER_MOVE:
 * the customer's tier and a tier_changed event, old_tier being the tier
 * the check was priced with (the lowest when the customer had none).
 */
void
tiers_refresh(CheckResult *r)
{
	static SPIPlanPtr spend_plan = NULL;
	static SPIPlanPtr move_plan = NULL;
	ConfigCache *cfg = r->cfg;
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	Oid			mtypes[4] = {INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		mvalues[4];
	char		mnulls[4] = {' ', ' ', ' ', ' '};
	int64		spend;
	int			t;

	if (cfg->ntiers == 0 || cfg->tier_previous_month)
		return;
	if (r->cust->tier != NULL && r->cust->tier->rank >= cfg->tiers[cfg->ntiers - 1].rank)
		return;

	/*
	 * the window of loyalty.tier_window(at): (at - tier_window, at]; not a
	 * read-only execution, which would not see the purchase just written
	 */
	values[0] = Int64GetDatum(r->cust->id);
	values[1] = DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(r->at),
									IntervalPGetDatum(&cfg->tier_window));
	values[2] = TimestampTzGetDatum(r->at);
	if (spi_exec(saved_plan(&spend_plan,
							"SELECT (coalesce(sum(p.total - p.refunded), 0) * 100)::int8"
							"  FROM loyalty.purchase p"
							" WHERE p.customer_id = $1 AND p.at > $2 AND p.at <= $3",
							3, types),
				 values, NULL, false, 1) != 1)
		elog(ERROR, "reading the customer's spend failed");
	spend = spi_int8(0, 1, 0);

	/* tiers are by rank ascending: the highest whose threshold is reached */
	for (t = cfg->ntiers - 1; t > 0 && cfg->tiers[t].threshold > spend; t--)
		;
	if (r->cust->tier != NULL && cfg->tiers[t].rank <= r->cust->tier->rank)
		return;

	/* up: the tier, and its tier_changed event */
	mvalues[0] = Int64GetDatum(r->cust->id);
	mvalues[1] = CStringGetTextDatum(cfg->tiers[t].code);
	mvalues[2] = r->cust->tier ? CStringGetTextDatum(r->cust->tier->code) : (Datum) 0;
	mvalues[3] = TimestampTzGetDatum(r->at);
	mnulls[2] = r->cust->tier ? ' ' : 'n';
	spi_exec(saved_plan(&move_plan,
						TIER_MOVE("SELECT $1 AS id, $3 AS old_tier, $2 AS new_tier", "$4"),
						4, mtypes),
			 mvalues, mnulls, false, 0);
}

/*
 * loyalty_recalculate_tiers implements loyalty.recalculate_tiers(as_of,
 * only_customer): moves every active customer (or only that one) to the
 * tier their spend in tier_window(as_of) reaches, up or down, through
 * TIER_MOVE in one statement, and returns how many moved.  as_of NULL is
 * now().  Planned for its parameters on each call (a batch), as the
 * PL/pgSQL function it replaces was.
 */
Datum
loyalty_recalculate_tiers(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TIMESTAMPTZOID, INT8OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	int32		moved;

	values[0] = PG_ARGISNULL(0) ? TimestampTzGetDatum(GetCurrentTransactionStartTimestamp())
		: PG_GETARG_DATUM(0);
	values[1] = PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[1] = PG_ARGISNULL(1) ? 'n' : ' ';

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_exec(saved_batch_plan(&plan,
							  TIER_MOVE("WITH spend AS ("
										"  SELECT p.customer_id, sum(p.total - p.refunded) AS spend"
										"    FROM loyalty.purchase p"
										"   WHERE p.at <@ (SELECT loyalty.tier_window($1))"
										"     AND p.customer_id IS NOT NULL"
										"     AND ($2 IS NULL OR p.customer_id = $2)"
										"   GROUP BY p.customer_id)"
										" SELECT c.id, c.tier AS old_tier,"
										"        coalesce((SELECT t.code FROM loyalty.tier t"
										"                   WHERE t.threshold <= coalesce(s.spend, 0)"
										"                   ORDER BY t.rank DESC LIMIT 1),"
										"                 (SELECT t.code FROM loyalty.tier t"
										"                   ORDER BY t.rank LIMIT 1)) AS new_tier"
										"   FROM loyalty.customer c"
										"   LEFT JOIN spend s ON s.customer_id = c.id"
										"  WHERE c.status = 'active'"
										"    AND ($2 IS NULL OR c.id = $2)",
										"$1"),
							  2, types),
			 values, nulls, false, 0);
	moved = spi_int4(0, 1, 0);
	SPI_finish();
	PG_RETURN_INT32(moved);
}
