/*-------------------------------------------------------------------------
 *
 * common.h
 *	  What several mechanics' effects share: a percent off the matching
 *	  lines (percent_off, tier_discount, subscription_price), whole units
 *	  and the discount of chosen units (nth_item, bundle, gift), and the
 *	  step a check reaches (check_discount, coupon_issue).
 *
 * Included by the mechanic files only, together with mechanics.h and the
 * check core (check.h).  Pure functions on the check: no SQL, no errors a
 * client can cause.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_MECHANICS_COMMON_H
#define LOYALTY_MECHANICS_COMMON_H

#include "check.h"
#include "mechanics.h"

/*
 * mech_percent_lines takes percent (hundredths) off every discountable line
 * matching selector sel.
 */
extern void mech_percent_lines(CheckResult *r, const CachedPromotion *p,
							   int sel, int32 percent, Effect *eff);

/* mech_line_units is the number of whole units of a line. */
static inline int64
mech_line_units(const CheckLine *l)
{
	return l->qty / QTY_ONE;
}

/*
 * mech_discount_units writes, for each line, the discount of its "taken"
 * units computed by the discount, capped by the line's floor.
 */
extern void mech_discount_units(CheckResult *r, const int64 *taken,
								const Discount *disc, Effect *eff);

/* mech_step_reached is the last step whose min_total total reaches, or NULL. */
extern const RuleStep *mech_step_reached(const StepList *steps, int64 total);

/*
 * mech_apply computes promotion p's Effect on the check as it stands: the
 * shared conditions (min_qty, min_items) first, then the mechanic's apply,
 * then the shared cap (max_discount).  The engine calls this, never a
 * routine's apply directly.
 */
extern void mech_apply(CheckResult *r, const CachedPromotion *p, Effect *eff);

/*
 * mech_cap_points caps the points of each promotion with a points_budget
 * at what is left of it; the engine calls it after the accrual.
 */
extern void mech_cap_points(CheckResult *r);

#endif							/* LOYALTY_MECHANICS_COMMON_H */
