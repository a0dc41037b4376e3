/*-------------------------------------------------------------------------
 *
 * accrual.c
 *	  What a purchase earned, written to the ledger: the points a priced
 *	  check accrued per account become lots (SPEC section 5, base accrual;
 *	  section 8, lots).  The check's arithmetic (what was earned) is the
 *	  engine's; the lots, debts and events are the ledger's (ledger.c).
 *	  This file joins the two, so that the ledger does not depend on the
 *	  check's data model.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "miscadmin.h"

#include "accrual.h"
#include "check.h"
#include "clock.h"
#include "config_cache.h"
#include "events.h"
#include "ledger.h"

/*
 * ledger_accrue_check credits what a check earned: per account, one lot for
 * all the points that expire together (the percent accrual and the grants
 * that follow the account's lifetime share one).  The lots of accounts
 * without debt (the usual case) are written by one statement; an account in
 * debt goes through ledger_accrue, which pays the debt first and writes its
 * own event (after the batch's, written first).  The new lots'
 * points_earned events go to the batch.
 */
void
ledger_accrue_check(CheckResult *r, const char *operation_id, EventBatch *events)
{
	ConfigCache *cfg = r->cfg;
	ListCell   *lc;
	int			a;
	int			nlots = 0;
	AccrualLot *lots = palloc(sizeof(AccrualLot) * cfg->naccounts * (list_length(r->grants) + 1));

	for (a = 0; a < cfg->naccounts; a++)
	{
		CachedAccountType *acc = &cfg->accounts[a];
		/* from issue_at: a register's clock running fast moves nothing later */
		TimestampTz available = clock_add_interval(r->issue_at, &acc->activation_delay, r->tz);
		TimestampTz expires = acc->has_lifetime ?
			clock_add_interval(r->issue_at, &acc->lifetime, r->tz) : DT_NOEND;
		bool		in_debt = !r->has_balances || r->balances[a].in_debt;
		AccrualLot *mine = &lots[nlots];
		int			n = 1;
		int			i;

		mine[0].account = acc->code;
		mine[0].points = r->rate_points[a];
		mine[0].available_at = available;
		mine[0].expires_at = expires;
		foreach(lc, r->grants)
		{
			PointsGrant *g = lfirst(lc);
			TimestampTz e = g->has_expiry ? g->expires_at : expires;

			if (g->account != a)
				continue;
			for (i = 0; i < n && mine[i].expires_at != e; i++)
				;
			if (i == n)
			{
				mine[n].account = acc->code;
				mine[n].points = 0;
				mine[n].available_at = available;
				mine[n].expires_at = e;
				n++;
			}
			mine[i].points += g->points;
		}
		/* keep the lots with points; an account in debt pays it first */
		for (i = 0; i < n; i++)
		{
			if (mine[i].points <= 0)
				continue;
			if (in_debt)
			{
				/* its event follows those gathered so far, as it always did */
				event_batch_write(events, r->cust->id);
				ledger_accrue(r->cust->id, acc->code, mine[i].points, operation_id,
							  r->at, available, mine[i].expires_at);
			}
			else
				lots[nlots++] = mine[i];
		}
	}
	ledger_accrue_lots(r->cust->id, lots, nlots, operation_id, r->at, events);
	pfree(lots);
}
