/*-------------------------------------------------------------------------
 *
 * tier_discount.c
 *	  The tier_discount mechanic (SPEC section 5): the customer's tier
 *	  discount_percent off the matching lines.  Rule: {"products": SEL}.
 *
 * "products" is optional and defaults to {"all": true}.  Nothing for an
 * anonymous customer or a tier without a discount.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* tier_discount: {"products": SEL}; the percent is the tier's */
typedef struct TierDiscountRule
{
	ProductSelector *products;	/* default all */
} TierDiscountRule;

static const char *const TIER_DISCOUNT_KEYS[] = {"products", NULL};

/* tier_discount_parse reads a rule {"products": SEL}. */
static void *
tier_discount_parse(JsonReader *ctx, JsonbContainer *obj)
{
	TierDiscountRule *r = palloc0(sizeof(TierDiscountRule));

	r->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
	return r;
}

/* tier_discount_selectors: the lines it discounts */
static void
tier_discount_selectors(const void *rule, MechanicSelectors *out)
{
	out->products = ((const TierDiscountRule *) rule)->products;
}

/*
 * tier_discount_apply: the customer's tier discount_percent on the matching
 * lines; nothing for an anonymous customer or a tier without a discount.
 */
static void
tier_discount_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	if (!r->cust->identified || r->cust->tier == NULL)
		return;
	mech_percent_lines(r, p, p->sel_products, r->cust->tier->discount_percent, eff);
}

/* tier_discount_parse_selectors: the products alone (issue 21's lazy load) */
static void
tier_discount_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                               MechanicSelectors *out)
{
	out->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
}

const MechanicRoutine tier_discount_routine = {
	.name = "tier_discount",
	.keys = TIER_DISCOUNT_KEYS,
	.parse = tier_discount_parse,
	.selectors = tier_discount_selectors,
	.parse_selectors = tier_discount_parse_selectors,
	.apply = tier_discount_apply,
	.is_single_item = true,
	.shared = RULE_SHARED_CAP,
};
