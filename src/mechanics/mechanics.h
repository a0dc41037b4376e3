/*-------------------------------------------------------------------------
 *
 * mechanics.h
 *	  The promotion mechanics of SPEC section 5, one function each.  A
 *	  mechanic reads the check as it stands (CheckResult) and fills an
 *	  Effect (discount per line, coupons or points to give, a suggestion);
 *	  it never changes the check: the engine applies the effect, or throws
 *	  it away when a better member of the promotion's group wins.
 *
 * Files: discount.c (percent_off, amount_off, check_discount,
 * tier_discount, subscription_price), units.c (nth_item, bundle, gift),
 * points.c (points_percent, points_fixed), issue.c (coupon_issue,
 * certificate_per_amount).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_MECHANICS_H
#define LOYALTY_MECHANICS_H

#include "check.h"

typedef void (*MechanicFn) (CheckResult *r, const CachedPromotion *p,
							Effect *eff);

extern void mech_percent_off(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_amount_off(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_check_discount(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_tier_discount(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_subscription_price(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_nth_item(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_bundle(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_gift(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_points_percent(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_points_fixed(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_coupon_issue(CheckResult *r, const CachedPromotion *p, Effect *eff);
extern void mech_certificate_per_amount(CheckResult *r, const CachedPromotion *p, Effect *eff);

/* the mechanic's function, by Mechanic */
extern MechanicFn mechanic_function(Mechanic m);

/* does the mechanic price a single item on its own (catalog_prices)? */
extern bool mechanic_is_single_item(Mechanic m);

#endif							/* LOYALTY_MECHANICS_H */
