/*-------------------------------------------------------------------------
 *
 * check_load.h
 *	  What happens to a check request before the engine runs (see
 *	  check_load.c): binding it to the configuration, which raises every
 *	  error a client can cause there, and loading what the database holds
 *	  for it into one CheckInput.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_CHECK_LOAD_H
#define LOYALTY_CHECK_LOAD_H

#include "check.h"

/*
 * check_bind binds the request to the configuration and the server's
 * time: "at" within its window, the store known, each line's product and
 * price (a catalog price when none is sent), certificate lines whole and
 * within certificate_max_value, the check's total under the bound.
 * Raises 22023 naming the field; reads nothing from tables.
 */
extern CheckInput *check_bind(ConfigCache *cfg, CheckRequest *req,
							  CustomerInfo *cust, EngineMode mode);

/*
 * check_bind_lines binds (again) the lines of in->req into in->lines, as
 * check_bind does; catalog_prices binds each SKU's line this way, the
 * moment and the store once.
 */
extern void check_bind_lines(ConfigCache *cfg, CheckInput *in);

/*
 * check_load is check_bind, then, for a whole check (ENGINE_CHECK), what
 * the database holds for it: the global uses of limited promotions, the
 * rows of the request's coupon codes (locked for a purchase) and the
 * customer's balances at the server's time.  cust is loaded before
 * (check_customer, check_customer_locked).  Call inside SPI_connect.
 */
extern CheckInput *check_load(ConfigCache *cfg, CheckRequest *req,
							  CustomerInfo *cust, EngineMode mode);

#endif							/* LOYALTY_CHECK_LOAD_H */
