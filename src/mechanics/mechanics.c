/*-------------------------------------------------------------------------
 *
 * mechanics.c
 *	  The table from Mechanic to the function that computes its effect.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mechanics.h"

static const MechanicFn FUNCTIONS[MECHANIC_COUNT] = {
	[MECH_PERCENT_OFF] = mech_percent_off,
	[MECH_AMOUNT_OFF] = mech_amount_off,
	[MECH_CHECK_DISCOUNT] = mech_check_discount,
	[MECH_NTH_ITEM] = mech_nth_item,
	[MECH_BUNDLE] = mech_bundle,
	[MECH_GIFT] = mech_gift,
	[MECH_TIER_DISCOUNT] = mech_tier_discount,
	[MECH_POINTS_PERCENT] = mech_points_percent,
	[MECH_POINTS_FIXED] = mech_points_fixed,
	[MECH_COUPON_ISSUE] = mech_coupon_issue,
	[MECH_CERTIFICATE_PER_AMOUNT] = mech_certificate_per_amount,
	[MECH_SUBSCRIPTION_PRICE] = mech_subscription_price,
};

/* mechanic_function returns the function computing mechanic m's effect. */
MechanicFn
mechanic_function(Mechanic m)
{
	if ((int) m < 0 || (int) m >= MECHANIC_COUNT || FUNCTIONS[m] == NULL)
		elog(ERROR, "unknown mechanic %d", (int) m);
	return FUNCTIONS[m];
}

/*
 * mechanic_is_single_item tells whether a mechanic prices one item on its
 * own, without looking at the rest of the check: the ones a shelf price
 * (catalog_prices) may show.
 */
bool
mechanic_is_single_item(Mechanic m)
{
	return m == MECH_PERCENT_OFF || m == MECH_AMOUNT_OFF ||
		m == MECH_TIER_DISCOUNT || m == MECH_SUBSCRIPTION_PRICE;
}
