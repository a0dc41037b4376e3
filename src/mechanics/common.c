/*-------------------------------------------------------------------------
 *
 * common.c
 *	  What several mechanics' effects share (common.h): a percent off the
 *	  matching lines, the discount of chosen units, the step reached; and
 *	  the shared rule fields of every mechanic (mech_apply: min_qty,
 *	  min_items, max_discount; rules.h RuleCommon).
 *
 * Every discount works on a line's current amount (what earlier promotions
 * left), is capped so the line stays at or above its floor (min_price *
 * qty, or zero), and skips lines that may not be discounted (no_discount,
 * locked by an exclusive promotion, or already discounted when this
 * promotion is exclusive).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "miscadmin.h"

#include "common.h"

/*
 * mech_percent_lines takes percent (hundredths) off every discountable line
 * matching selector sel: round_half_up(current * percent / 100) per line.
 * When sel is p's key selector and the engine listed its lines
 * (r->key_lines), only those are visited.
 */
void
mech_percent_lines(CheckResult *r, const CachedPromotion *p, int sel,
				   int32 percent, Effect *eff)
{
	bool		keyed = r->key_lines != NULL && sel == p->key_sel;
	int			n = keyed ? r->nkey_lines : r->nlines;
	int			i,
				k;

	if (percent <= 0)
		return;
	/* the key selector's lines only, when the engine listed them */
	for (k = 0; k < n; k++)
	{
		CheckLine  *l;
		int64		d;

		i = keyed ? r->key_lines[k] : k;
		l = &r->lines[i];
		if (!check_line_discountable(r, i, p) ||
			(!keyed && !check_line_matches(r, i, sel)))
			continue;
		d = Min(money_percent(LINE_CURRENT(l), percent), check_line_cap(r, i));
		if (d > 0)
		{
			eff->delta[i] = d;
			eff->total += d;
		}
	}
}

/*
 * mech_discount_units writes, for each line, the discount of its "taken"
 * units computed by kind/value, capped by the line's floor.
 */
void
mech_discount_units(CheckResult *r, const int64 *taken, const Discount *disc,
					Effect *eff)
{
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];
		int64		value;
		int64		d = 0;

		if (taken[i] <= 0)
			continue;
		value = check_units_value(l, taken[i]);
		switch (disc->kind)
		{
			case DISCOUNT_PERCENT:
				d = money_percent(value, disc->percent);
				break;
			case DISCOUNT_AMOUNT:
				d = Min(value, disc->amount * taken[i]);
				break;
			case DISCOUNT_PRICE:
				d = value - disc->amount * taken[i];
				break;
		}
		d = Min(d, check_line_cap(r, i));
		if (d > 0)
		{
			eff->delta[i] = d;
			eff->total += d;
		}
	}
}

/*
 * mech_step_reached returns the last step (steps are sorted by min_total
 * ascending) whose min_total total reaches; NULL when none.
 */
const RuleStep *
mech_step_reached(const StepList *steps, int64 total)
{
	const RuleStep *step = NULL;
	int			i;

	for (i = 0; i < steps->count; i++)
		if (total >= steps->steps[i].min_total)
			step = &steps->steps[i];
	return step;
}

/*
 * conditions_met: does the check hold p's min_qty of matching units and
 * min_items matching lines?  Matching lines are those of p's key selector
 * (products, or the trigger); for a check-level mechanic every line of
 * goods (not a gift certificate sold).  Every matching line counts,
 * whether or not it may be discounted: the condition is on what the check
 * holds at the promotion's turn.
 */
static bool
conditions_met(CheckResult *r, const CachedPromotion *p)
{
	int64		qty = 0;
	int			items = 0;
	int			i;

	if (p->common.min_qty <= 0 && p->common.min_items <= 0)
		return true;
	if (p->key_sel >= 0 && r->key_lines != NULL)
	{
		/* the engine listed the key selector's lines */
		for (i = 0; i < r->nkey_lines; i++)
			qty += r->lines[r->key_lines[i]].qty;
		items = r->nkey_lines;
		return qty >= p->common.min_qty && items >= p->common.min_items;
	}
	for (i = 0; i < r->nlines; i++)
	{
		if (p->key_sel >= 0 ? !check_line_matches(r, i, p->key_sel)
			: r->lines[i].gift_certificate)
			continue;
		qty += r->lines[i].qty;
		items++;
	}
	return qty >= p->common.min_qty && items >= p->common.min_items;
}

/*
 * cap_effect: a discount effect above max_discount is brought down to it,
 * spread over the lines the effect touched in proportion to their
 * discounts by largest remainder (money.c), so no line gets more than the
 * mechanic gave it.
 */
static void
cap_effect(CheckResult *r, int64 max_discount, Effect *eff)
{
	int64	   *capped;

	if (max_discount <= 0 || eff->total <= max_discount)
		return;
	capped = palloc(sizeof(int64) * r->nlines);
	allocate_largest_remainder(max_discount, eff->delta, r->nlines, capped);
	memcpy(eff->delta, capped, sizeof(int64) * r->nlines);
	eff->total = max_discount;
	pfree(capped);
}

/*
 * mech_apply computes p's Effect: nothing when a condition (min_qty,
 * min_items) fails or its campaign budget is used up, otherwise the
 * mechanic's effect capped by max_discount and by what is left of the
 * budget (the loader read it: CheckInput.budget_left).
 */
void
mech_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	int64		cap;

	/* the rule is parsed when the promotion is first a candidate */
	config_promotion_rule(r->cfg, p);
	cap = p->common.max_discount;
	/* a points budget used up: the promotion gives nothing more */
	if (p->points_budget > 0 && r->in != NULL && r->in->points_left != NULL &&
		r->in->points_left[p->index] == 0)
		return;
	if (p->budget > 0 && r->in != NULL && r->in->budget_left != NULL)
	{
		int64		left = r->in->budget_left[p->index];

		if (left <= 0)
			return;
		cap = cap > 0 ? Min(cap, left) : left;
	}
	if (!conditions_met(r, p))
		return;
	p->mechanic->apply(r, p, eff);
	cap_effect(r, cap, eff);
}

/*
 * cap_one_promotion takes "excess" points (hundredths, a multiple of the
 * points precision's unit) of promotion p off the check: off its account's
 * points on the lines p covers, in proportion to what each line earns in
 * that account (largest remainder), and off the grant or the rate points
 * that carry them to the ledger.
 */
static int64
cap_one_promotion(CheckResult *r, const CachedPromotion *p, int64 excess)
{
	int64		unit = r->cfg->points_precision == 0 ? 100 : 1;
	int64	   *weights = palloc0(sizeof(int64) * r->nlines);
	int64	   *out = palloc0(sizeof(int64) * r->nlines);
	PointsGrant *grant = NULL;
	PointsRate *rate = NULL;
	int64		sum = 0;
	int			a;
	int			i;
	ListCell   *lc;

	foreach(lc, r->grants)
		if (((PointsGrant *) lfirst(lc))->promo == p)
			grant = lfirst(lc);
	foreach(lc, r->rates)
		if (((PointsRate *) lfirst(lc))->promo == p)
			rate = lfirst(lc);
	if (grant == NULL && rate == NULL)
		return 0;
	a = grant != NULL ? grant->account : rate->account;
	for (i = 0; i < r->nlines; i++)
	{
		bool		covered = grant != NULL
			? (grant->line_weights == NULL || grant->line_weights[i] > 0)
			: rate->lines[i];

		if (covered && r->lines[i].accrual[a] > 0)
			weights[i] = r->lines[i].accrual[a];
		sum += weights[i];
	}
	/* the lines carry what the promotion gave: never more to take */
	excess = Min(excess, sum - sum % unit);
	if (excess <= 0)
		return 0;
	allocate_largest_remainder(excess / unit, weights, r->nlines, out);
	for (i = 0; i < r->nlines; i++)
		r->lines[i].accrual[a] -= out[i] * unit;
	r->accrual[a] -= excess;
	if (grant != NULL)
		grant->points -= excess;
	else
		r->rate_points[a] -= excess;
	pfree(weights);
	pfree(out);
	return excess;
}

/*
 * mech_cap_points caps the points each promotion with a points_budget gives
 * on the check at what is left of that budget (the loader read it:
 * CheckInput.points_left), rounded down to the points precision.  A
 * post-pass over the accrual: percent points are known only once the
 * check's paid money is, so the cap cannot be a promotion's own step.
 */
void
mech_cap_points(CheckResult *r)
{
	int64		unit = r->cfg->points_precision == 0 ? 100 : 1;
	ListCell   *lc;

	if (r->in == NULL || r->in->points_left == NULL || r->mode != ENGINE_CHECK)
		return;
	foreach(lc, r->applied)
	{
		AppliedPromotion *ap = lfirst(lc);
		const CachedPromotion *p = ap->promo;
		int64		left;

		CHECK_FOR_INTERRUPTS();
		if (p->points_budget <= 0 || ap->points <= 0)
			continue;
		left = r->in->points_left[p->index];
		if (left < 0)
			continue;
		left -= left % unit;
		if (ap->points > left)
			ap->points -= cap_one_promotion(r, p, ap->points - left);
	}
}

