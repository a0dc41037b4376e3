/*-------------------------------------------------------------------------
 *
 * engine.c
 *	  The check engine's pipeline (see engine.h): lines, promotions in
 *	  order with groups and exclusivity, certificates, redemption, accrual
 *	  and fiscal parts.  Only the pipeline: the line arithmetic is in
 *	  check.c, the mechanics in src/mechanics/, the coupon stage in
 *	  coupons_apply.c.
 *
 * It must not run SQL or raise an error a client can cause: check_load
 * (check_load.c) read and checked everything before (elog for what cannot
 * happen is fine).
 *
 * Costs: per check, one pass over the lines per promotion in scope at most
 * (selector matches are memoized on the cached product), no query at all.
 * Only the candidates are visited: the check-level promotions and those
 * the lines' products trigger through the promotion index (config_cache.h);
 * the rest cost nothing, however many there are.  Each candidate's lines
 * (those its key selector matches) are listed once per check, and the
 * shared passes of mechanics/common.c visit only those (r->key_lines).
 *
 * Interrupts (issue 14): the loops over the lines, over the promotions and
 * a group's members, over points rates and grants, and the rounds of
 * check_spread call CHECK_FOR_INTERRUPTS, so a cancel or statement_timeout
 * stops a check within one line's or one promotion's work.  A mechanic's
 * own pass over the lines (at most REQUEST_MAX_LINES, constant work per
 * line) runs between two of those checks and does not repeat it.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/datetime.h"

#include "coupons_apply.h"
#include "engine.h"
#include "mechanics/common.h"
#include "mechanics/mechanics.h"

/* the denominator of exact accrual numerators (see compute_accrual) */
#define ACCRUAL_DENOM	INT64CONST(1000000)


/* ---------------------------------------------------------------------
 * Time
 * ---------------------------------------------------------------------
 */

/* set_local_time computes the check's local date, weekday and minute. */
static void
set_local_time(CheckResult *r)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	int			julian;
	int			dow;

	if (timestamp2tm(r->at, &tzoff, &tm, &fsec, NULL, r->tz) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	julian = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);
	r->local_date = julian - POSTGRES_EPOCH_JDATE;
	dow = j2day(julian);		/* 0 = Sunday */
	r->iso_weekday = dow == 0 ? 7 : dow;
	r->minute_of_day = tm.tm_hour * 60 + tm.tm_min;
}


/* ---------------------------------------------------------------------
 * Lines
 * ---------------------------------------------------------------------
 */

/*
 * setup_certificate_line sets up a line of a certificate product (check_bind
 * checked it): whole units, each a certificate worth the unit price; no
 * discount, no points, not paid with points or certificates (whatever the
 * product's flags say), and not counted in the check's thresholds
 * (check_total).
 */
static void
setup_certificate_line(CheckResult *r, CheckLine *l)
{
	l->gift_certificate = true;
	l->no_discount = l->no_points = l->no_redeem = true;
	r->gift_amount += l->amount;
}

/* setup_lines builds the check's lines from the bound request. */
static void
setup_lines(CheckResult *r)
{
	CheckRequest *req = r->req;
	int			i;

	r->nlines = req->nlines;
	r->lines = palloc0(sizeof(CheckLine) * r->nlines);
	for (i = 0; i < r->nlines; i++)
	{
		RequestLine *rl = &req->lines[i];
		const BoundLine *bl = &r->in->lines[i];
		CheckLine  *l = &r->lines[i];
		CachedProduct *p = bl->product;

		CHECK_FOR_INTERRUPTS();
		l->index = i;
		l->sku = rl->sku;
		l->product = p;
		l->qty = rl->qty;
		l->price = bl->price;
		l->amount = bl->amount;
		if (p != NULL && p->gift_certificate)
			setup_certificate_line(r, l);
		else if (p != NULL)
		{
			l->no_discount = p->no_discount;
			l->no_points = p->no_points;
			l->no_redeem = p->no_redeem;
			if (p->min_price >= 0)
				l->floor = Min(money_times_qty(p->min_price, l->qty), l->amount);
		}
		else
			r->warnings = lappend(r->warnings,
								  psprintf("Unknown SKU \"%s\" at lines[%d]: priced as sent, no product promotions.",
										   rl->sku, i));
		r->amount += l->amount;
		l->redeem_points = palloc0(sizeof(int64) * Max(r->cfg->naccounts, 1));
		l->accrual = palloc0(sizeof(int64) * Max(r->cfg->naccounts, 1));
	}
}


/* ---------------------------------------------------------------------
 * Promotions
 * ---------------------------------------------------------------------
 */

/* customer_uses is how often the customer used promotion p. */
static int64
customer_uses(CustomerInfo *cust, const CachedPromotion *p)
{
	int			i;

	for (i = 0; i < cust->nusage; i++)
		if (strcmp(cust->usage_promotion[i], p->code) == 0)
			return cust->usage_count[i];
	return 0;
}

/*
 * in_variant tells whether the customer is in the variant of the
 * experiment promotion p belongs to (never: anonymous, the holdout, an
 * experiment that is gone, a variant it does not have).
 */
static bool
in_variant(const CustomerInfo *cust, const CachedPromotion *p)
{
	int			v;

	if (!cust->identified || p->experiment == NULL || p->variant == EXPERIMENT_HOLDOUT)
		return false;
	v = experiment_variant_of(p->experiment, cust->id);
	return v != EXPERIMENT_HOLDOUT && (p->variant == EXPERIMENT_ANY_VARIANT || v == p->variant);
}

/*
 * in_scope tells whether promotion p applies to this check at all: period,
 * channel, store, region, customer (identified, tier, segment, limits),
 * coupon, usage limit and schedule.
 */
static bool
in_scope(CheckResult *r, const CachedPromotion *p, const bool *unlocked,
		 const int64 *usage)
{
	CustomerInfo *cust = r->cust;

	if (r->mode == ENGINE_CATALOG && !p->mechanic->is_single_item)
		return false;
	if (p->has_start && r->at < p->starts_at)
		return false;
	if (p->has_end && r->at >= p->ends_at)
		return false;
	if (p->channels && !namelist_has(p->channels, r->channel))
		return false;
	if (p->stores && (r->store == NULL || !namelist_has(p->stores, r->store->code)))
		return false;
	if (p->regions && (r->store == NULL || !namelist_has(p->regions, r->store->region)))
		return false;
	if ((p->identified_only || p->tiers || p->segments || p->per_customer_limit > 0) &&
		!cust->identified)
		return false;
	if (p->tiers && (cust->tier == NULL || !namelist_has(p->tiers, cust->tier->code)))
		return false;
	if (p->segments && !namelist_intersects(p->segments, cust->segments, cust->nsegments))
		return false;
	if (p->segments_exclude &&
		namelist_intersects(p->segments_exclude, cust->segments, cust->nsegments))
		return false;
	if (p->experiment_code != NULL && !in_variant(cust, p))
		return false;
	if (p->requires_coupon && !unlocked[p->index])
		return false;
	if (p->usage_limit > 0 && usage != NULL && usage[p->index] >= p->usage_limit)
		return false;
	if (p->per_customer_limit > 0 && customer_uses(cust, p) >= p->per_customer_limit)
		return false;
	if (!schedule_matches(p->schedule, r->local_date, r->iso_weekday, r->minute_of_day))
		return false;
	return true;
}

/* effect_reset clears an effect for the next evaluation. */
static void
effect_reset(Effect *eff, int nlines)
{
	int64	   *delta = eff->delta;

	memset(delta, 0, sizeof(int64) * nlines);
	memset(eff, 0, sizeof(Effect));
	eff->delta = delta;
}

/*
 * collect_candidates lists, ascending and each once, the promotions a
 * check may apply: the check-level ones and those whose key selector some
 * line's product matches (config_product_promotions, from the promotion
 * index).  A promotion no line can trigger does nothing, so it is never
 * looked at: the cost follows the lines and what they trigger, not the
 * number of promotions (a bitmap of one bit per promotion is all).
 */
static int *
collect_candidates(CheckResult *r, int *ncand)
{
	ConfigCache *cfg = r->cfg;
	int			nwords = (cfg->npromotions + 63) / 64;
	uint64	   *seen = palloc0(sizeof(uint64) * Max(nwords, 1));
	int			count = 0;
	int		   *cand;
	int			i,
				j,
				w;

	for (j = 0; j < cfg->ncheck_level; j++)
	{
		int			k = cfg->check_level_list[j];

		seen[k / 64] |= UINT64CONST(1) << (k % 64);
	}
	count = cfg->ncheck_level;
	for (i = 0; i < r->nlines; i++)
	{
		const int  *promos;
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (r->lines[i].product == NULL)
			continue;
		promos = config_product_promotions(cfg, r->lines[i].product, &n);
		for (j = 0; j < n; j++)
		{
			int			k = promos[j];
			uint64		bit = UINT64CONST(1) << (k % 64);

			if (!(seen[k / 64] & bit))
			{
				seen[k / 64] |= bit;
				count++;
			}
		}
	}
	cand = palloc(sizeof(int) * Max(count, 1));
	*ncand = 0;
	for (w = 0; w < nwords; w++)
	{
		uint64		word = seen[w];

		while (word != 0)
		{
			int			b = pg_rightmost_one_pos64(word);

			cand[(*ncand)++] = w * 64 + b;
			word &= word - 1;
		}
	}
	Assert(*ncand == count);
	pfree(seen);
	return cand;
}

/*
 * The lines each candidate promotion's key selector matches (the
 * per-promotion line lists), built once per check from the lines' own
 * candidate lists: entry s of "start" and "count" is cand[s]'s slice of
 * "lines".  A gift certificate line matches no selector and is in none.
 */
typedef struct PromoLines
{
	int		   *start;
	int		   *count;
	int		   *lines;
} PromoLines;

/* build_promo_lines builds the line lists of the ncand candidates cand. */
static void
build_promo_lines(CheckResult *r, const int *cand, int ncand, PromoLines *pl)
{
	ConfigCache *cfg = r->cfg;
	/* candidate position by promotion index: only candidates' are read */
	int		   *pos = palloc(sizeof(int) * Max(cfg->npromotions, 1));
	int			total = 0;
	int			i,
				j,
				s;

	pl->start = palloc(sizeof(int) * Max(ncand, 1));
	pl->count = palloc0(sizeof(int) * Max(ncand, 1));
	for (s = 0; s < ncand; s++)
		pos[cand[s]] = s;
	for (i = 0; i < r->nlines; i++)
	{
		const int  *promos;
		int			n;

		if (r->lines[i].product == NULL || r->lines[i].gift_certificate)
			continue;
		promos = config_product_promotions(cfg, r->lines[i].product, &n);
		for (j = 0; j < n; j++)
			pl->count[pos[promos[j]]]++;
		total += n;
	}
	total = 0;
	for (s = 0; s < ncand; s++)
	{
		pl->start[s] = total;
		total += pl->count[s];
		pl->count[s] = 0;
	}
	pl->lines = palloc(sizeof(int) * Max(total, 1));
	for (i = 0; i < r->nlines; i++)
	{
		const int  *promos;
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (r->lines[i].product == NULL || r->lines[i].gift_certificate)
			continue;
		promos = config_product_promotions(cfg, r->lines[i].product, &n);
		for (j = 0; j < n; j++)
		{
			s = pos[promos[j]];
			pl->lines[pl->start[s] + pl->count[s]++] = i;
		}
	}
	pfree(pos);
}

/*
 * apply_one computes promotion cand[s]'s effect into eff, showing the
 * mechanic only the lines its key selector matches (r->key_lines).
 */
static void
apply_one(CheckResult *r, const PromoLines *pl, const int *cand, int s,
		  Effect *eff)
{
	const CachedPromotion *p = &r->cfg->promotions[cand[s]];

	effect_reset(eff, r->nlines);
	if (p->key_sel >= 0)
	{
		r->key_lines = pl->lines + pl->start[s];
		r->nkey_lines = pl->count[s];
	}
	mech_apply(r, p, eff);
	r->key_lines = NULL;
	r->nkey_lines = 0;
}

/*
 * run_promotions applies the promotions in scope in (priority, code) order.
 * A group is decided at its first member's turn: every member in scope is
 * evaluated on the check as it stands and only the one giving the largest
 * discount is applied (ties: the earlier in order).
 */
static void
run_promotions(CheckResult *r, const bool *excluded)
{
	ConfigCache *cfg = r->cfg;
	const int64 *usage = r->in->usage;
	bool	   *unlocked = palloc0(sizeof(bool) * Max(cfg->npromotions, 1));
	bool	   *group_done = palloc0(sizeof(bool) * Max(cfg->ngroups, 1));
	int		   *cand;
	int		   *scope;			/* positions in cand, ascending */
	int			nscope = 0;
	int			ncand;
	PromoLines	pl;
	Effect		eff;
	Effect		best;
	int			s,
				t;

	coupons_check(r, unlocked);

	/* the candidates, then those in scope: both ascending (the order) */
	cand = collect_candidates(r, &ncand);
	scope = palloc(sizeof(int) * Max(ncand, 1));
	for (s = 0; s < ncand; s++)
	{
		int			i = cand[s];

		CHECK_FOR_INTERRUPTS();
		if ((excluded == NULL || !excluded[i]) &&
			in_scope(r, &cfg->promotions[i], unlocked, usage))
			scope[nscope++] = s;
	}
	build_promo_lines(r, cand, ncand, &pl);

	eff.delta = palloc0(sizeof(int64) * r->nlines);
	best.delta = palloc0(sizeof(int64) * r->nlines);
	for (s = 0; s < nscope; s++)
	{
		const CachedPromotion *p = &cfg->promotions[cand[scope[s]]];
		const CachedPromotion *winner = NULL;

		CHECK_FOR_INTERRUPTS();
		if (p->grp_id < 0)
		{
			apply_one(r, &pl, cand, scope[s], &eff);
			check_apply_effect(r, p, &eff);
			continue;
		}
		if (group_done[p->grp_id])
			continue;
		group_done[p->grp_id] = true;
		effect_reset(&best, r->nlines);
		for (t = s; t < nscope; t++)
		{
			const CachedPromotion *q = &cfg->promotions[cand[scope[t]]];

			CHECK_FOR_INTERRUPTS();
			if (q->grp_id != p->grp_id)
				continue;
			apply_one(r, &pl, cand, scope[t], &eff);
			if (winner == NULL || eff.total > best.total)
			{
				int64	   *tmp = best.delta;

				best = eff;
				eff.delta = tmp;
				winner = q;
			}
		}
		if (winner != NULL)
			check_apply_effect(r, winner, &best);
	}
	pfree(eff.delta);
	pfree(best.delta);
	pfree(unlocked);
	pfree(cand);
	pfree(scope);
	pfree(pl.start);
	pfree(pl.count);
	pfree(pl.lines);
	pfree(group_done);
}


/* ---------------------------------------------------------------------
 * Redemption and accrual
 * ---------------------------------------------------------------------
 */

/* line_due is what a line still costs before points. */
static int64
line_due(const CheckLine *l)
{
	return l->amount - l->discount - l->certificate;
}

/*
 * spread_points spreads points (hundredths) over the lines by largest
 * remainder in units of the points precision (whole points at precision
 * 0), so that every line's share is itself a whole number of points.
 */
static void
spread_points(CheckResult *r, int64 points, const int64 *weights, int64 *out)
{
	int64		unit = r->cfg->points_precision == 0 ? 100 : 1;
	int			i;

	allocate_largest_remainder(points / unit, weights, r->nlines, out);
	for (i = 0; i < r->nlines; i++)
		out[i] *= unit;
}

/*
 * run_redemption spends points as the request asks (min(requested, max)),
 * through redeem_plan, from the balances the loader read.
 */
static void
run_redemption(CheckResult *r)
{
	ConfigCache *cfg = r->cfg;
	int			na = cfg->naccounts;
	RedeemLine *rl;
	RedeemAccount *ra;
	int64		due = 0;
	int64	   *weights;
	int			a,
				i;

	r->redeem_requested = r->req->redeem == REDEEM_MAX ? -1 :
		r->req->redeem == REDEEM_POINTS ? r->req->redeem_points : 0;
	if (!r->cust->identified || na == 0 || r->mode != ENGINE_CHECK)
		return;
	if (!r->in->has_balances)
		elog(ERROR, "the balances of customer " INT64_FORMAT " were not loaded", r->cust->id);
	r->balances = r->in->balances;
	r->has_balances = true;

	rl = palloc(sizeof(RedeemLine) * r->nlines);
	for (i = 0; i < r->nlines; i++)
	{
		/* certificates sold are neither paid with points nor count for min_check */
		rl[i].amount = r->lines[i].gift_certificate ? 0 : line_due(&r->lines[i]);
		rl[i].no_redeem = r->lines[i].no_redeem;
		due += rl[i].amount;
	}
	ra = palloc(sizeof(RedeemAccount) * na);
	for (a = 0; a < na; a++)
	{
		ra[a].available = Max(r->balances[a].available, 0);
		ra[a].share = cfg->accounts[a].share;
		ra[a].min_check = cfg->accounts[a].min_check;
	}
	r->redeem = palloc0(sizeof(RedeemResult) * na);
	r->redeem_applied = redeem_plan(rl, r->nlines, ra, na, due,
									r->redeem_requested, cfg->point_value,
									cfg->points_precision, r->redeem);

	/* money per line, and the points behind it per line and account */
	weights = palloc(sizeof(int64) * r->nlines);
	for (a = 0; a < na; a++)
	{
		RedeemResult *res = &r->redeem[a];
		int64	   *pts = palloc0(sizeof(int64) * r->nlines);

		r->redeem_max += res->max_points;
		if (res->points <= 0)
			continue;
		for (i = 0; i < r->nlines; i++)
		{
			r->lines[i].redeemed += res->line_money[i];
			r->redeemed += res->line_money[i];
			weights[i] = res->line_money[i];
		}
		spread_points(r, res->points, weights, pts);
		for (i = 0; i < r->nlines; i++)
			r->lines[i].redeem_points[a] = pts[i];
	}
}

/* round_points rounds hundredths of a point down to the points precision. */
static int64
round_points(CheckResult *r, int64 points)
{
	if (r->cfg->points_precision == 0)
		return points - points % 100;
	return points;
}

/* credit_promotion records points earned through promotion p. */
static void
credit_promotion(CheckResult *r, const CachedPromotion *p, int64 points)
{
	ListCell   *lc;

	foreach(lc, r->applied)
	{
		AppliedPromotion *ap = lfirst(lc);

		if (ap->promo == p)
			ap->points += points;
	}
}

/*
 * compute_accrual computes the points the check earns: the base accrual
 * (tier accrual_percent, else the setting) on each line's paid money into
 * "main", points_percent rates, and points_fixed grants.  Percent points
 * are summed exactly per account (numerators over ACCRUAL_DENOM), rounded
 * down to the points precision once per check and account, and spread back
 * over the lines by largest remainder; a grant is spread over the lines in
 * proportion to their paid money, or by its own line weights (points per
 * unit of a SKU go to that SKU's lines).
 */
static void
compute_accrual(CheckResult *r)
{
	ConfigCache *cfg = r->cfg;
	int			na = cfg->naccounts;
	int			n = r->nlines;
	int32		base;
	int128	  **num;
	int64	   *paid;
	int64	   *weights;
	int64	   *spread;
	ListCell   *lc;
	int			a,
				i;

	r->accrual = palloc0(sizeof(int64) * Max(na, 1));
	r->rate_points = palloc0(sizeof(int64) * Max(na, 1));
	if (!r->cust->identified || na == 0 || r->mode != ENGINE_CHECK)
		return;

	base = r->cust->tier ? r->cust->tier->accrual_percent : cfg->accrual_percent;
	paid = palloc(sizeof(int64) * n);
	weights = palloc(sizeof(int64) * n);
	spread = palloc(sizeof(int64) * n);
	num = palloc(sizeof(int128 *) * na);
	for (a = 0; a < na; a++)
		num[a] = palloc0(sizeof(int128) * n);
	for (i = 0; i < n; i++)
	{
		CheckLine  *l = &r->lines[i];

		paid[i] = l->no_points ? 0 : l->amount - l->discount - l->certificate - l->redeemed;
		if (cfg->main_account >= 0)
			num[cfg->main_account][i] += (int128) paid[i] * base * 100;
	}
	foreach(lc, r->rates)
	{
		PointsRate *pr = lfirst(lc);
		int128		extra = 0;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < n; i++)
		{
			int128		x;

			if (!pr->lines[i])
				continue;
			if (pr->percent > 0)
				x = (int128) paid[i] * pr->percent * 100;
			else
				x = (int128) paid[i] * base * (pr->multiplier - 100);
			num[pr->account][i] += x;
			extra += x;
		}
		/* what the promotion adds, for the response (rounded down) */
		credit_promotion(r, pr->promo, round_points(r, (int64) (extra / ACCRUAL_DENOM)));
	}

	for (a = 0; a < na; a++)
	{
		int128		sum = 0;
		int128		maxnum = 0;
		int128		div = 1;
		int64		pts;

		for (i = 0; i < n; i++)
		{
			sum += num[a][i];
			if (num[a][i] > maxnum)
				maxnum = num[a][i];
		}
		pts = round_points(r, (int64) (sum / ACCRUAL_DENOM));
		if (pts <= 0)
			continue;
		/* weights must fit int64 and their sum too: scale them down */
		while (maxnum / div > (int128) (PG_INT64_MAX / 2) / (n + 1))
			div *= 10;
		for (i = 0; i < n; i++)
			weights[i] = (int64) (num[a][i] / div);
		spread_points(r, pts, weights, spread);
		for (i = 0; i < n; i++)
			r->lines[i].accrual[a] += spread[i];
		r->rate_points[a] = pts;
		r->accrual[a] += pts;
	}

	foreach(lc, r->grants)
	{
		PointsGrant *g = lfirst(lc);
		int64		sum = 0;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < n; i++)
			sum += paid[i];
		if (g->line_weights != NULL)
			spread_points(r, g->points, g->line_weights, spread);
		else if (sum == 0)
		{
			/* nothing paid with points eligibility: the first line carries it */
			memset(spread, 0, sizeof(int64) * n);
			spread[0] = g->points;
		}
		else
			spread_points(r, g->points, paid, spread);
		for (i = 0; i < n; i++)
			r->lines[i].accrual[g->account] += spread[i];
		r->accrual[g->account] += g->points;
		credit_promotion(r, g->promo, g->points);
	}
}

/*
 * sell_certificates lists what the lines of certificate products sell: per
 * line, one issued item of "units" certificates worth the unit price,
 * without expiry; purchase gives them codes (coupons_assign_codes) and
 * writes them bound to no customer: a bought certificate is a gift.
 */
static void
sell_certificates(CheckResult *r)
{
	for (int i = 0; i < r->nlines && r->mode == ENGINE_CHECK; i++)
	{
		CheckLine  *l = &r->lines[i];
		IssuedItem *it;

		if (!l->gift_certificate)
			continue;
		it = palloc0(sizeof(IssuedItem));
		it->kind = ISSUED_CERTIFICATE;
		it->promo = NULL;
		it->line = l->index;
		it->value.kind = DISCOUNT_AMOUNT;
		it->value.amount = l->price;
		it->count = (int) (l->qty / QTY_ONE);
		it->has_valid_until = false;
		r->issued = lappend(r->issued, it);
	}
}

/* finish_lines computes line totals, fiscal parts and check totals. */
static void
finish_lines(CheckResult *r)
{
	int			i;

	r->total = 0;
	for (i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];

		CHECK_FOR_INTERRUPTS();
		l->total = l->amount - l->discount - l->certificate - l->redeemed;
		Assert(l->total >= 0);
		l->nparts = money_split_parts(l->total, l->qty, l->parts);
		r->total += l->total;
		r->certificate += l->certificate;
	}
}


/* ---------------------------------------------------------------------
 * The pipeline
 * ---------------------------------------------------------------------
 */

/*
 * engine_run prices a check (see engine.h) from what check_load gathered:
 * plain C over memory.
 */
CheckResult *
engine_run(ConfigCache *cfg, const CheckInput *in, const bool *excluded)
{
	CheckResult *r = palloc0(sizeof(CheckResult));

	r->cfg = cfg;
	r->in = in;
	r->req = in->req;
	r->cust = in->cust;
	r->mode = in->mode;
	r->server_now = in->server_now;
	r->at = in->at;
	r->issue_at = Min(r->at, r->server_now);
	r->store = in->store;
	r->channel = r->req->channel ? r->req->channel : r->store ? r->store->channel : "pos";
	r->tz = r->store ? r->store->tz : cfg->program_tz;
	set_local_time(r);

	if (r->cust->blocked)
		r->warnings = lappend(r->warnings,
							  pstrdup("The customer's account is blocked: priced as anonymous, no points."));
	setup_lines(r);
	run_promotions(r, excluded);
	coupons_apply_certificates(r);
	run_redemption(r);
	compute_accrual(r);
	mech_cap_points(r);			/* points budgets (mechanics/common.c) */
	sell_certificates(r);
	finish_lines(r);
	return r;
}
