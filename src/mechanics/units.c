/*-------------------------------------------------------------------------
 *
 * units.c
 *	  Mechanics that count units: nth_item, bundle and gift (SPEC
 *	  section 5).
 *
 * Only whole units count (a line of 1.5 kg holds one unit).  When a
 * mechanic discounts only some units, the cheapest eligible units go first
 * (by the line's current unit price; ties to the lower line index).  The
 * value of k units of a line is round_half_up(current * k / qty), so the
 * units of a line that earlier promotions discounted are worth what is left
 * of them.
 *
 * Decisions where the SPEC is silent:
 *	  - bundle: a line matching the trigger selector counts as a trigger
 *		only, never as a target, so a product matching both does not
 *		discount itself.
 *	  - gift: lines of the gift SKU never count as triggers.  Gift units
 *		are discounted to zero (or to their floor).  When the check earns
 *		more gifts than it holds, the response carries a suggestion and the
 *		cashier message "Promo activated: you can add a gift".
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mechanics.h"

/* line_units is the number of whole units of a line. */
static int64
line_units(const CheckLine *l)
{
	return l->qty / QTY_ONE;
}

/*
 * discount_units writes, for each line, the discount of its "taken" units
 * computed by kind/value, capped by the line's floor.
 */
static void
discount_units(CheckResult *r, const int64 *taken, const Discount *disc,
			   Effect *eff)
{
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];
		int64		value;
		int64		d = 0;

		if (taken[i] <= 0)
			continue;
		value = check_units_value(l, taken[i]);
		switch (disc->kind)
		{
			case DISCOUNT_PERCENT:
				d = money_percent(value, disc->percent);
				break;
			case DISCOUNT_AMOUNT:
				d = Min(value, disc->amount * taken[i]);
				break;
			case DISCOUNT_PRICE:
				d = value - disc->amount * taken[i];
				break;
		}
		d = Min(d, check_line_cap(r, i));
		if (d > 0)
		{
			eff->delta[i] = d;
			eff->total += d;
		}
	}
}

/*
 * mech_nth_item: of all matching units, every n-th is discounted (price,
 * percent or amount); the discounted units are the cheapest ones.
 */
void
mech_nth_item(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const NthItemRule *rule = &p->rule->u.nth_item;
	bool	   *eligible = palloc0(sizeof(bool) * r->nlines);
	int64	   *taken = palloc0(sizeof(int64) * r->nlines);
	int64		units = 0;
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		if (!check_line_discountable(r, i, p) ||
			!check_line_matches(r, i, p->sel_products))
			continue;
		eligible[i] = true;
		units += line_units(&r->lines[i]);
	}
	if (units >= rule->n)
	{
		check_cheapest_units(r, eligible, units / rule->n, taken);
		discount_units(r, taken, &rule->discount, eff);
	}
	pfree(eligible);
	pfree(taken);
}

/*
 * mech_bundle: every complete set of trigger_qty trigger units discounts
 * per_trigger target units (the cheapest) by percent.
 */
void
mech_bundle(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const BundleRule *rule = &p->rule->u.bundle;
	bool	   *eligible = palloc0(sizeof(bool) * r->nlines);
	int64	   *taken = palloc0(sizeof(int64) * r->nlines);
	int64		triggers = 0;
	int64		sets;
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		if (check_line_matches(r, i, p->sel_trigger))
			triggers += line_units(&r->lines[i]);
		else if (check_line_matches(r, i, p->sel_target) &&
				 check_line_discountable(r, i, p))
			eligible[i] = true;
	}
	sets = triggers / rule->trigger_qty;
	if (sets > 0)
	{
		Discount	disc = {DISCOUNT_PERCENT, rule->percent, 0};

		check_cheapest_units(r, eligible, sets * rule->per_trigger, taken);
		discount_units(r, taken, &disc, eff);
	}
	pfree(eligible);
	pfree(taken);
}

/*
 * mech_gift: every complete set of trigger_qty trigger units gives gift_qty
 * units of the gift SKU for free; gifts missing from the check become a
 * suggestion.
 */
void
mech_gift(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const GiftRule *rule = &p->rule->u.gift;
	bool	   *eligible = palloc0(sizeof(bool) * r->nlines);
	int64	   *taken = palloc0(sizeof(int64) * r->nlines);
	int64		triggers = 0;
	int64		gifts_here = 0;
	int64		entitled;
	int			i;

	for (i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];

		if (strcmp(l->sku, rule->gift_sku) == 0)
		{
			if (check_line_discountable(r, i, p))
			{
				eligible[i] = true;
				gifts_here += line_units(l);
			}
		}
		else if (check_line_matches(r, i, p->sel_trigger))
			triggers += line_units(l);
	}
	entitled = (triggers / rule->trigger_qty) * rule->gift_qty;
	if (entitled > 0)
	{
		Discount	disc = {DISCOUNT_PERCENT, PERCENT_100, 0};

		check_cheapest_units(r, eligible, Min(entitled, gifts_here), taken);
		discount_units(r, taken, &disc, eff);
		if (entitled > gifts_here)
		{
			CachedProduct *gift = config_product(r->cfg, rule->gift_sku);
			Suggestion *s = palloc0(sizeof(Suggestion));

			s->promo = p;
			s->sku = rule->gift_sku;
			s->qty = entitled - gifts_here;
			s->text = psprintf("Add a gift: %s%s%s%s x " INT64_FORMAT " (%s)",
							   gift ? gift->name : rule->gift_sku,
							   gift ? " (" : "", gift ? rule->gift_sku : "",
							   gift ? ")" : "", s->qty, p->name);
			eff->suggestion = s;
			eff->message = psprintf("Promo activated: you can add a gift (%s)", p->name);
		}
	}
	pfree(eligible);
	pfree(taken);
}
