/*-------------------------------------------------------------------------
 *
 * tiers.h
 *	  What a purchase does to the customer's tier (tiers.c).  Call inside
 *	  SPI_connect, under the customer's lock.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_TIERS_H
#define LOYALTY_TIERS_H

#include "check.h"

/*
 * tiers_refresh moves the purchase's customer up to the tier their spend
 * now reaches, once the purchase is written (never down: that is
 * loyalty.recalculate_tiers' job).
 */
extern void tiers_refresh(CheckResult *r);

#endif							/* LOYALTY_TIERS_H */
