/*-------------------------------------------------------------------------
 *
 * discount.c
 *	  Line and check discounts: percent_off, amount_off, tier_discount,
 *	  check_discount and subscription_price (SPEC section 5).
 *
 * Every discount works on a line's current amount (what earlier promotions
 * left), is capped so the line stays at or above its floor (min_price *
 * qty, or zero), and skips lines that may not be discounted (no_discount,
 * locked by an exclusive promotion, or already discounted when this
 * promotion is exclusive).  Product-scoped mechanics never touch unknown
 * SKUs; check_discount does, as it is not product-scoped.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mechanics.h"

/*
 * percent_lines takes percent (hundredths) off every discountable line
 * matching selector sel: round_half_up(current * percent / 100) per line.
 */
static void
percent_lines(CheckResult *r, const CachedPromotion *p, int sel,
			  int32 percent, Effect *eff)
{
	int			i;

	if (percent <= 0)
		return;
	for (i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];
		int64		d;

		if (!check_line_discountable(r, i, p) || !check_line_matches(r, i, sel))
			continue;
		d = Min(money_percent(LINE_CURRENT(l), percent), check_line_cap(r, i));
		if (d > 0)
		{
			eff->delta[i] = d;
			eff->total += d;
		}
	}
}

/* mech_percent_off: {"products": SEL, "percent": P} */
void
mech_percent_off(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	percent_lines(r, p, p->sel_products, p->rule->u.percent_off.percent, eff);
}

/*
 * mech_tier_discount: the customer's tier discount_percent on the matching
 * lines; nothing for an anonymous customer or a tier without a discount.
 */
void
mech_tier_discount(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	if (!r->cust->identified || r->cust->tier == NULL)
		return;
	percent_lines(r, p, p->sel_products, r->cust->tier->discount_percent, eff);
}

/*
 * mech_subscription_price: {"plan": P, "percent": X}: X percent off the
 * plan's products for a customer whose subscription to the plan runs at the
 * check's moment (starts_at <= at < ends_at).
 */
void
mech_subscription_price(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const SubscriptionPriceRule *rule = &p->rule->u.subscription_price;
	const CachedSubscriptionPlan *plan = config_plan(r->cfg, rule->plan);
	CustomerInfo *cust = r->cust;

	if (plan == NULL || !cust->identified)
		return;
	for (int i = 0; i < cust->nsubs; i++)
	{
		if (strcmp(cust->sub_plan[i], plan->code) == 0 &&
			cust->sub_starts[i] <= r->at && r->at < cust->sub_ends[i])
		{
			percent_lines(r, p, plan->sel, rule->percent, eff);
			return;
		}
	}
}

/*
 * mech_amount_off: {"products": SEL, "amount": A, "per": "unit"|"line"}.
 * Per unit the amount is taken off every unit (times the quantity, weighed
 * goods included, rounded half up); per line once.
 */
void
mech_amount_off(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const AmountOffRule *rule = &p->rule->u.amount_off;
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];
		int64		d;

		if (!check_line_discountable(r, i, p) ||
			!check_line_matches(r, i, p->sel_products))
			continue;
		d = rule->per_line ? rule->amount : money_times_qty(rule->amount, l->qty);
		d = Min(d, check_line_cap(r, i));
		if (d > 0)
		{
			eff->delta[i] = d;
			eff->total += d;
		}
	}
}

/*
 * mech_check_discount: the best step whose min_total the check (as it
 * stands) reaches.  A percent step is taken per line (rounded per line, SPEC
 * section 2); an amount step is spread over the discountable lines in
 * proportion to their amounts by largest remainder, never past a line's
 * floor (what a floor stops moves on to the other lines).
 */
void
mech_check_discount(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const StepList *steps = &p->rule->u.check_discount.steps;
	int64		total = check_total(r);
	const RuleStep *step = NULL;
	bool	   *eligible;
	int			i;

	for (i = 0; i < steps->count; i++)
		if (total >= steps->steps[i].min_total)
			step = &steps->steps[i];
	if (step == NULL)
		return;

	eligible = palloc0(sizeof(bool) * r->nlines);
	for (i = 0; i < r->nlines; i++)
		eligible[i] = check_line_discountable(r, i, p);

	if (step->discount.kind == DISCOUNT_PERCENT)
	{
		for (i = 0; i < r->nlines; i++)
		{
			int64		d;

			if (!eligible[i])
				continue;
			d = Min(money_percent(LINE_CURRENT(&r->lines[i]), step->discount.percent),
					check_line_cap(r, i));
			if (d > 0)
			{
				eff->delta[i] = d;
				eff->total += d;
			}
		}
	}
	else
	{
		check_spread(r, step->discount.amount, eligible, eff->delta);
		for (i = 0; i < r->nlines; i++)
			eff->total += eff->delta[i];
	}
	pfree(eligible);
}
