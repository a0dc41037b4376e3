/*-------------------------------------------------------------------------
 *
 * check_api.h
 *	  The purchase's pricing and commit path (check_api.c), shared with the
 *	  online orders (orders.c): an order is held at the purchase's prices
 *	  and its capture commits exactly what a purchase commits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_CHECK_API_H
#define LOYALTY_CHECK_API_H

#include "utils/jsonb.h"

#include "check.h"
#include "config_cache.h"
#include "request.h"

extern CheckResult *purchase_price(ConfigCache *cfg, CheckRequest *req,
								   CustomerInfo *cust);
extern Jsonb *purchase_commit(ConfigCache *cfg, CheckRequest *req, Jsonb *request,
							  CustomerInfo *cust, bool claim);

#endif							/* LOYALTY_CHECK_API_H */
