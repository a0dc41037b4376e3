/*-------------------------------------------------------------------------
 *
 * check_discount.c
 *	  The check_discount mechanic (SPEC section 5): a discount on the whole
 *	  check by the best step its total reaches.  Rule: {"steps": [...]}.
 *
 * Steps are read by rule_steps_field (rules.c: each step a required
 * "min_total" and one of "percent" or "amount", sorted by min_total).  The
 * total is the check as it stands at the promotion's turn.  A percent step
 * is taken per line (rounded per line, SPEC section 2); an amount step is
 * spread over the discountable lines in proportion to their amounts by
 * largest remainder, never past a line's floor.  Not product-scoped: it
 * discounts unknown SKUs too, and every check is a candidate.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* check_discount: {"steps": [...]} */
typedef struct CheckDiscountRule
{
	StepList	steps;
} CheckDiscountRule;

static const char *const CHECK_DISCOUNT_KEYS[] = {"steps", NULL};

/* check_discount_parse reads a rule {"steps": [...]}. */
static void *
check_discount_parse(JsonReader *ctx, JsonbContainer *obj)
{
	CheckDiscountRule *r = palloc0(sizeof(CheckDiscountRule));

	r->steps = rule_steps_field(ctx, obj, "steps");
	return r;
}

/*
 * check_discount_apply: the best step whose min_total the check (as it
 * stands) reaches.  A percent step is taken per line; an amount step is
 * spread over the discountable lines (what a floor stops moves on to the
 * other lines).
 */
static void
check_discount_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const CheckDiscountRule *rule = p->rule;
	const RuleStep *step = mech_step_reached(&rule->steps, check_total(r));
	bool	   *eligible;
	int			i;

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

const MechanicRoutine check_discount_routine = {
	.name = "check_discount",
	.keys = CHECK_DISCOUNT_KEYS,
	.parse = check_discount_parse,
	.selectors = NULL,
	.apply = check_discount_apply,
	.is_single_item = false,
	.shared = RULE_SHARED_CAP,
};
