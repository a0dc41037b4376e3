/*-------------------------------------------------------------------------
 *
 * gift.c
 *	  The gift mechanic (SPEC section 5): buying trigger units gives units
 *	  of a gift SKU for free.  Rule: {"trigger": SEL, "trigger_qty": Q,
 *	  "gift": "SKU", "gift_qty": G}.
 *
 * "trigger_qty" and "gift_qty" default to 1; "gift" is a SKU.  Only whole
 * units count.  With "once": true (a shared field, rules.h) one trigger
 * set counts at most: gift_qty units.
 *
 * Decisions where the SPEC is silent: lines of the gift SKU never count as
 * triggers.  Gift units are discounted to zero (or to their floor).  When
 * the check earns more gifts than it holds, the response carries a
 * suggestion and the cashier message "Promo activated: you can add a
 * gift".
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* gift: {"trigger": SEL, "trigger_qty": 2, "gift": "SKU", "gift_qty": 1} */
typedef struct GiftRule
{
	ProductSelector *trigger;
	int32		trigger_qty;	/* >= 1, default 1 */
	char	   *gift_sku;
	int32		gift_qty;		/* >= 1, default 1 */
} GiftRule;

static const char *const GIFT_KEYS[] =
{"trigger", "trigger_qty", "gift", "gift_qty", NULL};

/*
 * gift_parse reads a rule {"trigger": SEL, "trigger_qty": Q, "gift": "SKU",
 * "gift_qty": G}.
 */
static void *
gift_parse(JsonReader *ctx, JsonbContainer *obj)
{
	GiftRule   *r = palloc0(sizeof(GiftRule));

	r->trigger = rule_selector_field(ctx, obj, "trigger", JR_REQUIRED);
	r->trigger_qty = (int32) jr_number_field(ctx, obj, "trigger_qty", &RULE_QUANTITY, JR_OPTIONAL, 1);
	r->gift_sku = jr_string_field(ctx, obj, "gift", JR_REQUIRED, NULL);
	r->gift_qty = (int32) jr_number_field(ctx, obj, "gift_qty", &RULE_QUANTITY, JR_OPTIONAL, 1);
	return r;
}

/* gift_selectors: the trigger lines */
static void
gift_selectors(const void *rule, MechanicSelectors *out)
{
	out->trigger = ((const GiftRule *) rule)->trigger;
}

/*
 * gift_apply: every complete set of trigger_qty trigger units gives
 * gift_qty units of the gift SKU for free; gifts missing from the check
 * become a suggestion.
 */
static void
gift_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const GiftRule *rule = p->rule;
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
				gifts_here += mech_line_units(l);
			}
		}
		else if (check_line_matches(r, i, p->sel_trigger))
			triggers += mech_line_units(l);
	}
	entitled = (p->common.once ? Min(triggers / rule->trigger_qty, 1) :
				triggers / rule->trigger_qty) * rule->gift_qty;
	if (entitled > 0)
	{
		Discount	disc = {DISCOUNT_PERCENT, PERCENT_100, 0};

		check_cheapest_units(r, eligible, Min(entitled, gifts_here), taken);
		mech_discount_units(r, taken, &disc, eff);
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

/* gift_parse_selectors: the trigger alone (issue 21's lazy load) */
static void
gift_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                      MechanicSelectors *out)
{
	out->trigger = rule_selector_field(ctx, obj, "trigger", JR_REQUIRED);
}

const MechanicRoutine gift_routine = {
	.name = "gift",
	.keys = GIFT_KEYS,
	.parse = gift_parse,
	.selectors = gift_selectors,
	.parse_selectors = gift_parse_selectors,
	.apply = gift_apply,
	.is_single_item = false,
	.shared = RULE_SHARED_CAP | RULE_SHARED_ONCE,
};
