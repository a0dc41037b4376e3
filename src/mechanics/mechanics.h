/*-------------------------------------------------------------------------
 *
 * mechanics.h
 *	  The promotion mechanics of SPEC section 5 as one routine table: what
 *	  every mechanic provides (its name, the keys of its rule, the rule's
 *	  parser, its effect, whether it prices one item on its own, the product
 *	  selectors the configuration cache indexes), and the look-up by name.
 *
 * Each mechanic is one file in this directory (percent_off.c, amount_off.c,
 * check_discount.c, nth_item.c, bundle.c, gift.c, tier_discount.c,
 * points_percent.c, points_fixed.c, coupon_issue.c,
 * certificate_per_amount.c, subscription_price.c) holding its rule struct,
 * its rule parser and its effect, and exporting one MechanicRoutine; the
 * table in mechanics.c lists them in the order of SPEC section 5.  The
 * recipe for adding one is in src/mechanics/README.md.
 *
 * A mechanic reads the check as it stands (CheckResult) and fills an
 * Effect (discount per line, coupons or points to give, a suggestion); it
 * never changes the check: the engine applies the effect, or throws it away
 * when a better member of the promotion's group wins.  A mechanic runs no
 * SQL and raises no error a client can cause (scripts/test.sh includes
 * checks the objects).
 *
 * This header sits below the configuration cache (config_cache.h holds a
 * MechanicRoutine pointer per promotion), so it includes only rules.h and
 * json_reader.h and names the check's types by their struct tags; the
 * mechanic files include check.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_MECHANICS_H
#define LOYALTY_MECHANICS_H

#include "utils/jsonb.h"

#include "json_reader.h"
#include "rules.h"

/* the check's types (check.h, config_cache.h) */
struct CheckResult;
struct CachedPromotion;
struct Effect;

/*
 * The product selectors of a parsed rule that the configuration cache
 * indexes (config_cache.c): "products" (the lines the mechanic works on),
 * "trigger" (the lines that trigger it), "target" (the lines a trigger
 * discounts); NULL when the rule has none.  A promotion whose rule has
 * neither products nor trigger is check-level: every check is a candidate.
 */
typedef struct MechanicSelectors
{
	const ProductSelector *products;
	const ProductSelector *trigger;
	const ProductSelector *target;
} MechanicSelectors;

/*
 * A mechanic, the way an index access method lists its callbacks:
 *
 * name			its SQL name (loyalty.promotion.mechanic)
 * keys			the keys its rule may have, NULL-terminated; an unknown key
 *				is refused before parse runs
 * parse		reads the rule object (the JSON path is "rule") and returns
 *				the mechanic's own rule struct, palloc'd; raises LY006
 * selectors	fills what config_cache.c indexes (NULL: no selector)
 * parse_selectors	reads only the selectors of a valid rule object into
 *				*out, the same ones parse + selectors give (NULL: the
 *				whole rule is parsed for them); the configuration cache
 *				parses the rest of a rule when the promotion is first a
 *				candidate (issue 21)
 * apply		computes the promotion's Effect on the check as it stands;
 *				p->rule is the struct parse returned
 * is_single_item	prices one item on its own, without looking at the rest
 *				of the check: the mechanics a shelf price (catalog_prices)
 *				may show
 * shared		the shared rule fields it takes besides the conditions
 *				"min_qty" and "min_items" that every mechanic takes
 *				(RULE_SHARED_CAP: "max_discount", for the discount
 *				mechanics; RULE_SHARED_ONCE: "once", for the unit
 *				mechanics, which read p->common.once); rules.h
 */
typedef struct MechanicRoutine
{
	const char *name;
	const char *const *keys;
	void	   *(*parse) (JsonReader *ctx, JsonbContainer *obj);
	void		(*selectors) (const void *rule, MechanicSelectors *out);
	void		(*parse_selectors) (JsonReader *ctx, JsonbContainer *obj,
									MechanicSelectors *out);
	void		(*apply) (struct CheckResult *r, const struct CachedPromotion *p,
						  struct Effect *eff);
	bool		is_single_item;
	int			shared;
} MechanicRoutine;

/* mechanic_name returns the SQL name of a mechanic */
extern const char *mechanic_name(const MechanicRoutine *m);

/* mechanic_lookup finds a mechanic by SQL name; NULL when unknown */
extern const MechanicRoutine *mechanic_lookup(const char *name);

/*
 * Parsers.  "code" is the promotion's code, used only in error messages.
 * mechanic_parse raises LY006 for an unknown name (field "mechanic");
 * rule_parse checks the rule's keys and runs the mechanic's parser (LY006
 * naming the JSON path), returning the mechanic's rule struct; the shared
 * fields go to *common (which may be NULL when only validating).
 */
extern const MechanicRoutine *mechanic_parse(const char *code, const char *name);
extern const void *rule_parse(const char *code, const MechanicRoutine *m,
							  Jsonb *rule, RuleCommon *common);

/*
 * rule_parse_stored is rule_parse for a rule validated when it was written
 * (the configuration cache): no scan for unknown keys.
 */
extern const void *rule_parse_stored(const char *code, const MechanicRoutine *m,
									 Jsonb *rule, RuleCommon *common);

/*
 * rule_parse_selectors fills *out with the selectors of a rule that was
 * validated when written (promotion.c's trigger, a backtest's caller):
 * reading only the selector keys when the mechanic has parse_selectors.
 */
extern void rule_parse_selectors(const char *code, const MechanicRoutine *m,
								 Jsonb *rule, MechanicSelectors *out);

#endif							/* LOYALTY_MECHANICS_H */
