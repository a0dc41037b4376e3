/*-------------------------------------------------------------------------
 *
 * subscriptions.h
 *	  What a purchase does to subscriptions (subscriptions.c).  Call inside
 *	  SPI_connect, under the customer's lock.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_SUBSCRIPTIONS_H
#define LOYALTY_SUBSCRIPTIONS_H

#include "check.h"

/*
 * subscriptions_commit starts or extends, for an identified customer, the
 * subscription of every plan whose SKU the purchase bought.
 */
extern void subscriptions_commit(CheckResult *r, const char *operation_id);

#endif							/* LOYALTY_SUBSCRIPTIONS_H */
