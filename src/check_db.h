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
 * check_customer resolves the request's customer (LY001 when unknown;
 * merged customers resolve to the survivor) and loads tier, segments and
 * per-customer promotion uses, in one query.  An anonymous request gives
 * an unidentified CustomerInfo without any query.
 */
extern CustomerInfo *check_customer(ConfigCache *cfg, CheckRequest *req);

/*
 * check_customer_locked is check_customer for a purchase: the customer's
 * row is locked (FOR NO KEY UPDATE) until the end of the transaction before
 * the customer is loaded, so their points cannot be spent twice.
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
