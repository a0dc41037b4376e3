/*-------------------------------------------------------------------------
 *
 * coupons.h
 *	  The check engine's boundary with coupons, certificates and
 *	  subscriptions (SPEC section 6; implemented by issue 5).
 *
 * The engine calls these at fixed points of the pipeline:
 *	  coupons_check			before promotions: the status of every coupon
 *							code of the request, and which requires_coupon
 *							promotions the codes unlock;
 *	  coupons_apply_certificates
 *							after promotions, before points: certificates
 *							pay a check-level amount (line.certificate);
 *	  coupons_assign_codes	in purchase, before the response: the codes
 *							of the coupons and certificates it issues;
 *	  coupons_commit		in purchase, once the operation is recorded:
 *							uses of coupons, certificate balances, the
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

extern void coupons_check(CheckResult *r, bool *unlocked);
extern void coupons_apply_certificates(CheckResult *r);
extern void coupons_assign_codes(CheckResult *r);
extern bool coupons_commit(CheckResult *r, const char *operation_id,
						   EventBatch *events);
extern void coupons_refund(const char *purchase_operation_id,
						   const char *operation_id, bool full,
						   TimestampTz server_now);
extern List *coupons_refund_sold(const char *purchase_operation_id, int n,
								 const int *line_index, const int64 *qty);

#endif							/* LOYALTY_COUPONS_H */
