/*-------------------------------------------------------------------------
 *
 * coupon_issue.c
 *	  The coupon_issue mechanic (SPEC section 5): a bounce-back coupon for
 *	  the next purchase, by the best step the check reaches.  Rule:
 *	  {"steps": [...], "min_total_to_use": T, "valid": V}.
 *
 * Steps are read by rule_steps_field (rules.c); "min_total_to_use"
 * defaults to 0; "valid" absent means the coupon does not expire.  The
 * threshold is read on the check as it stands at the promotion's turn
 * (give it a late priority to count the check after its discounts).  The
 * result is an IssuedItem in the response's "issued" list with the
 * coupon's percent or amount and valid_until in the store's local time;
 * codes are generated when a purchase commits (coupons.c).  One coupon per
 * promotion whatever the total.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* coupon_issue: {"steps": [...], "min_total_to_use": T, "valid": V} */
typedef struct CouponIssueRule
{
	StepList	steps;
	int64		min_total_to_use;	/* default 0 */
	Validity	valid;			/* default: no expiry */
} CouponIssueRule;

static const char *const COUPON_ISSUE_KEYS[] =
{"steps", "min_total_to_use", "valid", NULL};

/*
 * coupon_issue_parse reads a rule {"steps": [...], "min_total_to_use": T,
 * "valid": V}.
 */
static void *
coupon_issue_parse(JsonReader *ctx, JsonbContainer *obj)
{
	CouponIssueRule *r = palloc0(sizeof(CouponIssueRule));

	r->steps = rule_steps_field(ctx, obj, "steps");
	r->min_total_to_use = jr_number_field(ctx, obj, "min_total_to_use", &RULE_MONEY, JR_OPTIONAL, 0);
	r->valid = rule_validity_field(ctx, obj, "valid");
	return r;
}

/* coupon_issue_apply: a coupon of the best step reached */
static void
coupon_issue_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const CouponIssueRule *rule = p->rule;
	const RuleStep *step = mech_step_reached(&rule->steps, check_total(r));
	IssuedItem *it;

	if (step == NULL)
		return;
	it = palloc0(sizeof(IssuedItem));
	it->kind = ISSUED_COUPON;
	it->promo = p;
	it->value = step->discount;
	it->min_total_to_use = rule->min_total_to_use;
	it->count = 1;
	it->valid_until = check_validity_end(r, &rule->valid, &it->has_valid_until);
	eff->issued = it;
	if (step->discount.kind == DISCOUNT_PERCENT)
		eff->message = psprintf("Print the coupon: %s%% off the next purchase (%s)",
								scaled_to_cstring(step->discount.percent, 2), p->name);
	else
		eff->message = psprintf("Print the coupon: %s off the next purchase (%s)",
								check_money_text(step->discount.amount), p->name);
}

const MechanicRoutine coupon_issue_routine = {
	.name = "coupon_issue",
	.keys = COUPON_ISSUE_KEYS,
	.parse = coupon_issue_parse,
	.selectors = NULL,
	.apply = coupon_issue_apply,
	.is_single_item = false,
};
