/*-------------------------------------------------------------------------
 *
 * points_percent.c
 *	  The points_percent mechanic (SPEC section 5): extra points on the
 *	  matching lines.  Rule: {"products": SEL, "percent": P |
 *	  "multiplier": M, "account": A}.
 *
 * "products" is optional and defaults to {"all": true}; exactly one of
 * "percent" (points as a percent of the line's paid money) or "multiplier"
 * (the base accrual of matching lines is multiplied; 1 < multiplier <= 100,
 * two decimals, stored in hundredths: 1.5 = 150); "account" defaults to
 * "main".
 *
 * At its turn the promotion only records the lines it covers (a
 * PointsRate); points are computed after redemption, on each line's paid
 * money (accrual.c).  Points need an identified customer and a known
 * account; lines of no_points products earn nothing.  Decision where the
 * SPEC is silent: "multiplier": M adds (M - 1) times the base accrual of
 * the covered lines, into the rule's account; two multipliers add up (x2
 * and x3 give base + 1 + 2 = 4 times the base).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* points_percent: {"products": SEL, "percent": P | "multiplier": M, "account": A} */
typedef struct PointsPercentRule
{
	ProductSelector *products;	/* default all */
	int32		percent;		/* hundredths of a percent, or 0 */
	int32		multiplier;		/* hundredths (2 = 200), or 0 */
	char	   *account;		/* default "main" */
} PointsPercentRule;

static const JsonNumberKind MULTIPLIER = {2, 101, 10000,
"must be greater than 1 and at most 100"};

#define POINTS_BY_PERCENT		0
#define POINTS_BY_MULTIPLIER	1

static const JsonChoice POINTS_CHOICES[] = {
	{"percent", POINTS_BY_PERCENT, &RULE_PERCENT},
	{"multiplier", POINTS_BY_MULTIPLIER, &MULTIPLIER},
	{NULL, 0, NULL}
};

static const char *const POINTS_PERCENT_KEYS[] =
{"products", "percent", "multiplier", "account", NULL};

/*
 * points_percent_parse reads a rule {"products": SEL,
 * "percent": P | "multiplier": M, "account": A}.
 */
static void *
points_percent_parse(JsonReader *ctx, JsonbContainer *obj)
{
	PointsPercentRule *r = palloc0(sizeof(PointsPercentRule));
	int64		value;

	r->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
	if (jr_choice_field(ctx, obj, POINTS_CHOICES, &value) == POINTS_BY_PERCENT)
		r->percent = (int32) value;
	else
		r->multiplier = (int32) value;
	r->account = jr_string_field(ctx, obj, "account", JR_OPTIONAL, "main");
	return r;
}

/* points_percent_selectors: the lines that earn */
static void
points_percent_selectors(const void *rule, MechanicSelectors *out)
{
	out->products = ((const PointsPercentRule *) rule)->products;
}

/* points_percent_apply: extra points on the matching lines */
static void
points_percent_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const PointsPercentRule *rule = p->rule;
	int			account;
	bool	   *lines;
	bool		any = false;
	/* the key selector's lines only, when the engine listed them */
	bool		keyed = r->key_lines != NULL && p->sel_products == p->key_sel;
	int			n = keyed ? r->nkey_lines : r->nlines;
	int			i,
				k;

	if (!r->cust->identified)
		return;
	account = config_account_index(r->cfg, rule->account);
	if (account < 0)
		return;
	lines = palloc0(sizeof(bool) * r->nlines);
	for (k = 0; k < n; k++)
	{
		i = keyed ? r->key_lines[k] : k;
		if (r->lines[i].no_points ||
			(!keyed && !check_line_matches(r, i, p->sel_products)))
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

/* points_percent_parse_selectors: the products alone (issue 21's lazy load) */
static void
points_percent_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                                MechanicSelectors *out)
{
	out->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
}

const MechanicRoutine points_percent_routine = {
	.name = "points_percent",
	.keys = POINTS_PERCENT_KEYS,
	.parse = points_percent_parse,
	.selectors = points_percent_selectors,
	.parse_selectors = points_percent_parse_selectors,
	.apply = points_percent_apply,
	.is_single_item = false,
};
