/*-------------------------------------------------------------------------
 *
 * common.c
 *	  What several mechanics' effects share (common.h): a percent off the
 *	  matching lines, the discount of chosen units, the step reached.
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

#include "common.h"

/*
 * mech_percent_lines takes percent (hundredths) off every discountable line
 * matching selector sel: round_half_up(current * percent / 100) per line.
 */
void
mech_percent_lines(CheckResult *r, const CachedPromotion *p, int sel,
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
