/*-------------------------------------------------------------------------
 *
 * engine.h
 *	  The check engine: from a CheckInput (the request bound to the cached
 *	  configuration, the customer and what the database holds for the
 *	  check, all gathered by check_load) to a priced check (CheckResult)
 *	  with every promotion, coupon, redemption and accrual applied (SPEC
 *	  sections 2, 5, 6 and 7).
 *
 * engine_run is plain C over memory: no SPI, no request errors, no global
 * state, so it may be called in a loop over stored requests (a purchase
 * prices its check again with a promotion left out; a backtest prices
 * thousands) without touching a table.
 *
 * The pipeline, top-down:
 *	  1. lines: the bound lines with their products' flags and floors;
 *	  2. coupons: the status of each code sent, and which requires_coupon
 *		 promotions they unlock (coupons_apply.c);
 *	  3. promotions in (priority, code) order, each on the line amounts the
 *		 earlier ones left, filtered by period, schedule (store local time),
 *		 channel, store, region, tier, segment, coupon, identification and
 *		 usage limits; groups compete at their first member's turn;
 *		 exclusive promotions lock the lines they discount; each mechanic
 *		 (src/mechanics/) computes an Effect, check_apply_effect applies it;
 *	  4. discount coupons and certificates (coupons_apply.c);
 *	  5. redemption (redeem_plan over the loaded balances);
 *	  6. accrual: base (tier or setting) and points promotions, rounded down
 *		 per check and account, spread back over lines;
 *	  7. certificates sold, fiscal parts per line.
 *
 * All memory is allocated in CurrentMemoryContext (the call's).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_ENGINE_H
#define LOYALTY_ENGINE_H

#include "check.h"

/*
 * engine_run prices a check.  excluded (may be NULL) is indexed by
 * promotion index: promotions to leave out (purchase retries without a
 * promotion whose last use a concurrent purchase took).  The input is
 * only read.
 */
extern CheckResult *engine_run(ConfigCache *cfg, const CheckInput *in,
							   const bool *excluded);

#endif							/* LOYALTY_ENGINE_H */
