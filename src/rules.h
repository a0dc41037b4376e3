/*-------------------------------------------------------------------------
 *
 * rules.h
 *	  Promotion rules (SPEC section 5) parsed from their jsonb form into C
 *	  structs: the mechanic, the per-mechanic rule, product selectors and
 *	  schedules.
 *
 * Two callers use this file: the BEFORE ROW trigger on loyalty.promotion,
 * which parses every row written so that a bad rule is refused with a clear
 * error (SQLSTATE LY006, errdetail naming the JSON path of the field), and
 * the check engine, which parses the promotions it caches.  The parsers
 * allocate their result in CurrentMemoryContext (a few temporaries too, so
 * call them in a context that is reset or deleted with the cache); they
 * raise ERROR on any invalid input and never return a partial result.
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
 * Decisions where SPEC section 5 is silent:
 *	  - "products" is required for percent_off and amount_off (a discount on
 *		everything must be asked for with {"all": true}); it is optional and
 *		defaults to {"all": true} for nth_item, tier_discount and
 *		points_percent, as in the SPEC's own examples.  After parsing, a
 *		selector pointer of a rule is never NULL (only "exclude" may be).
 *	  - A selector needs "all": true or at least one non-empty list; empty
 *		lists are allowed next to a non-empty one; "all": true together with
 *		a non-empty list is refused (the list would be meaningless);
 *		"exclude" is a selector of the same form.  Lists are sorted (strcmp)
 *		so that selector_matches can use binary search.
 *	  - Discount amounts (amount_off.amount, nth_item.amount, step amounts,
 *		certificate step and value) must be greater than 0; thresholds
 *		(min_total, min_total_to_use) and the nth_item price may be 0.
 *	  - amount_off "per" is "unit" (default: the amount is taken off every
 *		unit, i.e. multiplied by the quantity) or "line" (once per line).
 *	  - nth_item has exactly one of "price" (the n-th unit costs this, 0 =
 *		free), "percent" (off the n-th unit) or "amount" (off the n-th unit).
 *	  - bundle: "percent" is required; "trigger_qty" (units of the trigger
 *		needed, default 1) and "per_trigger" (target units discounted per
 *		complete trigger set, default 1) are optional.
 *	  - gift: "trigger_qty" and "gift_qty" default to 1; "gift" is a SKU.
 *	  - points_percent has exactly one of "percent" (points as a percent of
 *		the line's paid money) or "multiplier" (the base accrual of matching
 *		lines is multiplied; 1 < multiplier <= 100, two decimals, stored in
 *		hundredths: 1.5 = 150).  "account" defaults to "main".
 *	  - points_fixed: "points" is required, "min_total" defaults to 0,
 *		"account" to "main"; "expires" absent means the account type's
 *		lifetime applies.
 *	  - check_discount and coupon_issue: "steps" is a non-empty array; each
 *		step has a required "min_total" and exactly one of "percent" or
 *		"amount"; two steps may not share a min_total.  Steps are stored
 *		sorted by min_total ascending (the input may be in any order); the
 *		engine applies the last step whose min_total the check reaches.
 *	  - coupon_issue: "min_total_to_use" defaults to 0; "valid" absent means
 *		the coupon does not expire.  certificate_per_amount: "step" and
 *		"value" are required, "valid" absent means no expiry, and
 *		"max_per_check" (a whole number from 1 to CERTIFICATE_MAX_PER_CHECK,
 *		default CERTIFICATE_DEFAULT_PER_CHECK) caps the certificates one
 *		check earns: a check worth more steps gets exactly the cap (issue 14:
 *		a single request could otherwise make a backend write a million
 *		certificates).
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

/* upper bound (exclusive) of money and points, in minor units/hundredths */
#define RULE_MONEY_LIMIT	INT64CONST(100000000000000)	/* 10^12 money */
#define RULE_POINTS_LIMIT	INT64CONST(100000000000000)	/* 10^12 points */
/* upper bound (inclusive) of counts such as n, trigger_qty, gift_qty */
#define RULE_MAX_COUNT		1000000
/* certificate_per_amount "max_per_check": its default and its upper bound */
#define CERTIFICATE_DEFAULT_PER_CHECK	10
#define CERTIFICATE_MAX_PER_CHECK		1000

/* The mechanics of SPEC section 5, in the order of its table. */
typedef enum Mechanic
{
	MECH_PERCENT_OFF,
	MECH_AMOUNT_OFF,
	MECH_CHECK_DISCOUNT,
	MECH_NTH_ITEM,
	MECH_BUNDLE,
	MECH_GIFT,
	MECH_TIER_DISCOUNT,
	MECH_POINTS_PERCENT,
	MECH_POINTS_FIXED,
	MECH_COUPON_ISSUE,
	MECH_CERTIFICATE_PER_AMOUNT,
	MECH_SUBSCRIPTION_PRICE
} Mechanic;

#define MECHANIC_COUNT	(MECH_SUBSCRIPTION_PRICE + 1)

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

/* percent_off: {"products": SEL, "percent": P} */
typedef struct PercentOffRule
{
	ProductSelector *products;
	int32		percent;
} PercentOffRule;

/* amount_off: {"products": SEL, "amount": A, "per": "unit"|"line"} */
typedef struct AmountOffRule
{
	ProductSelector *products;
	int64		amount;
	bool		per_line;		/* false: per unit (default) */
} AmountOffRule;

/* check_discount / coupon_issue steps, sorted by min_total ascending */
typedef struct StepList
{
	int			count;			/* >= 1 */
	RuleStep   *steps;
} StepList;

/* check_discount: {"steps": [...]} */
typedef struct CheckDiscountRule
{
	StepList	steps;
} CheckDiscountRule;

/* nth_item: {"products": SEL, "n": N, "price"|"percent"|"amount": X} */
typedef struct NthItemRule
{
	ProductSelector *products;	/* default all */
	int32		n;				/* >= 2 */
	Discount	discount;
} NthItemRule;

/* bundle: {"trigger": SEL, "trigger_qty": 1, "target": SEL, "percent": P, "per_trigger": 1} */
typedef struct BundleRule
{
	ProductSelector *trigger;
	int32		trigger_qty;	/* >= 1, default 1 */
	ProductSelector *target;
	int32		percent;
	int32		per_trigger;	/* >= 1, default 1 */
} BundleRule;

/* gift: {"trigger": SEL, "trigger_qty": 2, "gift": "SKU", "gift_qty": 1} */
typedef struct GiftRule
{
	ProductSelector *trigger;
	int32		trigger_qty;	/* >= 1, default 1 */
	char	   *gift_sku;
	int32		gift_qty;		/* >= 1, default 1 */
} GiftRule;

/* tier_discount: {"products": SEL}; the percent is the tier's */
typedef struct TierDiscountRule
{
	ProductSelector *products;	/* default all */
} TierDiscountRule;

/* points_percent: {"products": SEL, "percent": P | "multiplier": M, "account": A} */
typedef struct PointsPercentRule
{
	ProductSelector *products;	/* default all */
	int32		percent;		/* hundredths of a percent, or 0 */
	int32		multiplier;		/* hundredths (2 = 200), or 0 */
	char	   *account;		/* default "main" */
} PointsPercentRule;

/* points_fixed: {"min_total": T, "points": P, "account": A, "expires": V} */
typedef struct PointsFixedRule
{
	int64		min_total;		/* default 0 */
	int64		points;			/* hundredths of a point */
	char	   *account;		/* default "main" */
	Validity	expires;		/* default: the account type's lifetime */
} PointsFixedRule;

/* coupon_issue: {"steps": [...], "min_total_to_use": T, "valid": V} */
typedef struct CouponIssueRule
{
	StepList	steps;
	int64		min_total_to_use;	/* default 0 */
	Validity	valid;			/* default: no expiry */
} CouponIssueRule;

/* certificate_per_amount: {"step": S, "value": V, "valid": V, "max_per_check": N} */
typedef struct CertificateRule
{
	int64		step;			/* every this much spent ... */
	int64		value;			/* ... gives a certificate of this value */
	Validity	valid;			/* default: no expiry */
	int32		max_per_check;	/* at most this many per check, 1 .. 1000 */
} CertificateRule;

/* subscription_price: {"plan": "CODE", "percent": P} */
typedef struct SubscriptionPriceRule
{
	char	   *plan;
	int32		percent;
} SubscriptionPriceRule;

/* A parsed rule: the member of "u" named after the mechanic is valid. */
typedef struct PromotionRule
{
	Mechanic	mechanic;
	union
	{
		PercentOffRule percent_off;
		AmountOffRule amount_off;
		CheckDiscountRule check_discount;
		NthItemRule nth_item;
		BundleRule	bundle;
		GiftRule	gift;
		TierDiscountRule tier_discount;
		PointsPercentRule points_percent;
		PointsFixedRule points_fixed;
		CouponIssueRule coupon_issue;
		CertificateRule certificate_per_amount;
		SubscriptionPriceRule subscription_price;
	}			u;
} PromotionRule;

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

/* mechanic names */
extern const char *mechanic_name(Mechanic m);
extern bool mechanic_from_name(const char *name, Mechanic *result);

/*
 * Parsers.  "code" is the promotion's code, used only in error messages.
 * mechanic_parse raises LY006 for an unknown name (field "mechanic").
 */
extern Mechanic mechanic_parse(const char *code, const char *name);
extern PromotionRule *rule_parse(const char *code, Mechanic m, Jsonb *rule);
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

#endif							/* LOYALTY_RULES_H */
