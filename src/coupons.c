/*-------------------------------------------------------------------------
 *
 * coupons.c
 *	  Coupons and certificates in a check: the boundary issue 5 fills in
 *	  (see coupons.h).  For now every code is rejected as unknown.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "coupons.h"

/*
 * coupons_check fills r->coupons with the status of each code of the
 * request and sets unlocked[promotion index] for the requires_coupon
 * promotions a valid code unlocks.  No coupon table yet: all "unknown".
 */
void
coupons_check(CheckResult *r, bool *unlocked)
{
	int			i;

	r->ncoupons = r->req->ncoupons;
	r->coupons = palloc0(sizeof(CouponStatus) * Max(r->ncoupons, 1));
	for (i = 0; i < r->ncoupons; i++)
	{
		r->coupons[i].code = r->req->coupons[i];
		r->coupons[i].applied = false;
		r->coupons[i].reason = "unknown";
	}
}

/*
 * coupons_apply_certificates spends the request's certificates over the
 * lines (line.certificate, r->certificate).  No certificates yet.
 */
void
coupons_apply_certificates(CheckResult *r)
{
}

/*
 * coupons_commit records, for a committed purchase, the uses of its coupons
 * and certificates and the codes of what it issued (IssuedItem.codes).
 */
void
coupons_commit(CheckResult *r, const char *operation_id)
{
}

/*
 * coupons_refund restores a used single-use coupon and voids unused issued
 * coupons when a purchase is refunded in full.
 */
void
coupons_refund(const char *purchase_operation_id, const char *operation_id,
			   bool full)
{
}
