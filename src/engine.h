/*-------------------------------------------------------------------------
 *
 * engine.h
 *	  The check engine: from a parsed request, the customer and the cached
 *	  configuration to a priced check (CheckResult) with every promotion,
 *	  redemption and accrual applied (SPEC sections 2, 5 and 7).
 *
 * The pipeline, top-down:
 *	  1. lines: product look-up, amount = round(price * qty), floors;
 *	  2. promotions in (priority, code) order, each on the line amounts the
 *		 earlier ones left, filtered by period, schedule (store local time),
 *		 channel, store, region, tier, segment, coupon, identification and
 *		 usage limits; groups compete at their first member's turn;
 *		 exclusive promotions lock the lines they discount;
 *	  3. certificates (coupons.c, issue 5);
 *	  4. redemption (redeem_plan over ledger balances);
 *	  5. accrual: base (tier or setting) and points promotions, rounded down
 *		 per check and account, spread back over lines;
 *	  6. fiscal parts per line.
 *
 * Mechanics (src/mechanics/) compute an Effect on the check as it stands
 * without changing it; the engine applies the effect.  That is what lets a
 * group evaluate every member and keep only the best.
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
 * promotion whose last use a concurrent purchase took).  usage holds the
 * global uses of limited promotions (NULL: none limited).  balances are
 * read through ledger_balances when the customer is identified.
 */
extern CheckResult *engine_run(ConfigCache *cfg, CheckRequest *req,
							   CustomerInfo *cust, const bool *excluded,
							   const int64 *usage, EngineMode mode);

#endif							/* LOYALTY_ENGINE_H */
