/*-------------------------------------------------------------------------
 *
 * redeem.c
 *	  How many points a check may spend, from which accounts, on which
 *	  lines.  Pure computation over int64; see redeem.h for the rules.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "money.h"
#include "redeem.h"

/*
 * gcd64 returns the greatest common divisor of two positive numbers.
 */
static int64
gcd64(int64 a, int64 b)
{
	while (b != 0)
	{
		int64		t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * points_step is the smallest number of points (hundredths) that may be
 * spent at once: a whole point at precision 0, a hundredth at precision 2,
 * made coarser when needed so that every multiple is worth whole minor
 * units of money (at a point value of 0.50 and precision 2, 0.02 points).
 */
static int64
points_step(int64 point_value, int precision)
{
	int64		unit = (precision == 0) ? 100 : 1;
	/* step * point_value / 100 must be whole: step a multiple of 100/gcd */
	int64		money_step = 100 / gcd64(point_value, 100);

	return unit / gcd64(unit, money_step) * money_step;
}

/*
 * plan_once runs one pass over the accounts spending up to "requested"
 * points (-1: no limit) and fills results; returns the points applied.
 */
static int64
plan_once(const RedeemLine *lines, int nlines,
		  const RedeemAccount *accounts, int naccounts,
		  int64 check_total, int64 requested,
		  int64 point_value, int64 step, RedeemResult *results)
{
	int64	   *paid = palloc0(sizeof(int64) * nlines);
	int64	   *caps = palloc(sizeof(int64) * nlines);
	int64		left = requested < 0 ? PG_INT64_MAX : requested;
	int64		applied = 0;
	int			a,
				l;

	for (a = 0; a < naccounts; a++)
	{
		const RedeemAccount *acc = &accounts[a];
		RedeemResult *res = &results[a];
		int64		capsum = 0;
		int64		max_points;
		int64		take;

		res->line_money = palloc0(sizeof(int64) * nlines);
		res->max_points = res->points = res->money = 0;

		if (check_total < acc->min_check || acc->available <= 0)
			continue;

		for (l = 0; l < nlines; l++)
		{
			int64		cap = 0;

			if (!lines[l].no_redeem && lines[l].amount > 0)
			{
				/* floor(amount * share), less what earlier accounts pay */
				cap = (int64) (((int128) lines[l].amount * acc->share) / PERCENT_100)
					- paid[l];
				if (cap < 0)
					cap = 0;
			}
			caps[l] = cap;
			capsum += cap;
		}

		/* what the caps buy, in hundredths of a point, down to the step */
		max_points = (int64) (((int128) capsum * 100) / point_value);
		if (max_points > acc->available)
			max_points = acc->available;
		max_points -= max_points % step;
		res->max_points = max_points;

		take = Min(max_points, left);
		take -= take % step;
		if (take <= 0)
			continue;

		res->points = take;
		res->money = (int64) (((int128) take * point_value) / 100);
		allocate_largest_remainder(res->money, caps, nlines, res->line_money);
		for (l = 0; l < nlines; l++)
			paid[l] += res->line_money[l];
		left -= take;
		applied += take;
	}

	pfree(paid);
	pfree(caps);
	return applied;
}

/*
 * redeem_plan fills results[] for a request of "requested" points (-1 for
 * the most possible).  results[a].max_points always reports the most that
 * account could pay with nothing asked of it but "max", so that a response
 * can show both what was asked and what was possible.
 */
int64
redeem_plan(const RedeemLine *lines, int nlines,
			const RedeemAccount *accounts, int naccounts,
			int64 check_total, int64 requested,
			int64 point_value, int precision,
			RedeemResult *results)
{
	int64		step;
	int64		applied;
	int			a;

	Assert(point_value > 0);
	Assert(precision == 0 || precision == 2);

	if (naccounts == 0)
		return 0;
	step = points_step(point_value, precision);

	if (requested < 0)
		return plan_once(lines, nlines, accounts, naccounts, check_total, -1,
						 point_value, step, results);

	/* the maxima first, then the plan for what was asked */
	{
		RedeemResult *maxima = palloc(sizeof(RedeemResult) * naccounts);

		plan_once(lines, nlines, accounts, naccounts, check_total, -1,
				  point_value, step, maxima);
		applied = plan_once(lines, nlines, accounts, naccounts, check_total,
							requested, point_value, step, results);
		for (a = 0; a < naccounts; a++)
		{
			results[a].max_points = maxima[a].max_points;
			pfree(maxima[a].line_money);
		}
		pfree(maxima);
	}
	return applied;
}
