/*-------------------------------------------------------------------------
 *
 * issue.c
 *	  Mechanics that issue something for the next purchase: coupon_issue
 *	  (bounce-back coupons) and certificate_per_amount (SPEC section 5).
 *
 * The threshold is read on the check as it stands at the promotion's turn
 * (give these promotions a late priority to count the check after its
 * discounts).  The result is an IssuedItem in the response's "issued"
 * list with the coupon's percent or amount, or the certificates' value and
 * count, and valid_until computed from the rule's validity in the store's
 * local time.  Codes are generated when a purchase commits (issue 5).
 *
 * certificate_per_amount gives a certificate per "step" of the check, but
 * never more than the rule's "max_per_check" (default 10, at most 1000):
 * the number of rows, codes and events a purchase writes must not follow
 * the check's total, which a request controls (issue 14: a price of
 * 600,000,000 once asked for a million certificates).  A check worth more
 * gets exactly the cap, and its issued item says "capped".  coupon_issue
 * prints one coupon per promotion whatever the total.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mechanics.h"

/* mech_coupon_issue: a coupon of the best step reached */
void
mech_coupon_issue(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const CouponIssueRule *rule = &p->rule->u.coupon_issue;
	int64		total = check_total(r);
	const RuleStep *step = NULL;
	IssuedItem *it;
	int			i;

	for (i = 0; i < rule->steps.count; i++)
		if (total >= rule->steps.steps[i].min_total)
			step = &rule->steps.steps[i];
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

/*
 * mech_certificate_per_amount: a certificate for every "step" spent, at
 * most max_per_check of them
 */
void
mech_certificate_per_amount(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const CertificateRule *rule = &p->rule->u.certificate_per_amount;
	int64		count = check_total(r) / rule->step;
	IssuedItem *it;

	if (count <= 0)
		return;
	it = palloc0(sizeof(IssuedItem));
	it->kind = ISSUED_CERTIFICATE;
	it->promo = p;
	it->value.kind = DISCOUNT_AMOUNT;
	it->value.amount = rule->value;
	it->capped = count > rule->max_per_check;
	it->count = (int) Min(count, rule->max_per_check);
	it->valid_until = check_validity_end(r, &rule->valid, &it->has_valid_until);
	eff->issued = it;
	eff->message = psprintf("Print %d certificate%s of %s (%s%s)", it->count,
							it->count == 1 ? "" : "s",
							check_money_text(rule->value), p->name,
							it->capped ? "; the most one check earns" : "");
}
