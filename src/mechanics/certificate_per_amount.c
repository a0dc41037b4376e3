/*-------------------------------------------------------------------------
 *
 * certificate_per_amount.c
 *	  The certificate_per_amount mechanic (SPEC section 5): a gift
 *	  certificate for every step of the check.  Rule: {"step": S,
 *	  "value": V, "valid": V, "max_per_check": N}.
 *
 * "step" and "value" are required, "valid" absent means no expiry, and
 * "max_per_check" (a whole number from 1 to CERTIFICATE_MAX_PER_CHECK,
 * default CERTIFICATE_DEFAULT_PER_CHECK) caps the certificates one check
 * earns: the number of rows, codes and events a purchase writes must not
 * follow the check's total, which a request controls (issue 14: a price of
 * 600,000,000 once asked for a million certificates).  A check worth more
 * gets exactly the cap, and its issued item says "capped".  The total is
 * the check as it stands at the promotion's turn; codes are generated when
 * a purchase commits (coupons.c).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common.h"

/* "max_per_check": its default and its upper bound */
#define CERTIFICATE_DEFAULT_PER_CHECK	10
#define CERTIFICATE_MAX_PER_CHECK		1000

/* certificate_per_amount: {"step": S, "value": V, "valid": V, "max_per_check": N} */
typedef struct CertificateRule
{
	int64		step;			/* every this much spent ... */
	int64		value;			/* ... gives a certificate of this value */
	Validity	valid;			/* default: no expiry */
	int32		max_per_check;	/* at most this many per check, 1 .. 1000 */
} CertificateRule;

static const JsonNumberKind PER_CHECK = {0, 1, CERTIFICATE_MAX_PER_CHECK,
"must be a whole number from 1 to " CppAsString2(CERTIFICATE_MAX_PER_CHECK)};

static const char *const CERTIFICATE_KEYS[] =
{"step", "value", "valid", "max_per_check", NULL};

/*
 * certificate_parse reads a rule {"step": S, "value": V, "valid": V,
 * "max_per_check": N}.
 */
static void *
certificate_parse(JsonReader *ctx, JsonbContainer *obj)
{
	CertificateRule *r = palloc0(sizeof(CertificateRule));

	r->step = jr_number_field(ctx, obj, "step", &RULE_MONEY_POSITIVE, JR_REQUIRED, 0);
	r->value = jr_number_field(ctx, obj, "value", &RULE_MONEY_POSITIVE, JR_REQUIRED, 0);
	r->valid = rule_validity_field(ctx, obj, "valid");
	r->max_per_check = (int32) jr_number_field(ctx, obj, "max_per_check", &PER_CHECK,
											   JR_OPTIONAL, CERTIFICATE_DEFAULT_PER_CHECK);
	return r;
}

/*
 * certificate_apply: a certificate for every "step" spent, at most
 * max_per_check of them
 */
static void
certificate_apply(CheckResult *r, const CachedPromotion *p, Effect *eff)
{
	const CertificateRule *rule = p->rule;
	int64		count = check_total(r) / rule->step;
	IssuedItem *it;

	if (count <= 0)
		return;
	it = palloc0(sizeof(IssuedItem));
	it->kind = ISSUED_CERTIFICATE;
	it->promo = p;
	it->value.kind = DISCOUNT_AMOUNT;
	it->value.amount = rule->value;
	it->capped = count > rule->max_per_check;
	it->count = (int) Min(count, rule->max_per_check);
	it->valid_until = check_validity_end(r, &rule->valid, &it->has_valid_until);
	eff->issued = it;
	eff->message = psprintf("Print %d certificate%s of %s (%s%s)", it->count,
							it->count == 1 ? "" : "s",
							check_money_text(rule->value), p->name,
							it->capped ? "; the most one check earns" : "");
}

const MechanicRoutine certificate_per_amount_routine = {
	.name = "certificate_per_amount",
	.keys = CERTIFICATE_KEYS,
	.parse = certificate_parse,
	.selectors = NULL,
	.apply = certificate_apply,
	.is_single_item = false,
};
