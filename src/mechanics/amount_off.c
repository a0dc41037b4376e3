/*-------------------------------------------------------------------------
 *
 * amount_off.c
 *	  The amount_off mechanic (SPEC section 5): money off the matching
 *	  lines.  Rule: {"products": SEL, "amount": A, "per": "unit"|"line"}.
 *
 * "products" is required.  "per" is "unit" (default: the amount is taken
 * off every unit, i.e. multiplied by the quantity, weighed goods included,
 * rounded half up) or "line" (once per line).  The discount never takes a
 * line below its floor.  Unknown SKUs are never touched.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* amount_off: {"products": SEL, "amount": A, "per": "unit"|"line"} */
typedef struct AmountOffRule
{
	ProductSelector *products;
	int64		amount;
	bool		per_line;		/* false: per unit (default) */
} AmountOffRule;

static const char *const AMOUNT_OFF_KEYS[] = {"products", "amount", "per", NULL};

/*
 * amount_off_parse reads a rule {"products": SEL, "amount": A,
 * "per": "unit"|"line"}.
 */
static void *
amount_off_parse(JsonReader *ctx, JsonbContainer *obj)
{
	static const char *const PER_VALUES[] = {"unit", "line", NULL};
	AmountOffRule *r = palloc0(sizeof(AmountOffRule));

	r->products = rule_selector_field(ctx, obj, "products", JR_REQUIRED);
	r->amount = jr_number_field(ctx, obj, "amount", &RULE_MONEY_POSITIVE, JR_REQUIRED, 0);
	r->per_line = jr_enum_field(ctx, obj, "per", PER_VALUES, 0) == 1;
	return r;
}

/* amount_off_selectors: the lines it discounts */
static void
amount_off_selectors(const void *rule, MechanicSelectors *out)
{
	out->products = ((const AmountOffRule *) rule)->products;
}

/*
 * amount_off_apply: per unit the amount is taken off every unit (times the
 * quantity, weighed goods included, rounded half up); per line once.
 */
static void
amount_off_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const AmountOffRule *rule = p->rule;
	/* the key selector's lines only, when the engine listed them */
	bool		keyed = r->key_lines != NULL && p->sel_products == p->key_sel;
	int			n = keyed ? r->nkey_lines : r->nlines;
	int			i,
				k;

	for (k = 0; k < n; k++)
	{
		CheckLine  *l;
		int64		d;

		i = keyed ? r->key_lines[k] : k;
		l = &r->lines[i];
		if (!check_line_discountable(r, i, p) ||
			(!keyed && !check_line_matches(r, i, p->sel_products)))
			continue;
		d = rule->per_line ? rule->amount : money_times_qty(rule->amount, l->qty);
		d = Min(d, check_line_cap(r, i));
		if (d > 0)
		{
			eff->delta[i] = d;
			eff->total += d;
		}
	}
}

/* amount_off_parse_selectors: the products alone (issue 21's lazy load) */
static void
amount_off_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                            MechanicSelectors *out)
{
	out->products = rule_selector_field(ctx, obj, "products", JR_REQUIRED);
}

const MechanicRoutine amount_off_routine = {
	.name = "amount_off",
	.keys = AMOUNT_OFF_KEYS,
	.parse = amount_off_parse,
	.selectors = amount_off_selectors,
	.parse_selectors = amount_off_parse_selectors,
	.apply = amount_off_apply,
	.is_single_item = true,
	.shared = RULE_SHARED_CAP,
};
