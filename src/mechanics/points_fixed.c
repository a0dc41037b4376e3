/*-------------------------------------------------------------------------
 *
 * points_fixed.c
 *	  The points_fixed mechanic (SPEC section 5): fixed points for a check
 *	  reaching a total, or per unit of matching products.  Rule:
 *	  {"products": SEL, "per": "check"|"unit", "min_total": T, "points": P,
 *	  "account": A, "expires": V}.
 *
 * "points" is required (0 < points < 10^12, two decimals), "min_total"
 * defaults to 0, "account" to "main"; "expires" absent means the account
 * type's lifetime applies.  The total is the check as it stands at the
 * promotion's turn; the grant (a PointsGrant) needs an identified customer
 * and a known account.  With whole points (points_precision 0) the
 * fraction is dropped.
 *
 * Per SKU (issue 18, a manufacturer's "50 points for every pack of X"):
 * "per": "unit" gives "points" for every whole unit of the lines matching
 * "products" (default {"all": true}; a weighed line counts its whole
 * units), and the points are credited to those lines (a refund of a line
 * takes its points back).  With "per": "check" (the default) "products",
 * when given, is a condition: the check must hold a matching line.  This
 * extends points_fixed rather than adding a mechanic because the grant,
 * the account, the expiry and the message are the same; only the
 * multiplier and the lines credited differ.  The grant is capped at
 * 10^12 points.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* upper bound (exclusive) of points, in hundredths */
#define RULE_POINTS_LIMIT	INT64CONST(100000000000000)	/* 10^12 points */

/* points_fixed: {"min_total": T, "points": P, "account": A, "expires": V} */
typedef struct PointsFixedRule
{
	ProductSelector *products;	/* NULL: none given (per check: any check) */
	bool		per_unit;		/* "per": "unit" */
	int64		min_total;		/* default 0 */
	int64		points;			/* hundredths of a point */
	char	   *account;		/* default "main" */
	Validity	expires;		/* default: the account type's lifetime */
} PointsFixedRule;

static const JsonNumberKind POINTS = {2, 1, RULE_POINTS_LIMIT - 1,
"must be greater than 0 and less than 1000000000000"};

static const char *const POINTS_FIXED_KEYS[] =
{"products", "per", "min_total", "points", "account", "expires", NULL};

static const char *const PER_VALUES[] = {"check", "unit", NULL};

/*
 * points_fixed_parse reads a rule {"min_total": T, "points": P,
 * "account": A, "expires": V}.
 */
static void *
points_fixed_parse(JsonReader *ctx, JsonbContainer *obj)
{
	PointsFixedRule *r = palloc0(sizeof(PointsFixedRule));

	if (jr_get(ctx, obj, "products") != NULL)
		r->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
	r->per_unit = jr_enum_field(ctx, obj, "per", PER_VALUES, 0) == 1;
	if (r->per_unit && r->products == NULL)
		r->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
	r->min_total = jr_number_field(ctx, obj, "min_total", &RULE_MONEY, JR_OPTIONAL, 0);
	r->points = jr_number_field(ctx, obj, "points", &POINTS, JR_REQUIRED, 0);
	r->account = jr_string_field(ctx, obj, "account", JR_OPTIONAL, "main");
	r->expires = rule_validity_field(ctx, obj, "expires");
	return r;
}

/* points_fixed_selectors: the products, when the rule names them */
static void
points_fixed_selectors(const void *rule, MechanicSelectors *out)
{
	out->products = ((const PointsFixedRule *) rule)->products;
}

/*
 * points_fixed_apply: fixed points for a check reaching min_total, or
 * (per unit) for every whole unit of the matching lines, credited to them.
 */
static void
points_fixed_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const PointsFixedRule *rule = p->rule;
	int			account;
	int64		points;
	int64		unit_points;
	int64	   *line_points = NULL;
	int128		sum = 0;
	bool		matched = (rule->products == NULL);
	PointsGrant *g;
	int			i;

	if (!r->cust->identified || check_total(r) < rule->min_total)
		return;
	account = config_account_index(r->cfg, rule->account);
	if (account < 0)
		return;
	unit_points = rule->points;
	if (r->cfg->points_precision == 0)
		unit_points -= unit_points % 100;
	if (unit_points <= 0)
		return;
	if (rule->products != NULL)
	{
		if (rule->per_unit)
			line_points = palloc0(sizeof(int64) * r->nlines);
		for (i = 0; i < r->nlines; i++)
		{
			if (!check_line_matches(r, i, p->sel_products))
				continue;
			matched = true;
			if (line_points != NULL)
			{
				/* units < 2^53 and points < 10^14: the product fits int64 */
				line_points[i] = Min(mech_line_units(&r->lines[i]) * (int128) unit_points,
									 RULE_POINTS_LIMIT - 1);
				sum += line_points[i];
			}
		}
	}
	if (!matched)
		return;
	points = line_points ? (int64) Min(sum, (int128) (RULE_POINTS_LIMIT - 1)) : unit_points;
	if (r->cfg->points_precision == 0)
		points -= points % 100;
	if (points <= 0)
		return;
	g = palloc0(sizeof(PointsGrant));
	g->promo = p;
	g->account = account;
	g->points = points;
	g->line_weights = line_points;
	if (rule->expires.kind != VALIDITY_DEFAULT)
		g->expires_at = check_validity_end(r, &rule->expires, &g->has_expiry);
	eff->grant = g;
	eff->message = psprintf("Bonus: %s points to the \"%s\" account (%s)",
							r->cfg->points_precision == 0 ?
							psprintf(INT64_FORMAT, points / 100) :
							scaled_to_cstring(points, 2),
							rule->account, p->name);
}

/* points_fixed_parse_selectors: the products as points_fixed_parse reads them (issue 21's lazy load) */
static void
points_fixed_parse_selectors(JsonReader *ctx, JsonbContainer *obj,
                              MechanicSelectors *out)
{
	if (jr_get(ctx, obj, "products") != NULL)
		out->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
	if (out->products == NULL &&
		jr_enum_field(ctx, obj, "per", PER_VALUES, 0) == 1)
		out->products = rule_selector_field(ctx, obj, "products", JR_OPTIONAL);
}

const MechanicRoutine points_fixed_routine = {
	.name = "points_fixed",
	.keys = POINTS_FIXED_KEYS,
	.parse = points_fixed_parse,
	.selectors = points_fixed_selectors,
	.parse_selectors = points_fixed_parse_selectors,
	.apply = points_fixed_apply,
	.is_single_item = false,
};
