/*-------------------------------------------------------------------------
 *
 * rules.h
 *	  The parts of promotion rules (SPEC sections 3 and 5) that several
 *	  mechanics share, parsed from jsonb into C: product selectors,
 *	  discounts and steps, validity, schedules; the JSON reader style of
 *	  rules and the kinds of number they hold.  A mechanic's own rule struct
 *	  and parser live in its file under src/mechanics/ (mechanics.h).
 *
 * Callers: the mechanics' parsers (src/mechanics/), the promotion row's
 * trigger (promotion.c), the configuration cache (schedules) and
 * subscription plans (selector_parse).  The parsers allocate their result
 * in CurrentMemoryContext (a few temporaries too, so call them in a context
 * that is reset or deleted with the cache); they raise ERROR (LY006,
 * errdetail naming the JSON path of the field) on any invalid input and
 * never return a partial result.  Nothing here knows a mechanic, a check
 * or a table: no SQL runs here.
 *
 * Units inside C (SPEC section 2):
 *	  money		int64 minor units (kopecks); JSON input with more than two
 *				decimals is an error; 0 <= money < 10^12.
 *	  percent	int32 hundredths of a percent (12.5% = 1250); at most two
 *				decimals; 0 < percent <= 100.
 *	  points	int64 hundredths of a point; at most two decimals;
 *				0 < points < 10^12.
 *	  counts	int32 whole numbers, at most RULE_MAX_COUNT.
 *
 * The JSON is read strictly: an unknown key is an error (so a typo such as
 * "percnet" is caught and the known keys are listed in a hint), a value of
 * the wrong JSON type is an error, a required key that is missing is an
 * error, and every number is range checked.  Names of other configuration
 * rows (categories, SKUs, accounts, plans) are checked only for being
 * non-empty strings: they may legitimately be created after the promotion
 * (and pg_dump restores tables in any order), so the engine should treat
 * an unknown one as matching nothing.
 *
 * Decisions where SPEC section 5 is silent (each mechanic's own are in its
 * file's header comment):
 *	  - A selector needs "all": true or at least one non-empty list; empty
 *		lists are allowed next to a non-empty one; "all": true together with
 *		a non-empty list is refused (the list would be meaningless);
 *		"exclude" is a selector of the same form.  Lists are sorted (strcmp)
 *		so that selector_matches can use binary search.  An optional
 *		selector that is absent reads as {"all": true}: after parsing, a
 *		selector pointer of a rule is never NULL (only "exclude" may be).
 *	  - Discount amounts (amounts, step amounts, certificate step and value)
 *		must be greater than 0; thresholds (min_total, min_total_to_use) and
 *		the nth_item price may be 0.
 *	  - "steps" (check_discount, coupon_issue) is a non-empty array; each
 *		step has a required "min_total" and exactly one of "percent" or
 *		"amount"; two steps may not share a min_total.  Steps are stored
 *		sorted by min_total ascending (the input may be in any order); the
 *		engine applies the last step whose min_total the check reaches.
 *	  - Validity ("expires", "valid") is "end_of_month" (until the end of the
 *		month of issue, store local time) or a positive interval in
 *		PostgreSQL syntax ("30 days", "1 month", "P2W"); a bare number such
 *		as "30" is refused because it would mean 30 seconds.
 *	  - Schedule keys combine with AND; "{}" matches always; every list given
 *		must be non-empty.  "hours" is one window ["10:00","14:00"] or a list
 *		of windows [["08:00","10:00"],["18:00","20:00"]]; a window is
 *		[from, to) with from < to, "24:00" is allowed as an end only; a window
 *		across midnight is written as two windows.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_RULES_H
#define LOYALTY_RULES_H

#include "utils/date.h"
#include "utils/jsonb.h"
#include "datatype/timestamp.h"

#include "json_reader.h"

/* upper bound (exclusive) of money, in minor units */
#define RULE_MONEY_LIMIT	INT64CONST(100000000000000)	/* 10^12 money */
/* upper bound (inclusive) of counts such as n, trigger_qty, gift_qty */
#define RULE_MAX_COUNT		1000000

/* A list of C strings (for selectors), sorted by strcmp. */
typedef struct StringList
{
	int			count;
	char	  **items;
} StringList;

/*
 * Product selector (SEL, SPEC section 3): a product matches when "all" is
 * set or it matches any list, and it does not match "exclude".
 */
typedef struct ProductSelector
{
	bool		all;
	StringList	categories;		/* a product is in its category's ancestors too */
	StringList	brands;
	StringList	skus;
	StringList	tags;
	struct ProductSelector *exclude;	/* NULL when none */
} ProductSelector;

/* How a discount is expressed (a step, the n-th item). */
typedef enum DiscountKind
{
	DISCOUNT_PERCENT,			/* percent off, in "percent" */
	DISCOUNT_AMOUNT,			/* money off, in "amount" */
	DISCOUNT_PRICE				/* a fixed price to charge, in "amount" */
} DiscountKind;

typedef struct Discount
{
	DiscountKind kind;
	int32		percent;		/* DISCOUNT_PERCENT: hundredths of a percent */
	int64		amount;			/* DISCOUNT_AMOUNT / DISCOUNT_PRICE: minor units */
} Discount;

/* One step of check_discount or coupon_issue. */
typedef struct RuleStep
{
	int64		min_total;		/* minor units, >= 0 */
	Discount	discount;		/* DISCOUNT_PERCENT or DISCOUNT_AMOUNT */
} RuleStep;

/* check_discount / coupon_issue steps, sorted by min_total ascending */
typedef struct StepList
{
	int			count;			/* >= 1 */
	RuleStep   *steps;
} StepList;

/*
 * The rule fields several mechanics share, read in one place
 * (rule_common_parse) and applied in one place (mech_apply,
 * mechanics/common.c), issue 18:
 *
 * max_discount	at most this much (minor units) off one check; 0 = no cap;
 *				discount mechanics only (RULE_SHARED_CAP)
 * min_qty		the check must hold at least this quantity (thousandths; the
 *				rule gives whole units) of matching units; 0 = no
 *				condition; every mechanic
 * min_items	the check must hold at least this many matching lines;
 *				0 = no condition; every mechanic
 * once			at most one application per check; unit mechanics only
 *				(RULE_SHARED_ONCE)
 */
typedef struct RuleCommon
{
	int64		max_discount;
	int64		min_qty;
	int32		min_items;
	bool		once;
} RuleCommon;

/* which shared fields a mechanic takes besides the conditions */
#define RULE_SHARED_CAP		0x01	/* "max_discount" */
#define RULE_SHARED_ONCE	0x02	/* "once" */

/* How long issued points, coupons or certificates live. */
typedef enum ValidityKind
{
	VALIDITY_DEFAULT,			/* not given: see the field's comment */
	VALIDITY_INTERVAL,			/* "30 days": interval from the moment of issue */
	VALIDITY_END_OF_MONTH		/* "end_of_month": until the month of issue ends */
} ValidityKind;

typedef struct Validity
{
	ValidityKind kind;
	Interval	interval;		/* VALIDITY_INTERVAL only; positive */
} Validity;

/* An hour window [from, to) in minutes from local midnight. */
typedef struct HourWindow
{
	int16		from;			/* 0 .. 1439 */
	int16		to;				/* from + 1 .. 1440 */
} HourWindow;

/*
 * A parsed schedule.  Every part that is set must match (AND); an unset
 * part (zero mask, zero count) matches anything.
 */
typedef struct Schedule
{
	uint8		weekdays;		/* bit (1 << d) for ISO weekday d, 1 = Monday */
	uint32		days_of_month;	/* bit (1 << d) for day d, 1 .. 31 */
	int			ndates;
	DateADT    *dates;			/* sorted ascending */
	int			nhours;
	HourWindow *hours;
} Schedule;

/*
 * The shared parsers, for the mechanics' rule parsers (src/mechanics/):
 *
 * rule_reader_init starts reading a rule, schedule or selector of the
 * "what" ("promotion", "subscription plan") called "code" at the JSON path
 * "root": errors are LY006 "invalid <what> "<code>"".
 *
 * rule_selector_field reads obj.key as a product selector; when absent and
 * optional, the result is {"all": true}.  rule_validity_field reads obj.key
 * as a Validity (VALIDITY_DEFAULT when absent).  rule_steps_field reads
 * obj.key, a required non-empty array of steps, sorted by min_total.
 * rule_discount makes a Discount from a jr_choice_field result whose tags
 * are DiscountKinds.
 */
extern void rule_reader_init(JsonReader *ctx, const char *what,
							 const char *code, const char *root);
extern ProductSelector *rule_selector_field(JsonReader *ctx, JsonbContainer *obj,
											const char *key, bool required);
extern Validity rule_validity_field(JsonReader *ctx, JsonbContainer *obj,
									const char *key);
extern StepList rule_steps_field(JsonReader *ctx, JsonbContainer *obj,
								 const char *key);
extern Discount rule_discount(int tag, int64 value);

/*
 * rule_common_keys returns keys followed by the shared keys a mechanic with
 * flags "shared" takes (NULL-terminated, palloc'd); rule_common_parse reads
 * them from obj into *common (zeroed first).
 */
extern const char *const *rule_common_keys(const char *const *keys, int shared);
extern void rule_common_parse(JsonReader *ctx, JsonbContainer *obj, int shared,
							  RuleCommon *common);

/* the kinds of number several mechanics' rules hold (json_reader.h) */
extern const JsonNumberKind RULE_PERCENT;	/* 0 < percent <= 100 */
extern const JsonNumberKind RULE_MONEY;	/* 0 <= money < 10^12 */
extern const JsonNumberKind RULE_MONEY_POSITIVE;	/* 0 < money < 10^12 */
extern const JsonNumberKind RULE_QUANTITY;	/* a count from 1 to RULE_MAX_COUNT */

/* schedule_parse parses a promotion's schedule; "code" names the promotion */
extern Schedule *schedule_parse(const char *code, Jsonb *schedule);

/*
 * selector_parse reads a product selector outside a promotion (a
 * subscription plan's products); errors say "invalid <what> "<code>"" and
 * name the path from root.
 */
extern ProductSelector *selector_parse(const char *what, const char *code,
									   const char *root, Jsonb *jb);

/*
 * Matching, for the engine; pure functions.
 *
 * schedule_matches: does the schedule (NULL = none) allow this local date,
 * ISO weekday (1 = Monday) and minute of the day (0 .. 1439)?
 *
 * selector_matches: does a product match?  "categories" must hold the
 * product's category and all its ancestors; any list may be empty and
 * "brand" may be NULL.
 */
extern bool schedule_matches(const Schedule *s, DateADT local_date,
							 int iso_weekday, int minute_of_day);
extern bool selector_matches(const ProductSelector *sel, const char *sku,
							 const char *brand,
							 const char *const *categories, int ncategories,
							 const char *const *tags, int ntags);

/* comparators the parser sorts lists with and matching searches them by */
extern int	cstring_ptr_cmp(const void *a, const void *b);
extern int	dateadt_qsort_cmp(const void *a, const void *b);

/* "N day(s)|week(s)|month(s)|year(s)", N from 1 to 100000 (segments, grants) */
extern bool interval_text_ok(const char *s);

#endif							/* LOYALTY_RULES_H */
