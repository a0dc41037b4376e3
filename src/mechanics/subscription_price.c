/*-------------------------------------------------------------------------
 *
 * subscription_price.c
 *	  The subscription_price mechanic (SPEC section 5): a percent off the
 *	  products of a subscription plan for its subscribers.  Rule:
 *	  {"plan": "CODE", "percent": P}.
 *
 * The plan's products are the plan's selector (loyalty.subscription_plan,
 * matched through the configuration cache), so the rule itself has no
 * selector and every check is a candidate.  An unknown plan matches
 * nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* subscription_price: {"plan": "CODE", "percent": P} */
typedef struct SubscriptionPriceRule
{
	char	   *plan;
	int32		percent;
} SubscriptionPriceRule;

static const char *const SUBSCRIPTION_PRICE_KEYS[] = {"plan", "percent", NULL};

/* subscription_price_parse reads a rule {"plan": "CODE", "percent": P}. */
static void *
subscription_price_parse(JsonReader *ctx, JsonbContainer *obj)
{
	SubscriptionPriceRule *r = palloc0(sizeof(SubscriptionPriceRule));

	r->plan = jr_string_field(ctx, obj, "plan", JR_REQUIRED, NULL);
	r->percent = (int32) jr_number_field(ctx, obj, "percent", &RULE_PERCENT, JR_REQUIRED, 0);
	return r;
}

/*
 * subscription_price_apply: X percent off the plan's products for a
 * customer whose subscription to the plan runs at the check's moment
 * (starts_at <= at < ends_at).
 */
static void
subscription_price_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const SubscriptionPriceRule *rule = p->rule;
	const CachedSubscriptionPlan *plan = config_plan(r->cfg, rule->plan);
	CustomerInfo *cust = r->cust;

	if (plan == NULL || !cust->identified)
		return;
	for (int i = 0; i < cust->nsubs; i++)
	{
		if (strcmp(cust->sub_plan[i], plan->code) == 0 &&
			cust->sub_starts[i] <= r->at && r->at < cust->sub_ends[i])
		{
			mech_percent_lines(r, p, plan->sel, rule->percent, eff);
			return;
		}
	}
}

const MechanicRoutine subscription_price_routine = {
	.name = "subscription_price",
	.keys = SUBSCRIPTION_PRICE_KEYS,
	.parse = subscription_price_parse,
	.selectors = NULL,
	.apply = subscription_price_apply,
	.is_single_item = true,
	.shared = RULE_SHARED_CAP,
};
