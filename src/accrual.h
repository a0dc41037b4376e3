/*-------------------------------------------------------------------------
 *
 * accrual.h
 *	  What a purchase earned, written to the ledger (accrual.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_ACCRUAL_H
#define LOYALTY_ACCRUAL_H

#include "check.h"
#include "events.h"

/*
 * ledger_accrue_check credits what a priced check earned: per account, one
 * lot for the points that expire together; an account in debt pays it
 * first.  Call inside SPI_connect, under the customer's lock.
 */
extern void ledger_accrue_check(CheckResult *r, const char *operation_id,
								EventBatch *events);

#endif							/* LOYALTY_ACCRUAL_H */
