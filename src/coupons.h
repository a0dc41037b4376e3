/*-------------------------------------------------------------------------
 *
 * coupons.h
 *	  Coupons, certificates and subscriptions in the database (SPEC
 *	  section 6): what the check API reads before the engine runs and
 *	  writes after it.  What the codes do to a check is the pure coupon
 *	  stage's (coupons_apply.h).
 *
 *	  coupons_read			in the loader (check_load), before the engine:
 *							the rows of the request's codes, locked for a
 *							purchase;
 *	  coupons_assign_codes	in purchase, before the response: the codes
 *							of the coupons and certificates it issues;
 *	  coupons_commit		in purchase, once the operation is recorded:
 *							uses of coupons (rows locked since
 *							coupons_read), certificate balances, the
 *							issued coupons and certificates;
 *	  coupons_refund		in refund: on a full refund restore used coupons
 *							and void unused issued ones;
 *	  coupons_refund_sold	in refund: void the certificates that refunded
 *							units of certificate products sold (LY005 when
 *							some were spent).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_COUPONS_H
#define LOYALTY_COUPONS_H

#include "check.h"
#include "events.h"

extern void coupons_read(CheckInput *in);
extern void coupons_assign_codes(CheckResult *r);
extern bool coupons_commit(CheckResult *r, const char *operation_id,
						   EventBatch *events);
extern void coupons_use(CheckResult *r, const char *operation_id);
extern void coupons_refund(const char *purchase_operation_id,
						   const char *operation_id, bool full,
						   TimestampTz server_now);
extern List *coupons_refund_sold(const char *purchase_operation_id, int n,
								 const int *line_index, const int64 *qty);

#endif							/* LOYALTY_COUPONS_H */
