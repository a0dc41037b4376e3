/*-------------------------------------------------------------------------
 *
 * percent_off.c
 *	  The percent_off mechanic (SPEC section 5): a percent off the matching
 *	  lines.  Rule: {"products": SEL, "percent": P}.
 *
 * "products" is required (a discount on everything must be asked for with
 * {"all": true}).  The percent is taken off each line's current amount,
 * rounded half up per line (mech_percent_lines).  Unknown SKUs are never
 * touched.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* percent_off: {"products": SEL, "percent": P} */
typedef struct PercentOffRule
{
	ProductSelector *products;
	int32		percent;
} PercentOffRule;

static const char *const PERCENT_OFF_KEYS[] = {"products", "percent", NULL};

/* percent_off_parse reads a rule {"products": SEL, "percent": P}. */
static void *
percent_off_parse(JsonReader *ctx, JsonbContainer *obj)
{
	PercentOffRule *r = palloc0(sizeof(PercentOffRule));

	r->products = rule_selector_field(ctx, obj, "products", JR_REQUIRED);
	r->percent = (int32) jr_number_field(ctx, obj, "percent", &RULE_PERCENT, JR_REQUIRED, 0);
	return r;
}

/* percent_off_selectors: the lines it discounts */
static void
percent_off_selectors(const void *rule, MechanicSelectors *out)
{
	out->products = ((const PercentOffRule *) rule)->products;
}

/* percent_off_apply: the percent off every matching line */
static void
percent_off_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const PercentOffRule *rule = p->rule;

	mech_percent_lines(r, p, p->sel_products, rule->percent, eff);
}

/* percent_off_parse_selectors: the products alone (issue 21's lazy load) */
static void
percent_off_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                             MechanicSelectors *out)
{
	out->products = rule_selector_field(ctx, obj, "products", JR_REQUIRED);
}

const MechanicRoutine percent_off_routine = {
	.name = "percent_off",
	.keys = PERCENT_OFF_KEYS,
	.parse = percent_off_parse,
	.selectors = percent_off_selectors,
	.parse_selectors = percent_off_parse_selectors,
	.apply = percent_off_apply,
	.is_single_item = true,
	.shared = RULE_SHARED_CAP,
};
