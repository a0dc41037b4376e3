/*-------------------------------------------------------------------------
 *
 * points.c
 *	  Points mechanics: points_percent and points_fixed (SPEC section 5).
 *
 * At its turn a points promotion only records what it gives: the lines a
 * points_percent covers (a PointsRate), or the fixed points of a
 * points_fixed whose min_total the check reaches at that turn (a
 * PointsGrant).  Points are computed after redemption, on each line's paid
 * money (engine.c, accrual).  Points need an identified customer and a
 * known account; lines of no_points products earn nothing.
 *
 * Decisions where the SPEC is silent:
 *	  - "multiplier": M adds (M - 1) times the base accrual of the covered
 *		lines, into the rule's account; two multipliers add up (x2 and x3
 *		give base + 1 + 2 = 4 times the base).
 *	  - points_fixed without "expires" uses the account's lifetime.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mechanics.h"

/* mech_points_percent: extra points on the matching lines */
void
mech_points_percent(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const PointsPercentRule *rule = &p->rule->u.points_percent;
	int			account;
	bool	   *lines;
	bool		any = false;
	int			i;

	if (!r->cust->identified)
		return;
	account = config_account_index(r->cfg, rule->account);
	if (account < 0)
		return;
	lines = palloc0(sizeof(bool) * r->nlines);
	for (i = 0; i < r->nlines; i++)
	{
		if (r->lines[i].no_points || !check_line_matches(r, i, p->sel_products))
			continue;
		lines[i] = true;
		any = true;
	}
	if (!any)
	{
		pfree(lines);
		return;
	}
	eff->rate = palloc0(sizeof(PointsRate));
	eff->rate->promo = p;
	eff->rate->account = account;
	eff->rate->percent = rule->percent;
	eff->rate->multiplier = rule->multiplier;
	eff->rate->lines = lines;
}

/* mech_points_fixed: fixed points for a check reaching min_total */
void
mech_points_fixed(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const PointsFixedRule *rule = &p->rule->u.points_fixed;
	int			account;
	int64		points;
	PointsGrant *g;

	if (!r->cust->identified || check_total(r) < rule->min_total)
		return;
	account = config_account_index(r->cfg, rule->account);
	if (account < 0)
		return;
	points = rule->points;
	if (r->cfg->points_precision == 0)
		points -= points % 100;
	if (points <= 0)
		return;
	g = palloc0(sizeof(PointsGrant));
	g->promo = p;
	g->account = account;
	g->points = points;
	if (rule->expires.kind != VALIDITY_DEFAULT)
		g->expires_at = check_validity_end(r, &rule->expires, &g->has_expiry);
	eff->grant = g;
	eff->message = psprintf("Bonus: %s points to the \"%s\" account (%s)",
							r->cfg->points_precision == 0 ?
							psprintf(INT64_FORMAT, points / 100) :
							scaled_to_cstring(points, 2),
							rule->account, p->name);
}
