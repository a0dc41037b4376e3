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

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "spi_util.h"
#include "tiers.h"

/*
 * tiers_refresh moves the customer up to the tier the spend now reaches: the
 * tier held at the start of the check earned on it, an upgrade follows it
 * at once; moving down is maintenance's job (loyalty.recalculate_tiers).
 *
 * Most purchases move nobody, so the common case costs at most one index
 * range scan: nothing at all when the customer already holds the top tier
 * or the window is the previous calendar month (which this purchase is not
 * in); otherwise the spend over the rolling window, compared with the
 * cached thresholds.  Only an actual upgrade writes: the customer's tier
 * and a tier_changed event (the payload recalculate_tiers writes).
 */
void
tiers_refresh(CheckResult *r)
{
	static SPIPlanPtr spend_plan = NULL;
	static SPIPlanPtr move_plan = NULL;
	ConfigCache *cfg = r->cfg;
	Oid			types[3] = {INT8OID, TIMESTAMPTZOID, TIMESTAMPTZOID};
	Datum		values[3];
	Oid			mtypes[4];
	Datum		mvalues[4];
	char		mnulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
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
	if (SPI_execute_plan(saved_plan(&spend_plan,
									"SELECT (coalesce(sum(p.total - p.refunded), 0) * 100)::int8"
									"  FROM loyalty.purchase p"
									" WHERE p.customer_id = $1 AND p.at > $2 AND p.at <= $3",
									3, types),
						 values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "reading the customer's spend failed");
	spend = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/* tiers are by rank ascending: the highest whose threshold is reached */
	for (t = cfg->ntiers - 1; t > 0 && cfg->tiers[t].threshold > spend; t--)
		;
	if (r->cust->tier != NULL && cfg->tiers[t].rank <= r->cust->tier->rank)
		return;

	/* up: the tier, and its tier_changed event as recalculate_tiers writes it */
	mtypes[0] = INT8OID;
	mtypes[1] = TEXTOID;
	mtypes[2] = TEXTOID;
	mtypes[3] = TIMESTAMPTZOID;
	mvalues[0] = Int64GetDatum(r->cust->id);
	mvalues[1] = CStringGetTextDatum(cfg->tiers[t].code);
	mvalues[2] = r->cust->tier ? CStringGetTextDatum(r->cust->tier->code) : (Datum) 0;
	mvalues[3] = TimestampTzGetDatum(r->at);
	mnulls[2] = r->cust->tier ? ' ' : 'n';
	if (SPI_execute_plan(saved_plan(&move_plan,
									"WITH moved AS ("
									" UPDATE loyalty.customer c SET tier = $2"
									"  WHERE c.id = $1 AND c.tier IS DISTINCT FROM $2 RETURNING c.id)"
									" INSERT INTO loyalty.event (customer_id, kind, payload)"
									" SELECT m.id, 'tier_changed', pg_catalog.jsonb_build_object("
									"   'tier', nt.code, 'tier_name', nt.name,"
									"   'old_tier', ot.code, 'old_tier_name', ot.name,"
									"   'direction', 'up', 'as_of', $4)"
									"  FROM moved m JOIN loyalty.tier nt ON nt.code = $2"
									"  LEFT JOIN loyalty.tier ot ON ot.code = $3",
									4, mtypes),
						 mvalues, mnulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "moving the customer up a tier failed");
}
