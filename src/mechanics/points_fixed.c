/*-------------------------------------------------------------------------
 *
 * points_fixed.c
 *	  The points_fixed mechanic (SPEC section 5): fixed points for a check
 *	  reaching a total.  Rule: {"min_total": T, "points": P, "account": A,
 *	  "expires": V}.
 *
 * "points" is required (0 < points < 10^12, two decimals), "min_total"
 * defaults to 0, "account" to "main"; "expires" absent means the account
 * type's lifetime applies.  The total is the check as it stands at the
 * promotion's turn; the grant (a PointsGrant) needs an identified customer
 * and a known account.  With whole points (points_precision 0) the
 * fraction is dropped.
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
	int64		min_total;		/* default 0 */
	int64		points;			/* hundredths of a point */
	char	   *account;		/* default "main" */
	Validity	expires;		/* default: the account type's lifetime */
} PointsFixedRule;

static const JsonNumberKind POINTS = {2, 1, RULE_POINTS_LIMIT - 1,
"must be greater than 0 and less than 1000000000000"};

static const char *const POINTS_FIXED_KEYS[] =
{"min_total", "points", "account", "expires", NULL};

/*
 * points_fixed_parse reads a rule {"min_total": T, "points": P,
 * "account": A, "expires": V}.
 */
static void *
points_fixed_parse(JsonReader *ctx, JsonbContainer *obj)
{
	PointsFixedRule *r = palloc0(sizeof(PointsFixedRule));

	r->min_total = jr_number_field(ctx, obj, "min_total", &RULE_MONEY, JR_OPTIONAL, 0);
	r->points = jr_number_field(ctx, obj, "points", &POINTS, JR_REQUIRED, 0);
	r->account = jr_string_field(ctx, obj, "account", JR_OPTIONAL, "main");
	r->expires = rule_validity_field(ctx, obj, "expires");
	return r;
}

/* points_fixed_apply: fixed points for a check reaching min_total */
static void
points_fixed_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const PointsFixedRule *rule = p->rule;
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

const MechanicRoutine points_fixed_routine = {
	.name = "points_fixed",
	.keys = POINTS_FIXED_KEYS,
	.parse = points_fixed_parse,
	.selectors = NULL,
	.apply = points_fixed_apply,
	.is_single_item = false,
};
