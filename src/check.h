/*-------------------------------------------------------------------------
 *
 * check.h
 *	  The check core: the data model of a check being priced (lines,
 *	  effects, the result) and the arithmetic on its lines that every
 *	  pipeline stage shares (check.c).
 *
 * Who includes what: the engine (engine.c, the pipeline), the mechanics
 * (src/mechanics/), the coupon stage (coupons_apply.c), the response and
 * the writers of a purchase include this header; it includes no header of
 * theirs.  Nothing declared here runs SQL or raises an error a client can
 * cause.
 *
 * Mechanics compute an Effect on the check as it stands without changing
 * it; check_apply_effect applies it.  That is what lets a group evaluate
 * every member and keep only the best.
 *
 * All memory is allocated in CurrentMemoryContext (the call's).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_CHECK_H
#define LOYALTY_CHECK_H

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
	/* balances by account index, when read with the customer (check_db.c) */
	bool		has_balances;
	LedgerBalance *balances;
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
	int64	   *line_weights;	/* per line, what the grant credits it; NULL:
								 * spread by the lines' paid money */
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

/* What a mechanic does to the check; applied by check_apply_effect. */
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

/* A coupon or certificate row as the loader read it (coupons_read). */
typedef struct CouponRow
{
	char	   *code;
	char	   *promotion;		/* the promotion it belongs to, or NULL */
	char		kind;			/* 'p' promo, 'u' personal, 'c' certificate */
	bool		has_value;
	int64		value;			/* money off, or a certificate's face value */
	int64		balance;		/* a certificate: what is left */
	bool		has_percent;
	int32		percent;		/* hundredths of a percent */
	int64		min_total;
	TimestampTz valid_from;
	bool		has_until;
	TimestampTz valid_until;
	bool		used_up;		/* uses reached, status used, or balance gone */
	bool		is_void;
	bool		has_owner;
	int64		owner;			/* the customer it is bound to (a merge's survivor) */
} CouponRow;

/* A request line bound to the configuration (check_bind). */
typedef struct BoundLine
{
	CachedProduct *product;		/* NULL: unknown SKU */
	int64		price;			/* the request's, else the catalog price */
	int64		amount;			/* round(price * qty) */
} BoundLine;

/*
 * Everything engine_run needs besides the configuration: the request bound
 * to the configuration (check_bind: nothing left in it that the engine
 * could refuse) and what the database holds for this check, read before
 * the engine runs (check_load).  The engine only reads it, so a purchase
 * that prices its check again reuses it.
 */
typedef struct CheckInput
{
	CheckRequest *req;
	CustomerInfo *cust;
	EngineMode	mode;
	/* bound */
	TimestampTz server_now;		/* spending, pending, coupon validity */
	TimestampTz at;				/* the check's moment */
	CachedStore *store;			/* NULL when the request names none */
	BoundLine  *lines;			/* req->nlines */
	/* read */
	const int64 *usage;			/* global uses by promotion index (-1:
								 * unlimited); NULL: not counted */
	const int64 *budget_left;	/* money left of each promotion's budget
								 * (-1: none); NULL: no budgets (budget.c) */
	const int64 *points_left;	/* points (hundredths) left of each
								 * points_budget (-1: none); NULL with
								 * budget_left */
	char	  **coupon_codes;	/* req->ncoupons, as stored (canonical) */
	int			ncoupon_rows;
	CouponRow  *coupon_rows;	/* the rows of those codes, in no order */
	bool		has_balances;
	LedgerBalance *balances;	/* per account, at server_now */
} CheckInput;

/* The priced check. */
typedef struct CheckResult
{
	ConfigCache *cfg;
	const CheckInput *in;		/* what it was priced from */
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
	/*
	 * While the engine evaluates a promotion that has a key selector: the
	 * lines that selector matches (check_line_matches), ascending, from the
	 * per-promotion line lists built once per check (issue 21); NULL
	 * otherwise (every line must be looked at).
	 */
	const int  *key_lines;
	int			nkey_lines;
	/* check_validity_end's "end_of_month" for issue_at, once computed */
	bool		has_month_end;
	TimestampTz month_end;
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

/* check_apply_effect applies an effect attributed to promotion p */
extern void check_apply_effect(CheckResult *r, const CachedPromotion *p,
							   const Effect *eff);

/* is line i a known product matching selector sel? */
extern bool check_line_matches(CheckResult *r, int i, int sel);
/* may promotion p discount line i? */
extern bool check_line_discountable(CheckResult *r, int i,
									const CachedPromotion *p);
/* the most line i may still be discounted */
extern int64 check_line_cap(CheckResult *r, int i);
/* the check's money as it stands, for thresholds */
extern int64 check_total(CheckResult *r);
/* spreads amount over the eligible lines within their caps */
extern void check_spread(CheckResult *r, int64 amount, const bool *eligible,
						 int64 *delta);
/* what "units" whole units of a line cost now */
extern int64 check_units_value(const CheckLine *l, int64 units);
/* chooses "take" whole units, cheapest first */
extern void check_cheapest_units(CheckResult *r, const bool *eligible,
								 int64 take, int64 *taken);
/* when something issued by this check with validity v stops being valid */
extern TimestampTz check_validity_end(CheckResult *r, const Validity *v,
									  bool *has_end);
/* money for messages: "150.00" */
extern char *check_money_text(int64 money);

#endif							/* LOYALTY_CHECK_H */
