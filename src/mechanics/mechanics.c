/*-------------------------------------------------------------------------
 *
 * mechanics.c
 *	  The table of mechanics (one MechanicRoutine per file of this
 *	  directory, in the order of SPEC section 5), the look-up by name and
 *	  the parse of a promotion's "mechanic" and "rule" through it.
 *
 * The order of the table is the order of the names in the hint of an
 * unknown mechanic.  This file knows no mechanic's rule and no check.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mechanics.h"

/* the routines, one per file of this directory */
extern const MechanicRoutine percent_off_routine;
extern const MechanicRoutine amount_off_routine;
extern const MechanicRoutine check_discount_routine;
extern const MechanicRoutine nth_item_routine;
extern const MechanicRoutine bundle_routine;
extern const MechanicRoutine gift_routine;
extern const MechanicRoutine tier_discount_routine;
extern const MechanicRoutine points_percent_routine;
extern const MechanicRoutine points_fixed_routine;
extern const MechanicRoutine coupon_issue_routine;
extern const MechanicRoutine certificate_per_amount_routine;
extern const MechanicRoutine subscription_price_routine;

static const MechanicRoutine *const MECHANICS[] = {
	&percent_off_routine,
	&amount_off_routine,
	&check_discount_routine,
	&nth_item_routine,
	&bundle_routine,
	&gift_routine,
	&tier_discount_routine,
	&points_percent_routine,
	&points_fixed_routine,
	&coupon_issue_routine,
	&certificate_per_amount_routine,
	&subscription_price_routine,
};

#define MECHANIC_COUNT	lengthof(MECHANICS)

/* mechanic_name returns the SQL name of a mechanic. */
const char *
mechanic_name(const MechanicRoutine *m)
{
	return m->name;
}

/* mechanic_lookup returns the mechanic called "name"; NULL when unknown. */
const MechanicRoutine *
mechanic_lookup(const char *name)
{
	int			i;

	for (i = 0; i < MECHANIC_COUNT; i++)
		if (strcmp(MECHANICS[i]->name, name) == 0)
			return MECHANICS[i];
	return NULL;
}

/*
 * mechanic_parse returns the mechanic called "name", raising LY006 (field
 * "mechanic", the known names in the hint) when there is none.
 */
const MechanicRoutine *
mechanic_parse(const char *code, const char *name)
{
	const MechanicRoutine *m = mechanic_lookup(name);
	JsonReader	ctx;
	const char *names[MECHANIC_COUNT + 1];
	int			i;

	if (m != NULL)
		return m;

	for (i = 0; i < MECHANIC_COUNT; i++)
		names[i] = MECHANICS[i]->name;
	names[MECHANIC_COUNT] = NULL;
	rule_reader_init(&ctx, "promotion", code, "mechanic");
	jr_error(&ctx,
				psprintf("The known mechanics are: %s.", jr_key_list(names, false, ", ")),
				"has the unknown value \"%s\".", name);
}

/*
 * rule_parse parses and validates the rule of a promotion of mechanic m.
 * The shared fields (rules.h RuleCommon) go to *common unless it is NULL.
 * The result (the mechanic's rule struct) is palloc'd in
 * CurrentMemoryContext; any problem raises LY006 naming the promotion
 * "code" and the JSON path of the field.
 */
const void *
rule_parse(const char *code, const MechanicRoutine *m, Jsonb *rule,
		   RuleCommon *common)
{
	JsonReader	ctx;
	JsonbContainer *obj;
	void	   *result;
	RuleCommon	ignored;

	rule_reader_init(&ctx, "promotion", code, "rule");
	obj = jr_root_object(&ctx, rule);
	jr_check_keys(&ctx, obj, psprintf("Mechanic %s", m->name),
				  rule_common_keys(m->keys, m->shared));
	result = m->parse(&ctx, obj);
	rule_common_parse(&ctx, obj, m->shared, common ? common : &ignored);
	jr_free(&ctx);
	return result;
}

/*
 * rule_parse_stored is rule_parse for a rule validated when it was written
 * (the configuration cache's lazy parse, issue 21): the same result,
 * without the scans for unknown keys.
 */
const void *
rule_parse_stored(const char *code, const MechanicRoutine *m, Jsonb *rule,
				  RuleCommon *common)
{
	JsonReader	ctx;
	JsonbContainer *obj;
	void	   *result;
	RuleCommon	ignored;

	rule_reader_init(&ctx, "promotion", code, "rule");
	ctx.trusted = true;
	obj = jr_root_object(&ctx, rule);
	result = m->parse(&ctx, obj);
	rule_common_parse(&ctx, obj, m->shared, common ? common : &ignored);
	jr_free(&ctx);
	return result;
}

/*
 * rule_parse_selectors fills *out with the product selectors of rule, a
 * rule of mechanic m already validated on write: with the mechanic's
 * parse_selectors, only the selector keys are read (the configuration
 * cache's load, issue 21: the rest of the rule is parsed when the promotion
 * is first a candidate); without, through the whole rule_parse.  Either
 * way the selectors are those rule_parse's struct holds.
 */
void
rule_parse_selectors(const char *code, const MechanicRoutine *m, Jsonb *rule,
					 MechanicSelectors *out)
{
	JsonReader	ctx;
	JsonbContainer *obj;

	memset(out, 0, sizeof(MechanicSelectors));
	if (m->selectors == NULL)
		return;
	if (m->parse_selectors == NULL || rule == NULL)
	{
		m->selectors(rule_parse_stored(code, m, rule, NULL), out);
		return;
	}
	rule_reader_init(&ctx, "promotion", code, "rule");
	ctx.trusted = true;			/* validated on write: no unknown-key scan */
	obj = jr_root_object(&ctx, rule);
	m->parse_selectors(&ctx, obj, out);
	jr_free(&ctx);
}
