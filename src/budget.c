/*-------------------------------------------------------------------------
 *
 * budget.c
 *	  Campaign budgets (issue 18, see budget.h): promotion.budget caps the
 *	  money a promotion gives across all committed purchases,
 *	  promotion.points_budget the points.
 *
 * The money given is counted on the promotion's usage counter
 * (loyalty.promotion_usage.given) the way a use is counted against
 * usage_limit (check_db.c): INSERT ... ON CONFLICT DO UPDATE ... WHERE
 * given + x <= budget locks the counter row and re-checks the budget on its
 * latest version, so of two purchases racing for the last 100.00 only one
 * takes it; the other sees no row come back and is priced again with the
 * budget read anew, taking only what is left (or nothing).  The engine
 * caps a promotion's discount on a check at what is left
 * (mechanics/common.c), so the last check takes the rest.  Each purchase's
 * take is recorded in loyalty.promotion_budget_claim, and its full refund
 * gives exactly that back (a partial refund keeps it, as it keeps uses).
 * Counters are locked in the configuration cache's order (priority, code),
 * by purchases and refunds alike.  Points work the same way on
 * promotion_usage.points_given and promotion_budget_claim.points: the
 * engine caps a promotion's points on a check at what is left
 * (mechanics/common.c mech_cap_points, after the accrual), the purchase
 * claims them in the same statement as the money.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "budget.h"
#include "spi_util.h"

static SPIPlanPtr read_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr unclaim_plan = NULL;
static SPIPlanPtr claims_plan = NULL;
static SPIPlanPtr forget_plan = NULL;
static SPIPlanPtr held_plan = NULL;

/*
 * budget_read returns the money left of each budget and the points left of
 * each points_budget (see budget.h).  Not read-only: the statement takes a
 * new snapshot (READ COMMITTED), so after a lost claim it sees the purchase
 * that took the money or the points.
 */
int64 *
budget_read(ConfigCache *cfg, const int64 **points_left)
{
	Oid			types[1] = {TEXTARRAYOID};
	Datum	   *codes;
	Datum		values[1];
	int64	   *left;
	int64	   *pleft;
	int			n = 0;
	int			i;
	uint64		row;

	*points_left = NULL;
	if (!cfg->any_budget)
		return NULL;
	left = palloc(sizeof(int64) * cfg->npromotions);
	pleft = palloc(sizeof(int64) * cfg->npromotions);
	codes = palloc(sizeof(Datum) * cfg->npromotions);
	for (i = 0; i < cfg->npromotions; i++)
	{
		const CachedPromotion *p = &cfg->promotions[i];

		left[i] = p->budget > 0 ? p->budget : -1;
		pleft[i] = p->points_budget > 0 ? p->points_budget : -1;
		if (p->budget > 0 || p->points_budget > 0)
			codes[n++] = CStringGetTextDatum(p->code);
	}
	values[0] = PointerGetDatum(construct_array(codes, n, TEXTOID, -1, false, TYPALIGN_INT));
	spi_exec(saved_plan(&read_plan,
						"SELECT promotion, given, points_given FROM loyalty.promotion_usage"
						" WHERE promotion = ANY ($1)", 1, types),
			 values, NULL, false, 0);
	for (row = 0; row < SPI_processed; row++)
	{
		char	   *code = spi_text(row, 1, CurrentMemoryContext);
		int64		given = spi_scaled(row, 2, 2, 0);
		int64		points_given = spi_scaled(row, 3, 2, 0);

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < cfg->npromotions; i++)
		{
			const CachedPromotion *p = &cfg->promotions[i];

			if (strcmp(p->code, code) != 0)
				continue;
			if (p->budget > 0)
				left[i] = Max(p->budget - given, 0);
			if (p->points_budget > 0)
				pleft[i] = Max(p->points_budget - points_given, 0);
		}
	}
	*points_left = pleft;
	return left;
}

/*
 * applied_takes returns, by cache index, the discount each applied
 * promotion with a budget gave on r, and sets *points to the points each
 * applied promotion with a points_budget gave (0 for the others).
 */
static int64 *
applied_takes(CheckResult *r, int64 **points)
{
	int64	   *given = palloc0(sizeof(int64) * Max(r->cfg->npromotions, 1));
	int64	   *pts = palloc0(sizeof(int64) * Max(r->cfg->npromotions, 1));
	ListCell   *lc;

	foreach(lc, r->applied)
	{
		AppliedPromotion *ap = lfirst(lc);

		if (ap->promo->budget > 0 && ap->discount > 0)
			given[ap->promo->index] += ap->discount;
		if (ap->promo->points_budget > 0 && ap->points > 0)
			pts[ap->promo->index] += ap->points;
	}
	*points = pts;
	return given;
}

/*
 * take_back subtracts "given" money and "points" from promotion code's
 * counters (never below zero) and forgets the claim of operation_id.
 */
static void
take_back(const char *code, int64 given, int64 points, const char *operation_id)
{
	Oid			types[4] = {TEXTOID, NUMERICOID, TEXTOID, NUMERICOID};
	Datum		values[4] = {CStringGetTextDatum(code),
		NumericGetDatum(scaled_to_numeric(given, 2)),
		CStringGetTextDatum(operation_id),
	NumericGetDatum(scaled_to_numeric(points, 2))};

	spi_exec(saved_plan(&unclaim_plan,
						"UPDATE loyalty.promotion_usage"
						" SET given = greatest(given - $2, 0),"
						"     points_given = greatest(points_given - $4, 0)"
						" WHERE promotion = $1", 4, types),
			 values, NULL, false, 0);
	spi_exec(saved_plan(&forget_plan,
						"DELETE FROM loyalty.promotion_budget_claim"
						" WHERE operation_id = $3 AND promotion = $1", 4, types),
			 values, NULL, false, 0);
}

/* budget_claim counts the money and points given against the budgets (see budget.h). */
int
budget_claim(CheckResult *r, const char *operation_id)
{
	ConfigCache *cfg = r->cfg;
	Oid			types[6] = {TEXTOID, NUMERICOID, NUMERICOID, TEXTOID, NUMERICOID, NUMERICOID};
	int64	   *given;
	int64	   *points;
	int			i,
				k;

	if (!cfg->any_budget || r->applied == NIL)
		return -1;
	given = applied_takes(r, &points);
	for (i = 0; i < cfg->npromotions; i++)
	{
		const CachedPromotion *p = &cfg->promotions[i];
		Datum		values[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};

		CHECK_FOR_INTERRUPTS();
		if (given[i] <= 0 && points[i] <= 0)
			continue;
		values[0] = CStringGetTextDatum(p->code);
		values[1] = NumericGetDatum(scaled_to_numeric(given[i], 2));
		values[2] = NumericGetDatum(scaled_to_numeric(p->budget, 2));
		nulls[2] = p->budget > 0 ? ' ' : 'n';
		values[3] = CStringGetTextDatum(operation_id);
		values[4] = NumericGetDatum(scaled_to_numeric(points[i], 2));
		values[5] = NumericGetDatum(scaled_to_numeric(p->points_budget, 2));
		nulls[5] = p->points_budget > 0 ? ' ' : 'n';
		/* a NULL budget (none of that kind) never stops the claim */
		spi_exec(saved_plan(&claim_plan,
							"INSERT INTO loyalty.promotion_usage AS u (promotion, given, points_given)"
							" SELECT $1, $2, $5 WHERE $2 <= coalesce($3, $2) AND $5 <= coalesce($6, $5)"
							" ON CONFLICT (promotion) DO UPDATE"
							" SET given = u.given + $2, points_given = u.points_given + $5"
							" WHERE u.given + $2 <= coalesce($3, u.given + $2)"
							" AND u.points_given + $5 <= coalesce($6, u.points_given + $5)"
							" RETURNING 1", 6, types),
				 values, nulls, false, 0);
		if (SPI_processed != 1)
		{
			/* used up meanwhile: take back the claims before this one */
			for (k = 0; k < i; k++)
				if (given[k] > 0 || points[k] > 0)
					take_back(cfg->promotions[k].code, given[k], points[k], operation_id);
			return i;
		}
		spi_exec(saved_plan(&record_plan,
							"INSERT INTO loyalty.promotion_budget_claim"
							" (operation_id, promotion, given, points) VALUES ($4, $1, $2, $5)",
							6, types),
				 values, nulls, false, 0);
	}
	return -1;
}

/* budget_unclaim takes back what budget_claim counted (see budget.h). */
void
budget_unclaim(CheckResult *r, const char *operation_id)
{
	int64	   *given;
	int64	   *points;
	int			i;

	if (!r->cfg->any_budget || r->applied == NIL)
		return;
	given = applied_takes(r, &points);
	for (i = 0; i < r->cfg->npromotions; i++)
		if (given[i] > 0 || points[i] > 0)
			take_back(r->cfg->promotions[i].code, given[i], points[i], operation_id);
}

/*
 * budget_release gives back what a purchase took from budgets (see
 * budget.h): its claims in the cache's order, then those of promotions the
 * cache does not know (disabled since).
 */
void
budget_release(ConfigCache *cfg, const char *operation_id)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(operation_id)};
	char	  **codes;
	int64	   *given;
	int64	   *points;
	bool	   *done;
	int			n;
	int			i,
				k;

	spi_exec(saved_plan(&claims_plan,
						"SELECT promotion, given, points FROM loyalty.promotion_budget_claim"
						" WHERE operation_id = $1 ORDER BY promotion", 1, types),
			 values, NULL, true, 0);
	n = (int) SPI_processed;
	if (n == 0)
		return;
	codes = palloc(sizeof(char *) * n);
	given = palloc(sizeof(int64) * n);
	points = palloc(sizeof(int64) * n);
	done = palloc0(sizeof(bool) * n);
	for (k = 0; k < n; k++)
	{
		codes[k] = spi_text(k, 1, CurrentMemoryContext);
		given[k] = spi_scaled(k, 2, 2, 0);
		points[k] = spi_scaled(k, 3, 2, 0);
	}
	/* i == npromotions: the codes the cache does not know */
	for (i = 0; i <= cfg->npromotions; i++)
		for (k = 0; k < n; k++)
		{
			CHECK_FOR_INTERRUPTS();
			if (done[k] ||
				(i < cfg->npromotions && strcmp(cfg->promotions[i].code, codes[k]) != 0))
				continue;
			done[k] = true;
			take_back(codes[k], given[k], points[k], operation_id);
		}
}

/* budget_held reads what a hold took from the budgets (see budget.h). */
int64 *
budget_held(ConfigCache *cfg, const char *operation_id, int64 **points)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(operation_id)};
	int64	   *given;
	int64	   *pts;
	uint64		row;

	*points = NULL;
	if (!cfg->any_budget)
		return NULL;
	given = palloc0(sizeof(int64) * Max(cfg->npromotions, 1));
	pts = palloc0(sizeof(int64) * Max(cfg->npromotions, 1));
	spi_exec(saved_plan(&held_plan,
						"SELECT promotion, given, points FROM loyalty.promotion_budget_claim"
						" WHERE operation_id = $1", 1, types),
			 values, NULL, true, 0);
	for (row = 0; row < SPI_processed; row++)
	{
		char	   *code = spi_text(row, 1, CurrentMemoryContext);

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < cfg->npromotions; i++)
			if (strcmp(cfg->promotions[i].code, code) == 0)
			{
				given[i] = spi_scaled(row, 2, 2, 0);
				pts[i] = spi_scaled(row, 3, 2, 0);
				break;
			}
	}
	*points = pts;
	return given;
}

/* budget_cap_held lowers the budgets left to a hold's takes (see budget.h). */
void
budget_cap_held(ConfigCache *cfg, int64 *left, int64 *points_left,
				const int64 *held, const int64 *held_points)
{
	for (int i = 0; i < cfg->npromotions; i++)
	{
		if (left != NULL && left[i] >= 0)
			left[i] = Min(left[i], held[i]);
		if (points_left != NULL && points_left[i] >= 0)
			points_left[i] = Min(points_left[i], held_points[i]);
	}
}
