/*-------------------------------------------------------------------------
 *
 * config_cache.h
 *	  The program's configuration as the check engine sees it: settings,
 *	  stores with their time zones, the category tree, products hashed by
 *	  SKU, account types, tiers and the enabled promotions parsed once
 *	  through the table of mechanics (mechanics/mechanics.h): their
 *	  selectors at load, the rest of a rule when the promotion is first a
 *	  candidate in a check (config_promotion_rule).
 *
 * The cache lives in backend memory (a context under CacheMemoryContext)
 * and is built lazily by config_cache_get, inside the caller's SPI
 * connection.  Statement-level triggers on every configuration table call
 * loyalty.config_changed(), which sends a relcache invalidation for
 * loyalty.promotion; a relcache callback marks the cache stale, so a
 * configuration change is seen by the next call in every session (and by
 * the next command of the changing session itself).
 *
 * Per-product matches of promotion selectors are computed lazily, once per
 * product and selector, and kept in two bitsets on the product.  A
 * product's candidate promotions come from the promotion index built with
 * the cache (by SKU, category with ancestors, brand and tag, plus those
 * for any product), so a promotion naming none of a product's keys costs
 * that product nothing (issue 21).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_CONFIG_CACHE_H
#define LOYALTY_CONFIG_CACHE_H

#include "pgtime.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"

#include "experiments.h"
#include "mechanics/mechanics.h"
#include "rules.h"

/* A sorted list of names (promotion scopes, segments). */
typedef struct NameList
{
	int			count;
	char	  **items;			/* sorted by strcmp */
} NameList;

typedef struct CachedStore
{
	char	   *code;
	char	   *region;			/* NULL when none */
	char	   *channel;		/* pos, web or app */
	pg_tz	   *tz;				/* store's zone, else the program's */
} CachedStore;

typedef struct CachedProduct
{
	char	   *sku;
	char	   *name;
	char	   *brand;			/* NULL when none */
	const char *const *categories;	/* own category first, then ancestors */
	int			ncategories;
	char	  **tags;
	int			ntags;
	int64		price;			/* catalog price, minor units; -1 when none */
	int64		min_price;		/* floor per unit, minor units; -1 when none */
	bool		no_discount;
	bool		no_points;
	bool		no_redeem;
	bool		gift_certificate;	/* sells gift certificates (issue 14 item 3) */
	uint8	   *sel_known;		/* selector bitsets, NULL until first needed */
	uint8	   *sel_match;
	int		   *promos;			/* promotions whose key selector matches */
	int			npromos;		/* -1 until first needed */
} CachedProduct;

typedef struct CachedAccountType
{
	char	   *code;
	int32		share;			/* redeem_share in hundredths of a percent */
	int64		min_check;		/* minor units */
	bool		has_lifetime;
	Interval	lifetime;
	Interval	activation_delay;
	int			redeem_order;
} CachedAccountType;

typedef struct CachedTier
{
	char	   *code;
	int			rank;
	int64		threshold;		/* minor units */
	int32		accrual_percent;	/* hundredths of a percent */
	int32		discount_percent;	/* hundredths of a percent */
} CachedTier;

typedef struct CachedPromotion
{
	int			index;			/* position in ConfigCache.promotions */
	char	   *code;
	char	   *name;
	const MechanicRoutine *mechanic;	/* its routine (mechanics/) */
	/*
	 * The rule is parsed when the promotion is first a candidate in a check
	 * (config_promotion_rule, from mech_apply); the load reads only its
	 * selectors (issue 21).  Until then rule is NULL and common zero.
	 */
	const void *rule;			/* the mechanic's own rule struct */
	RuleCommon	common;			/* the shared rule fields (rules.h) */
	Jsonb	   *rule_jsonb;		/* the rule as stored, in the cache's context */
	bool		rule_parsed;	/* rule and common are filled in */
	int			priority;
	char	   *grp;			/* NULL when none */
	int			grp_id;			/* -1 when none */
	bool		exclusive;
	bool		has_start;
	TimestampTz starts_at;
	bool		has_end;
	TimestampTz ends_at;
	Schedule   *schedule;		/* NULL when none */
	NameList   *channels;		/* NULL = any */
	NameList   *stores;
	NameList   *regions;
	NameList   *tiers;
	NameList   *segments;
	NameList   *segments_exclude;	/* NULL = none; members of any never get it */
	/* an experiment's promotion: only its variant (EXPERIMENT_ANY_VARIANT:
	 * every variant), never the holdout; NULL when none */
	char	   *experiment_code;	/* as written; NULL when none */
	char	   *variant_code;	/* NULL: every variant */
	const CachedExperiment *experiment;
	int			variant;
	bool		identified_only;
	bool		requires_coupon;
	int			usage_limit;	/* 0 = none */
	int			per_customer_limit; /* 0 = none */
	int64		budget;			/* money, minor units; 0 = none (budget.c) */
	int64		points_budget;	/* hundredths of a point; 0 = none (budget.c) */
	/* selector indexes for config_product_matches; -1 when unused */
	int			sel_products;
	int			sel_trigger;
	int			sel_target;
	/*
	 * The selector a line must match for the promotion to do anything on a
	 * check (products, or the trigger); -1 for check-level mechanics.
	 */
	int			key_sel;
} CachedPromotion;

/* A subscription plan: buying sku starts or extends it on products (sel). */
typedef struct CachedSubscriptionPlan
{
	char	   *code;
	char	   *sku;
	int			sel;			/* selector index of its products */
	Interval	duration;
} CachedSubscriptionPlan;

typedef struct ConfigCache
{
	MemoryContext cxt;
	/*
	 * per-product memo (selector matches, candidate promotions), filled
	 * lazily as products are priced: bounded by the catalog, in small
	 * blocks so that filling its tail does not reserve megabytes
	 */
	MemoryContext memo_cxt;
	/* settings */
	pg_tz	   *program_tz;
	char	   *program_tz_name;
	int			points_precision;	/* 0 or 2 */
	int64		point_value;	/* minor units */
	int64		certificate_max_value;	/* minor units: one certificate's cap */
	int32		accrual_percent;	/* hundredths of a percent */
	char	   *currency;
	/* tier_window: the previous calendar month, or a rolling interval */
	bool		tier_previous_month;
	Interval	tier_window;
	/* how far a request's "at" may lie behind / ahead of the server's time */
	Interval	max_backdate;
	char	   *max_backdate_text;
	Interval	max_clock_skew;
	char	   *max_clock_skew_text;
	/* stores, by code */
	HTAB	   *stores;
	/* products, by SKU */
	HTAB	   *products;
	int			nproducts;
	/* account types in redeem_order, then code */
	int			naccounts;
	CachedAccountType *accounts;
	int			main_account;	/* index of "main", -1 when none */
	/* tiers by rank ascending */
	int			ntiers;
	CachedTier *tiers;
	/* enabled promotions by priority, then code (bytewise) */
	int			npromotions;
	CachedPromotion *promotions;
	int			ngroups;
	int			nselectors;
	const ProductSelector **selectors;	/* by selector index */
	bool		any_usage_limit;	/* some promotion has a usage limit */
	bool		any_budget;		/* some promotion has a budget or points_budget */
	bool		any_segments;	/* some promotion names segments (to include or exclude) */
	bool		any_customer_limit;	/* some promotion has a per-customer limit */
	bool		first_purchase_points;	/* points_event "first_purchase" is
										 * enabled (event_points.c) */
	/* subscription plans by code */
	int			nplans;
	CachedSubscriptionPlan *plans;
	bool	   *check_level;	/* by promotion index: key_sel < 0 */
	/*
	 * The promotion index (issue 21), built with the cache: the promotions
	 * whose key selector names a SKU, a category (a product matches it
	 * through its own category or an ancestor), a brand or a tag, by that
	 * name (PromoList values, indexes ascending); those whose key selector
	 * is "all" (any product may match); and the check-level ones.  A
	 * product's candidates are the union of its names' lists and the "all"
	 * list, filtered by the exact selector match (which applies "exclude").
	 */
	HTAB	   *idx_skus;
	HTAB	   *idx_categories;
	HTAB	   *idx_brands;
	HTAB	   *idx_tags;
	int		   *any_product;	/* key selector "all", ascending */
	int			nany_product;
	int		   *check_level_list;	/* key_sel < 0, ascending */
	int			ncheck_level;
	/* the promotions with a (global) usage limit, ascending (check_usage) */
	int		   *usage_limited;
	int			nusage_limited;
} ConfigCache;

/* A list of promotion indexes, ascending (the promotion index). */
typedef struct PromoList
{
	int			count;
	int			capacity;
	int		   *items;
} PromoList;

/* the cache, built when missing or stale; call inside SPI_connect */
extern ConfigCache *config_cache_get(void);

/*
 * a candidate configuration for a backtest (backtest.c): see config_cache.c;
 * call inside SPI_connect
 */
extern ConfigCache *config_cache_build_candidate(Jsonb *candidates,
												 Datum disable);

/* look-ups; NULL when unknown */
extern CachedStore *config_store(ConfigCache *cfg, const char *code);
extern CachedProduct *config_product(ConfigCache *cfg, const char *sku);
extern const CachedTier *config_tier(ConfigCache *cfg, const char *code);
extern const CachedSubscriptionPlan *config_plan(ConfigCache *cfg, const char *code);
extern int	config_account_index(ConfigCache *cfg, const char *code);

/* does product p match selector sel_index?  Memoized per product. */
extern bool config_product_matches(ConfigCache *cfg, CachedProduct *p,
								   int sel_index);

/*
 * the promotions (indexes, ascending) whose key selector product p matches;
 * computed once per product and configuration
 */
extern const int *config_product_promotions(ConfigCache *cfg, CachedProduct *p,
											int *n);

/*
 * config_promotion_rule parses promotion p's rule (rule, common) into the
 * cache's context when not yet done: the engine calls it before the
 * mechanic runs (mechanics/common.c mech_apply)
 */
extern void config_promotion_rule(ConfigCache *cfg, const CachedPromotion *p);

/* sorted name lists */
extern bool namelist_has(const NameList *list, const char *name);
extern bool namelist_intersects(const NameList *list, char *const *names, int n);

/* the relcache callback's registration (called from _PG_init-like code) */
extern void config_cache_register_callback(void);

#endif							/* LOYALTY_CONFIG_CACHE_H */
