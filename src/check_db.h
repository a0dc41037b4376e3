/*-------------------------------------------------------------------------
 *
 * check_db.h
 *	  What the check API reads and writes besides the ledger: the customer
 *	  (resolved from the request's identifier), promotion usage counters
 *	  (check_usage is read by the loader, check_load.h), purchase and refund
 *	  facts.  Every statement is a saved SPI plan; call inside SPI_connect.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_CHECK_DB_H
#define LOYALTY_CHECK_DB_H

#include "check.h"

/*
 * What a customer's read includes besides the customer row (id, tier,
 * status): each part only when the configuration uses it.
 */
#define CUST_READ_SEGMENTS		0x01	/* segments (promotions name some) */
#define CUST_READ_USAGE			0x02	/* uses of per-customer-limited promotions */
#define CUST_READ_SUBSCRIPTIONS	0x04	/* subscriptions (the program has plans) */
#define CUST_READ_BALANCES		0x08	/* balances (the program has accounts) */
#define CUST_READ_ALL			0x0F

/* check_customer_reads is what a customer's read of cfg must include */
extern int	check_customer_reads(ConfigCache *cfg);

/*
 * check_customer resolves the request's customer (LY001 when unknown;
 * merged customers resolve to the survivor) and loads tier and, as
 * check_customer_reads says, segments, per-customer promotion uses,
 * subscriptions and balances (as of the request's server time), in one
 * query.  An anonymous request gives an unidentified CustomerInfo without
 * any query.
 */
extern CustomerInfo *check_customer(ConfigCache *cfg, CheckRequest *req);

/* check_customer_reading is check_customer reading the given CUST_READ_ parts */
extern CustomerInfo *check_customer_reading(ConfigCache *cfg, CheckRequest *req,
											int reads);

/*
 * check_customer_locked is check_customer for a purchase: the customer's
 * row is locked (FOR NO KEY UPDATE) until the end of the transaction and
 * read as it is locked; the other parts are read after the lock in one
 * more query (none when the configuration reads none), so their points
 * cannot be spent twice.
 */
extern CustomerInfo *check_customer_locked(ConfigCache *cfg, CheckRequest *req);

/*
 * check_usage returns the global uses of every promotion with a usage
 * limit, by promotion index (-1 for the others), or NULL when the program
 * has no limited promotion.
 */
extern int64 *check_usage(ConfigCache *cfg);

/*
 * check_claim_uses counts one use of every limited promotion the check
 * applied.  Returns the index of a promotion whose limit a concurrent
 * purchase exhausted (its counters are left unchanged, and so are the
 * others'), or -1 when every use was taken.
 */
extern int	check_claim_uses(CheckResult *r);

/*
 * check_release_uses, on the full refund of a purchase, gives back the uses
 * it counted: one of each global counter named in global (the purchase's
 * usage_counted) and one of each of customer customer_id's counters named
 * in customer (its customer_usage_counted).  The caller holds the purchase's
 * and the customer's row locks.
 */
extern void check_release_uses(ConfigCache *cfg, int64 customer_id,
							   char **global, int nglobal,
							   char **customer, int ncustomer);

/* check_write_purchase writes loyalty.purchase and its lines and points. */
extern void check_write_purchase(CheckResult *r, const char *operation_id,
								 Jsonb *response);

#endif							/* LOYALTY_CHECK_DB_H */
