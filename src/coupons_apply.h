/*-------------------------------------------------------------------------
 *
 * coupons_apply.h
 *	  The coupon stage of the check pipeline (SPEC section 6): the codes a
 *	  request brings, judged and applied from the rows the loader read.
 *	  Pure: no SQL (coupons.h reads, uses up and issues codes).
 *
 * The engine calls these at fixed points of the pipeline:
 *	  coupons_check			before promotions: the status of every coupon
 *							code of the request, and which requires_coupon
 *							promotions the codes unlock;
 *	  coupons_apply_certificates
 *							after promotions, before points: unlocking
 *							coupons settle, discount coupons take their
 *							amount off, certificates pay a check-level
 *							amount (line.certificate).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_COUPONS_APPLY_H
#define LOYALTY_COUPONS_APPLY_H

#include "check.h"

extern void coupons_check(CheckResult *r, bool *unlocked);
extern void coupons_apply_certificates(CheckResult *r);

#endif							/* LOYALTY_COUPONS_APPLY_H */
