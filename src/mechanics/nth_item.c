/*-------------------------------------------------------------------------
 *
 * nth_item.c
 *	  The nth_item mechanic (SPEC section 5): of all matching units, every
 *	  n-th is discounted.  Rule: {"products": SEL, "n": N,
 *	  "price"|"percent"|"amount": X}.
 *
 * "products" is optional and defaults to {"all": true}; "n" is from 2 to
 * 1000000, or 1 with "once": true (the cheapest matching unit at this
 * price, Odoo's "cheapest"); exactly one of "price" (the n-th unit costs
 * this, 0 = free), "percent" (off the n-th unit) or "amount" (off the n-th
 * unit).  With "once": true (a shared field, rules.h) the promotion applies
 * at most once: one unit (the cheapest) when at least n units match.
 *
 * Only whole units count (a line of 1.5 kg holds one unit).  The
 * discounted units are the cheapest eligible ones (by the line's current
 * unit price; ties to the lower line index); the value of k units of a
 * line is round_half_up(current * k / qty), so units that earlier
 * promotions discounted are worth what is left of them.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* nth_item: {"products": SEL, "n": N, "price"|"percent"|"amount": X} */
typedef struct NthItemRule
{
	ProductSelector *products;	/* default all */
	int32		n;				/* >= 2 */
	Discount	discount;
} NthItemRule;

static const JsonNumberKind COUNT_N = {0, 2, RULE_MAX_COUNT,
"must be a whole number from 2 to 1000000"};
/* with "once": true, n = 1 is the cheapest matching unit */
static const JsonNumberKind COUNT_N_ONCE = {0, 1, RULE_MAX_COUNT,
"must be a whole number from 1 to 1000000"};

static const JsonChoice NTH_CHOICES[] = {
	{"price", DISCOUNT_PRICE, &RULE_MONEY},
	{"percent", DISCOUNT_PERCENT, &RULE_PERCENT},
	{"amount", DISCOUNT_AMOUNT, &RULE_MONEY_POSITIVE},
	{NULL, 0, NULL}
};

static const char *const NTH_ITEM_KEYS[] =
{"products", "n", "price", "percent", "amount", NULL};

/*
 * nth_item_parse reads a rule {"products": SEL, "n": N,
 * "price"|"percent"|"amount": X}.
 */
static void *
nth_item_parse(JsonReader *ctx, JsonbContainer *obj)
{
	NthItemRule *r = palloc0(sizeof(NthItemRule));
	int64		value;
	int			tag;

	r->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
	/* "once" is a shared field (read again by rule_common_parse) */
	r->n = (int32) jr_number_field(ctx, obj, "n",
								   jr_bool_field(ctx, obj, "once", false) ?
								   &COUNT_N_ONCE : &COUNT_N, JR_REQUIRED, 0);
	tag = jr_choice_field(ctx, obj, NTH_CHOICES, &value);
	r->discount = rule_discount(tag, value);
	return r;
}

/* nth_item_selectors: the units it counts and discounts */
static void
nth_item_selectors(const void *rule, MechanicSelectors *out)
{
	out->products = ((const NthItemRule *) rule)->products;
}

/*
 * nth_item_apply: of all matching units, every n-th is discounted (price,
 * percent or amount); the discounted units are the cheapest ones.
 */
static void
nth_item_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const NthItemRule *rule = p->rule;
	bool	   *eligible = palloc0(sizeof(bool) * r->nlines);
	int64	   *taken = palloc0(sizeof(int64) * r->nlines);
	int64		units = 0;
	/* the key selector's lines only, when the engine listed them */
	bool		keyed = r->key_lines != NULL && p->sel_products == p->key_sel;
	int			n = keyed ? r->nkey_lines : r->nlines;
	int			i,
				k;

	for (k = 0; k < n; k++)
	{
		i = keyed ? r->key_lines[k] : k;
		if (!check_line_discountable(r, i, p) ||
			(!keyed && !check_line_matches(r, i, p->sel_products)))
			continue;
		eligible[i] = true;
		units += mech_line_units(&r->lines[i]);
	}
	if (units >= rule->n)
	{
		check_cheapest_units(r, eligible,
							 p->common.once ? 1 : units / rule->n, taken);
		mech_discount_units(r, taken, &rule->discount, eff);
	}
	pfree(eligible);
	pfree(taken);
}

/* nth_item_parse_selectors: the products alone (issue 21's lazy load) */
static void
nth_item_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                          MechanicSelectors *out)
{
	out->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
}

const MechanicRoutine nth_item_routine = {
	.name = "nth_item",
	.keys = NTH_ITEM_KEYS,
	.parse = nth_item_parse,
	.selectors = nth_item_selectors,
	.parse_selectors = nth_item_parse_selectors,
	.apply = nth_item_apply,
	.is_single_item = false,
	.shared = RULE_SHARED_CAP | RULE_SHARED_ONCE,
};
