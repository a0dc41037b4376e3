/*-------------------------------------------------------------------------
 *
 * bundle.c
 *	  The bundle mechanic (SPEC section 5): buying trigger units discounts
 *	  target units.  Rule: {"trigger": SEL, "trigger_qty": Q,
 *	  "target": SEL, "percent": P, "per_trigger": K}.
 *
 * "percent" is required; "trigger_qty" (units of the trigger needed,
 * default 1) and "per_trigger" (target units discounted per complete
 * trigger set, default 1) are optional.  Only whole units count; the
 * cheapest eligible target units go first.  With "once": true (a shared
 * field, rules.h) one trigger set counts at most: per_trigger units.
 *
 * Decision where the SPEC is silent: a line matching the trigger selector
 * counts as a trigger only, never as a target, so a product matching both
 * does not discount itself.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* bundle: {"trigger": SEL, "trigger_qty": 1, "target": SEL, "percent": P, "per_trigger": 1} */
typedef struct BundleRule
{
	ProductSelector *trigger;
	int32		trigger_qty;	/* >= 1, default 1 */
	ProductSelector *target;
	int32		percent;
	int32		per_trigger;	/* >= 1, default 1 */
} BundleRule;

static const char *const BUNDLE_KEYS[] =
{"trigger", "trigger_qty", "target", "percent", "per_trigger", NULL};

/*
 * bundle_parse reads a rule {"trigger": SEL, "trigger_qty": Q,
 * "target": SEL, "percent": P, "per_trigger": K}.
 */
static void *
bundle_parse(JsonReader *ctx, JsonbContainer *obj)
{
	BundleRule *r = palloc0(sizeof(BundleRule));

	r->trigger = rule_selector_field(ctx, obj, "trigger", JR_REQUIRED);
	r->trigger_qty = (int32) jr_number_field(ctx, obj, "trigger_qty", &RULE_QUANTITY, JR_OPTIONAL, 1);
	r->target = rule_selector_field(ctx, obj, "target", JR_REQUIRED);
	r->percent = (int32) jr_number_field(ctx, obj, "percent", &RULE_PERCENT, JR_REQUIRED, 0);
	r->per_trigger = (int32) jr_number_field(ctx, obj, "per_trigger", &RULE_QUANTITY, JR_OPTIONAL, 1);
	return r;
}

/* bundle_selectors: the trigger lines and the target lines */
static void
bundle_selectors(const void *rule, MechanicSelectors *out)
{
	const BundleRule *r = rule;

	out->trigger = r->trigger;
	out->target = r->target;
}

/*
 * bundle_apply: every complete set of trigger_qty trigger units discounts
 * per_trigger target units (the cheapest) by percent.
 */
static void
bundle_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const BundleRule *rule = p->rule;
	bool	   *eligible = palloc0(sizeof(bool) * r->nlines);
	int64	   *taken = palloc0(sizeof(int64) * r->nlines);
	int64		triggers = 0;
	int64		sets;
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		if (check_line_matches(r, i, p->sel_trigger))
			triggers += mech_line_units(&r->lines[i]);
		else if (check_line_matches(r, i, p->sel_target) &&
				 check_line_discountable(r, i, p))
			eligible[i] = true;
	}
	sets = triggers / rule->trigger_qty;
	if (p->common.once)
		sets = Min(sets, 1);
	if (sets > 0)
	{
		Discount	disc = {DISCOUNT_PERCENT, rule->percent, 0};

		check_cheapest_units(r, eligible, sets * rule->per_trigger, taken);
		mech_discount_units(r, taken, &disc, eff);
	}
	pfree(eligible);
	pfree(taken);
}

/* bundle_parse_selectors: the trigger and the target alone (issue 21's lazy load) */
static void
bundle_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                        MechanicSelectors *out)
{
	out->trigger = rule_selector_field(ctx, obj, "trigger", JR_REQUIRED);
	out->target = rule_selector_field(ctx, obj, "target", JR_REQUIRED);
}

const MechanicRoutine bundle_routine = {
	.name = "bundle",
	.keys = BUNDLE_KEYS,
	.parse = bundle_parse,
	.selectors = bundle_selectors,
	.parse_selectors = bundle_parse_selectors,
	.apply = bundle_apply,
	.is_single_item = false,
	.shared = RULE_SHARED_CAP | RULE_SHARED_ONCE,
};
