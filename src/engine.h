/*-------------------------------------------------------------------------
 *
 * engine.h
 *	  The check engine: from a parsed request, the customer and the cached
 *	  configuration to a priced check (CheckResult) with every promotion,
 *	  redemption and accrual applied (SPEC sections 2, 5 and 7).
 *
 * The pipeline, top-down:
 *	  1. lines: product look-up, amount = round(price * qty), floors;
 *	  2. promotions in (priority, code) order, each on the line amounts the
 *		 earlier ones left, filtered by period, schedule (store local time),
 *		 channel, store, region, tier, segment, coupon, identification and
 *		 usage limits; groups compete at their first member's turn;
 *		 exclusive promotions lock the lines they discount;
 *	  3. certificates (coupons.c, issue 5);
 *	  4. redemption (redeem_plan over ledger balances);
 *	  5. accrual: base (tier or setting) and points promotions, rounded down
 *		 per check and account, spread back over lines;
 *	  6. fiscal parts per line.
 *
 * Mechanics (src/mechanics/) compute an Effect on the check as it stands
 * without changing it; the engine applies the effect.  That is what lets a
 * group evaluate every member and keep only the best.
 *
 * All memory is allocated in CurrentMemoryContext (the call's).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_ENGINE_H
#define LOYALTY_ENGINE_H

#include "nodes/pg_list.h"
#include "pgtime.h"

#include "config_cache.h"
#include "ledger.h"
#include "money.h"
#include "redeem.h"
#include "request.h"

/* What the caller wants computed. */
typedef enum EngineMode
{
	ENGINE_CHECK,				/* calculate and purchase: everything */
	ENGINE_CATALOG				/* shelf prices: single-item mechanics only */
} EngineMode;

/* The customer as the engine needs it (check_db.c loads it). */
typedef struct CustomerInfo
{
	bool		identified;
	bool		blocked;		/* found but blocked: priced as anonymous */
	int64		id;
	const CachedTier *tier;		/* effective tier; NULL when the program has none */
	int			nsegments;
	char	  **segments;
	/* uses of promotions with a per-customer limit, by promotion code */
	int			nusage;
	char	  **usage_promotion;
	int64	   *usage_count;
	/* subscriptions: plan code and period [starts, ends) */
	int			nsubs;
	char	  **sub_plan;
	TimestampTz *sub_starts;
	TimestampTz *sub_ends;
} CustomerInfo;

/* A promotion that changed a line, and by how much. */
typedef struct LinePromotion
{
	const CachedPromotion *promo;
	int64		discount;		/* minor units */
} LinePromotion;

/* One line of the check being priced. */
typedef struct CheckLine
{
	int			index;
	const char *sku;
	CachedProduct *product;		/* NULL: unknown SKU */
	int64		qty;			/* thousandths */
	int64		price;			/* minor units */
	int64		amount;			/* round(price * qty) */
	int64		floor;			/* min_price * qty, 0 when none */
	int64		discount;		/* by promotions */
	int64		certificate;	/* paid by certificates */
	int64		redeemed;		/* paid by points */
	int64		total;			/* amount - discount - certificate - redeemed */
	bool		no_discount;
	bool		no_points;
	bool		no_redeem;
	bool		gift_certificate;	/* sells gift certificates: see sell_certificates */
	bool		locked;			/* discounted by an exclusive promotion */
	int			npromos;
	int			maxpromos;
	LinePromotion *promos;
	int64	   *redeem_points;	/* per account, hundredths */
	int64	   *accrual;		/* per account, hundredths */
	int			nparts;
	MoneyPart	parts[2];
} CheckLine;

/* the most gift certificates one check may sell */
#define CHECK_MAX_CERTIFICATES	1000

/* the money a line still costs at this point of the pipeline */
#define LINE_CURRENT(l)	((l)->amount - (l)->discount)

typedef enum IssuedKind
{
	ISSUED_COUPON,
	ISSUED_CERTIFICATE
} IssuedKind;

/*
 * A coupon or certificate the receipt should carry: printed by a promotion,
 * or sold by a certificate product's line (promo NULL, line its index).
 */
typedef struct IssuedItem
{
	IssuedKind	kind;
	const CachedPromotion *promo;	/* NULL when sold */
	int			line;			/* promo NULL: the line that sold it */
	Discount	value;			/* percent or amount */
	int64		min_total_to_use;	/* coupons */
	int			count;			/* certificates: how many */
	bool		capped;			/* certificates: the check earned more than count */
	bool		has_valid_until;
	TimestampTz valid_until;
	List	   *codes;			/* char *, filled when issued (issue 5) */
} IssuedItem;

/* Fixed points (points_fixed). */
typedef struct PointsGrant
{
	const CachedPromotion *promo;
	int			account;
	int64		points;			/* hundredths, rounded down to precision */
	bool		has_expiry;		/* else the account's lifetime */
	TimestampTz expires_at;
} PointsGrant;

/* Points by percent or multiplier on some lines (points_percent). */
typedef struct PointsRate
{
	const CachedPromotion *promo;
	int			account;
	int32		percent;		/* hundredths of a percent, or 0 */
	int32		multiplier;		/* hundredths, or 0 */
	bool	   *lines;			/* which lines it covers */
} PointsRate;

/* A suggestion to the cashier (a missing gift). */
typedef struct Suggestion
{
	const CachedPromotion *promo;
	char	   *text;
	char	   *sku;
	int64		qty;			/* whole units */
} Suggestion;

/* A coupon code sent in the request and what became of it. */
typedef struct CouponStatus
{
	char	   *code;
	bool		applied;
	char	   *reason;			/* when rejected */
	const CachedPromotion *promo;	/* the promotion it unlocks, if any */
	char		kind;			/* 'p' promo, 'u' personal, 'c' certificate, 0 unknown */
	int32		percent;		/* a coupon that is a discount: percent off the check */
	int64		value;			/* ... or money off; a certificate: its face value */
	int64		balance;		/* a certificate: what is left before this check */
	int64		min_total;		/* the check total needed to use it */
	int64		amount;			/* money it gave this check (discount or payment) */
} CouponStatus;

/* A promotion that took effect on this check. */
typedef struct AppliedPromotion
{
	const CachedPromotion *promo;
	int64		discount;
	int64		points;			/* hundredths earned through it */
} AppliedPromotion;

/* What a mechanic does to the check; applied by the engine. */
typedef struct Effect
{
	int64	   *delta;			/* discount per line, minor units */
	int64		total;			/* sum of delta */
	IssuedItem *issued;
	PointsGrant *grant;
	PointsRate *rate;
	Suggestion *suggestion;
	char	   *message;
} Effect;

/* The priced check. */
typedef struct CheckResult
{
	ConfigCache *cfg;
	CheckRequest *req;
	CustomerInfo *cust;
	EngineMode	mode;
	CachedStore *store;			/* NULL when the request names none */
	const char *channel;
	TimestampTz at;				/* the check's moment: promotions' time */
	TimestampTz server_now;		/* spending, pending, coupon validity */
	TimestampTz issue_at;		/* min(at, server_now): periods a check starts */
	pg_tz	   *tz;
	DateADT		local_date;
	int			iso_weekday;	/* 1 = Monday */
	int			minute_of_day;
	int			nlines;
	CheckLine  *lines;
	/* totals, minor units */
	int64		amount;
	int64		discount;
	int64		certificate;
	int64		redeemed;
	int64		total;
	int64		gift_amount;	/* of it, certificates sold (gift_certificate lines) */
	/* promotions */
	List	   *applied;		/* AppliedPromotion * */
	List	   *issued;			/* IssuedItem * */
	List	   *grants;			/* PointsGrant * */
	List	   *rates;			/* PointsRate * */
	List	   *suggestions;	/* Suggestion * */
	List	   *messages;		/* char * */
	List	   *warnings;		/* char * */
	int			ncoupons;
	CouponStatus *coupons;
	/* per promotion index: global uses so far (-1 when unknown/unlimited) */
	int64	   *usage;
	/* redemption */
	bool		has_balances;
	LedgerBalance *balances;	/* per account */
	RedeemResult *redeem;		/* per account; NULL when none */
	int64		redeem_requested;	/* hundredths; -1 = max */
	int64		redeem_max;
	int64		redeem_applied;
	/* accrual, hundredths of a point, per account */
	int64	   *accrual;
	int64	   *rate_points;	/* the part earned by percent (base, points_percent) */
} CheckResult;

/*
 * engine_run prices a check.  excluded (may be NULL) is indexed by
 * promotion index: promotions to leave out (purchase retries without a
 * promotion whose last use a concurrent purchase took).  usage holds the
 * global uses of limited promotions (NULL: none limited).  balances are
 * read through ledger_balances when the customer is identified.
 */
extern CheckResult *engine_run(ConfigCache *cfg, CheckRequest *req,
							   CustomerInfo *cust, const bool *excluded,
							   const int64 *usage, EngineMode mode);

/* applies an effect attributed to promotion p (mechanics, coupons) */
extern void engine_apply_effect(CheckResult *r, const CachedPromotion *p,
								const Effect *eff);

/* helpers for the mechanics */
extern bool engine_line_matches(CheckResult *r, int i, int sel);
extern bool engine_line_discountable(CheckResult *r, int i,
									 const CachedPromotion *p);
extern int64 engine_line_cap(CheckResult *r, int i);
extern int64 engine_check_total(CheckResult *r);
extern void engine_spread(CheckResult *r, int64 amount, const bool *eligible,
						  int64 *delta);
extern int64 engine_units_value(const CheckLine *l, int64 units);
extern void engine_cheapest_units(CheckResult *r, const bool *eligible,
								  int64 take, int64 *taken);
extern TimestampTz engine_validity_end(CheckResult *r, const Validity *v,
									   bool *has_end);
extern TimestampTz engine_add_interval(TimestampTz t, const Interval *iv,
									   pg_tz *tz);
extern char *engine_money_text(int64 money);

#endif							/* LOYALTY_ENGINE_H */
