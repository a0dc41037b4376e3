/*-------------------------------------------------------------------------
 *
 * budget.h
 *	  Campaign budgets (issue 18): promotion.budget, the money a promotion
 *	  may give across all committed purchases, and promotion.points_budget,
 *	  the points.  Read for the loader, claimed by a purchase, given back by
 *	  its full refund.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_BUDGET_H
#define LOYALTY_BUDGET_H

#include "check.h"

/*
 * budget_read returns the money left of each promotion's budget, by cache
 * index (-1: the promotion has no budget), and sets *points_left to the
 * points (hundredths) left of each points_budget likewise; both NULL when
 * no promotion has either.
 */
extern int64 *budget_read(ConfigCache *cfg, const int64 **points_left);

/*
 * budget_claim counts the discount (and the points) each applied promotion
 * with a budget (a points_budget) gave on the priced check r against it,
 * and records it for
 * operation_id.  Returns -1 when every claim fit; otherwise the cache
 * index of the promotion whose budget a concurrent purchase used up
 * meanwhile, with nothing claimed (the check is to be priced again with
 * the budgets read anew).
 */
extern int	budget_claim(CheckResult *r, const char *operation_id);

/* budget_unclaim takes back what budget_claim counted for operation_id */
extern void budget_unclaim(CheckResult *r, const char *operation_id);

/*
 * budget_release gives back what purchase operation_id took from budgets,
 * on its full refund; cfg gives the order the counters are locked in.
 */
extern void budget_release(ConfigCache *cfg, const char *operation_id);

/*
 * budget_held returns, by cache index, the money each promotion's budget
 * gave to operation_id (a held order's hold), and sets *points to the
 * points likewise: what a capture may take at most, so that it prices what
 * was held; NULL when no promotion has a budget.
 */
extern int64 *budget_held(ConfigCache *cfg, const char *operation_id, int64 **points);

/*
 * budget_cap_held lowers what is left of each budget (left, points_left,
 * from budget_read) to what the hold took (held, held_points).
 */
extern void budget_cap_held(ConfigCache *cfg, int64 *left, int64 *points_left,
							const int64 *held, const int64 *held_points);

#endif							/* LOYALTY_BUDGET_H */
