/*-------------------------------------------------------------------------
 *
 * check.c
 *	  The check core (see check.h): the arithmetic on a check's lines that
 *	  the pipeline stages share: which lines a promotion may touch and by
 *	  how much, spreading an amount over lines, choosing the cheapest
 *	  units, applying an effect, validity ends.
 *
 * Everything here is plain C over the CheckResult in memory: no SPI, no
 * request errors, no call into the engine, the mechanics or coupons (they
 * call in here).
 *
 * Interrupts: the rounds of check_spread and the pass over the lines of
 * check_cheapest_units call CHECK_FOR_INTERRUPTS.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "miscadmin.h"
#include "utils/datetime.h"

#include "check.h"
#include "clock.h"


/* ---------------------------------------------------------------------
 * Time and text
 * ---------------------------------------------------------------------
 */

/*
 * check_validity_end returns when something issued now with validity v
 * stops being valid (exclusive): now + interval, or the first moment of
 * the next month in the store's time zone for "end_of_month".  *has_end is
 * false when it never expires (VALIDITY_DEFAULT).  "Now" is the check's
 * issue_at: its "at", or the server's time when "at" is ahead of it, so a
 * register's clock running fast never lengthens a validity.
 */
TimestampTz
check_validity_end(CheckResult *r, const Validity *v, bool *has_end)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	TimestampTz result;

	*has_end = true;
	switch (v->kind)
	{
		case VALIDITY_INTERVAL:
			return clock_add_interval(r->issue_at, &v->interval, r->tz);
		case VALIDITY_END_OF_MONTH:
			/* the same for everything the check issues: computed once */
			if (r->has_month_end)
				return r->month_end;
			if (timestamp2tm(r->issue_at, &tzoff, &tm, &fsec, NULL, r->tz) != 0)
				elog(ERROR, "timestamp out of range");
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			if (++tm.tm_mon > 12)
			{
				tm.tm_mon = 1;
				tm.tm_year++;
			}
			tzoff = DetermineTimeZoneOffset(&tm, r->tz);
			if (tm2timestamp(&tm, 0, &tzoff, &result) != 0)
				elog(ERROR, "timestamp out of range");
			r->month_end = result;
			r->has_month_end = true;
			return result;
		case VALIDITY_DEFAULT:
			break;
	}
	*has_end = false;
	return DT_NOEND;
}

/* check_money_text prints money for messages: "150.00". */
char *
check_money_text(int64 money)
{
	return scaled_to_cstring(money, MONEY_SCALE);
}



/* ---------------------------------------------------------------------
 * Lines
 * ---------------------------------------------------------------------
 */


/*
 * check_line_matches: is line i a known product matching selector sel?
 * A line selling gift certificates matches no selector: it is money, not
 * goods, and neither triggers nor receives any promotion.
 */
bool
check_line_matches(CheckResult *r, int i, int sel)
{
	CachedProduct *p = r->lines[i].product;

	return p != NULL && sel >= 0 && !r->lines[i].gift_certificate &&
		config_product_matches(r->cfg, p, sel);
}

/*
 * check_line_discountable: may promotion p discount line i?  Not a
 * no_discount product, not locked by an exclusive promotion, not at its
 * floor, and, for an exclusive p, not discounted before.
 */
bool
check_line_discountable(CheckResult *r, int i, const CachedPromotion *p)
{
	CheckLine  *l = &r->lines[i];

	if (l->no_discount || l->locked || LINE_CURRENT(l) <= l->floor)
		return false;
	if (p->exclusive && l->discount > 0)
		return false;
	return true;
}

/* check_line_cap: the most line i may still be discounted. */
int64
check_line_cap(CheckResult *r, int i)
{
	CheckLine  *l = &r->lines[i];
	int64		cap = LINE_CURRENT(l) - l->floor;

	return cap > 0 ? cap : 0;
}

/*
 * check_total: the check's money as it stands, for thresholds
 * (min_total, steps): certificates sold on the check do not count.
 */
int64
check_total(CheckResult *r)
{
	return r->amount - r->gift_amount - r->discount;
}

/*
 * check_spread spreads amount over the eligible lines in proportion to
 * their current amounts, by largest remainder, without passing any line's
 * cap: a line that would pass it gets its cap and the rest is spread again
 * over the others.  Writes delta (zeroed by the caller); what no line can
 * take is not given.
 */
void
check_spread(CheckResult *r, int64 amount, const bool *eligible, int64 *delta)
{
	int			n = r->nlines;
	int64	   *weights = palloc(sizeof(int64) * n);
	int64	   *alloc = palloc(sizeof(int64) * n);
	bool	   *active = palloc(sizeof(bool) * n);
	int64		remaining = amount;
	int			i;

	for (i = 0; i < n; i++)
		active[i] = eligible[i] && check_line_cap(r, i) > 0;

	while (remaining > 0)
	{
		int64		sum = 0;
		bool		over = false;

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < n; i++)
		{
			weights[i] = active[i] ? LINE_CURRENT(&r->lines[i]) : 0;
			sum += weights[i];
		}
		if (sum == 0)
			break;
		allocate_largest_remainder(remaining, weights, n, alloc);
		for (i = 0; i < n; i++)
		{
			if (active[i] && alloc[i] >= check_line_cap(r, i))
			{
				/* at or past its cap: the line takes its cap, and is done */
				delta[i] = check_line_cap(r, i);
				remaining -= delta[i];
				active[i] = false;
				over = over || alloc[i] > delta[i];
			}
		}
		if (!over)
		{
			for (i = 0; i < n; i++)
				if (active[i])
				{
					delta[i] = alloc[i];
					remaining -= alloc[i];
				}
			break;
		}
	}
	pfree(weights);
	pfree(alloc);
	pfree(active);
}

/*
 * check_units_value is what "units" whole units of a line cost now:
 * round_half_up(current * units / qty).
 */
int64
check_units_value(const CheckLine *l, int64 units)
{
	int128		num = (int128) LINE_CURRENT(l) * units * QTY_ONE;

	if (units * QTY_ONE >= l->qty)
		return LINE_CURRENT(l);
	return (int64) ((num + l->qty / 2) / l->qty);
}

/* A line while units are being chosen. */
typedef struct UnitLine
{
	int			line;
	int64		current;
	int64		qty;
} UnitLine;

/* unit_line_cmp orders lines by current unit price, then index. */
static int
unit_line_cmp(const void *a, const void *b)
{
	const UnitLine *x = a;
	const UnitLine *y = b;
	int128		lx = (int128) x->current * y->qty;
	int128		ly = (int128) y->current * x->qty;

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x->line - y->line;
}

/*
 * check_cheapest_units chooses "take" whole units among the eligible
 * lines, cheapest unit price first (ties: lower index), and writes how many
 * of each line's units were taken.
 */
void
check_cheapest_units(CheckResult *r, const bool *eligible, int64 take,
					  int64 *taken)
{
	UnitLine   *ul = palloc(sizeof(UnitLine) * r->nlines);
	int			n = 0;
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];

		CHECK_FOR_INTERRUPTS();
		taken[i] = 0;
		if (!eligible[i] || l->qty < QTY_ONE)
			continue;
		ul[n].line = i;
		ul[n].current = LINE_CURRENT(l);
		ul[n].qty = l->qty;
		n++;
	}
	qsort(ul, n, sizeof(UnitLine), unit_line_cmp);
	for (i = 0; i < n && take > 0; i++)
	{
		int64		units = ul[i].qty / QTY_ONE;
		int64		t = Min(units, take);

		taken[ul[i].line] = t;
		take -= t;
	}
	pfree(ul);
}


/* ---------------------------------------------------------------------
 * Effects
 * ---------------------------------------------------------------------
 */

/* effect_is_empty: did the mechanic do anything? */
static bool
effect_is_empty(const Effect *eff)
{
	return eff->total == 0 && eff->issued == NULL && eff->grant == NULL &&
		eff->rate == NULL && eff->suggestion == NULL;
}

/* check_apply_effect applies what promotion p does to the check. */
void
check_apply_effect(CheckResult *r, const CachedPromotion *p, const Effect *eff)
{
	AppliedPromotion *ap;
	int			i;

	if (effect_is_empty(eff))
		return;
	for (i = 0; i < r->nlines && eff->total > 0; i++)
	{
		CheckLine  *l = &r->lines[i];
		int64		d = eff->delta[i];

		if (d <= 0)
			continue;
		Assert(d <= check_line_cap(r, i));
		l->discount += d;
		r->discount += d;
		if (p->exclusive)
			l->locked = true;
		if (l->npromos == l->maxpromos)
		{
			l->maxpromos = l->maxpromos ? l->maxpromos * 2 : 4;
			l->promos = l->promos ? repalloc(l->promos, sizeof(LinePromotion) * l->maxpromos)
				: palloc(sizeof(LinePromotion) * l->maxpromos);
		}
		l->promos[l->npromos].promo = p;
		l->promos[l->npromos].discount = d;
		l->npromos++;
	}
	ap = palloc0(sizeof(AppliedPromotion));
	ap->promo = p;
	ap->discount = eff->total;
	r->applied = lappend(r->applied, ap);
	if (eff->issued)
		r->issued = lappend(r->issued, eff->issued);
	if (eff->grant)
		r->grants = lappend(r->grants, eff->grant);
	if (eff->rate)
		r->rates = lappend(r->rates, eff->rate);
	if (eff->suggestion)
		r->suggestions = lappend(r->suggestions, eff->suggestion);
	if (eff->message)
		r->messages = lappend(r->messages, eff->message);
}
