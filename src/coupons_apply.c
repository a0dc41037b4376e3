/*-------------------------------------------------------------------------
 *
 * coupons_apply.c
 *	  The coupon stage of the check pipeline (see coupons_apply.h): what
 *	  the codes a request brings do to the check, decided from the rows the
 *	  loader read (coupons_read in coupons.c).
 *
 * Three kinds of code reach a check:
 *	  - an unlocking coupon (a promotion's code, mass or personal): it lets a
 *		requires_coupon promotion apply; it counts as used only if that
 *		promotion did apply;
 *	  - a discount coupon (a bounce-back coupon printed by coupon_issue): its
 *		own percent or amount off the check, after promotions, attributed to
 *		the promotion that issued it, from its min_total up;
 *	  - a gift certificate: a check-level payment after promotions and
 *		before points, spent partially, the balance kept.
 * A code that cannot be used is reported "rejected" with its reason
 * (unknown, void, used up, not yet valid, expired, not yours, check too
 * small, ...), never an error.
 *
 * Plain C over the check in memory: it includes only check.h, runs no SQL
 * and raises nothing a client causes.  Using the codes up, issuing new
 * ones and refunds are coupons.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "miscadmin.h"

#include "coupons_apply.h"

/* find_promotion returns the cached promotion with this code, or NULL. */
static const CachedPromotion *
find_promotion(ConfigCache *cfg, const char *code)
{
	for (int i = 0; i < cfg->npromotions; i++)
		if (strcmp(cfg->promotions[i].code, code) == 0)
			return &cfg->promotions[i];
	return NULL;
}

/* reject marks a coupon rejected with a reason. */
static void
reject(CouponStatus *c, const char *reason)
{
	c->applied = false;
	c->reason = (char *) reason;
}

/*
 * coupons_check decides, from the rows the loader read (coupons_read),
 * what each code of the request can do, and sets unlocked[] for the
 * requires_coupon promotions that valid codes unlock.  Discount coupons
 * and certificates wait for coupons_apply_certificates.
 */
void
coupons_check(CheckResult *r, bool *unlocked)
{
	const CheckInput *in = r->in;
	int			n = r->req->ncoupons;

	r->ncoupons = n;
	r->coupons = palloc0(sizeof(CouponStatus) * Max(n, 1));
	if (n == 0)
		return;

	for (int i = 0; i < n; i++)
	{
		r->coupons[i].code = in->coupon_codes[i];
		reject(&r->coupons[i], "unknown");
	}

	for (int row = 0; row < in->ncoupon_rows; row++)
	{
		const CouponRow *cr = &in->coupon_rows[row];
		bool		seen = false;

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < n; i++)
		{
			CouponStatus *c = &r->coupons[i];

			if (strcmp(c->code, cr->code) != 0)
				continue;
			if (seen)
			{
				reject(c, "sent twice");
				continue;
			}
			seen = true;
			c->kind = cr->kind;
			c->value = cr->has_value ? cr->value : 0;
			c->balance = c->kind == 'c' ? cr->balance : 0;
			c->percent = cr->has_percent ? cr->percent : 0;
			c->min_total = cr->min_total;
			c->promo = cr->promotion ? find_promotion(r->cfg, cr->promotion) : NULL;

			if (cr->is_void)
				reject(c, "void");
			else if (cr->used_up)
				reject(c, "used up");
			/*
			 * valid both at the check's moment (it existed when the customer
			 * showed it) and at the server's time (a late or misdated check
			 * cannot bring back an expired coupon)
			 */
			else if (r->at < cr->valid_from || r->server_now < cr->valid_from)
				reject(c, "not yet valid");
			else if (cr->has_until && (r->at >= cr->valid_until || r->server_now >= cr->valid_until))
				reject(c, "expired");
			else if (cr->has_owner && (!r->cust->identified || r->cust->id != cr->owner))
				reject(c, "not yours");
			else if (c->kind != 'c' && c->percent == 0 && c->value == 0)
			{
				/* an unlocking coupon: settled once the promotions have run */
				if (c->promo == NULL)
					reject(c, "its promotion no longer exists");
				else
				{
					unlocked[c->promo->index] = true;
					c->applied = true;
					c->reason = NULL;
				}
			}
			else
				c->reason = NULL;	/* applied or rejected after promotions */
		}
	}
}

/*
 * apply_discount_coupon takes a discount coupon's percent or amount off the
 * lines its promotion may discount, within their floors, attributed to the
 * promotion that issued it.
 */
static void
apply_discount_coupon(CheckResult *r, CouponStatus *c)
{
	Effect		eff;
	bool	   *eligible = palloc0(sizeof(bool) * r->nlines);
	int64		base = 0;
	int64		current = 0;	/* what the eligible lines cost now */
	int64		amount;

	if (c->promo == NULL)
	{
		reject(c, "its promotion no longer exists");
		return;
	}
	if (check_total(r) < c->min_total)
	{
		reject(c, "check too small");
		return;
	}
	for (int i = 0; i < r->nlines; i++)
	{
		eligible[i] = check_line_discountable(r, i, c->promo);
		if (eligible[i])
		{
			base += check_line_cap(r, i);
			current += LINE_CURRENT(&r->lines[i]);
		}
	}
	/* a percent of the lines it may discount, never of no_discount items */
	amount = c->percent > 0 ? money_percent(current, c->percent) : c->value;
	amount = Min(amount, base);

	memset(&eff, 0, sizeof(eff));
	eff.delta = palloc0(sizeof(int64) * r->nlines);
	if (amount > 0)
		check_spread(r, amount, eligible, eff.delta);
	for (int i = 0; i < r->nlines; i++)
		eff.total += eff.delta[i];
	if (eff.total == 0)
	{
		reject(c, "nothing on the check it can discount");
		return;
	}
	check_apply_effect(r, c->promo, &eff);
	c->applied = true;
	c->amount = eff.total;
}

/*
 * apply_certificate pays with a certificate: as much of the check as its
 * balance covers, spread over the lines in proportion to what each still
 * costs (largest remainder), so the parts add up exactly.
 */
static void
apply_certificate(CheckResult *r, CouponStatus *c)
{
	int64	   *due = palloc(sizeof(int64) * r->nlines);
	int64	   *part = palloc(sizeof(int64) * r->nlines);
	int64		total = 0;
	int64		pay;

	for (int i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];

		/* a certificate never pays for certificates sold */
		due[i] = l->gift_certificate ? 0 : l->amount - l->discount - l->certificate;
		total += due[i];
	}
	pay = Min(c->balance, total);
	if (pay <= 0)
	{
		reject(c, "nothing left to pay");
		return;
	}
	allocate_largest_remainder(pay, due, r->nlines, part);
	for (int i = 0; i < r->nlines; i++)
		r->lines[i].certificate += part[i];
	c->applied = true;
	c->amount = pay;
}

/*
 * coupons_apply_certificates runs after the promotions: an unlocking
 * coupon counts only if its promotion applied; then discount coupons, then
 * certificates, in the order the request sends them.
 */
void
coupons_apply_certificates(CheckResult *r)
{
	for (int i = 0; i < r->ncoupons; i++)
	{
		CouponStatus *c = &r->coupons[i];
		bool		applied = false;
		ListCell   *lc;

		if (!c->applied || c->kind == 'c' || c->percent > 0 || c->value > 0)
			continue;
		foreach(lc, r->applied)
		{
			AppliedPromotion *ap = lfirst(lc);

			if (ap->promo == c->promo)
			{
				applied = true;
				c->amount = ap->discount;
			}
		}
		if (!applied)
			reject(c, "its promotion does not apply to this check");
	}
	for (int i = 0; i < r->ncoupons; i++)
	{
		CouponStatus *c = &r->coupons[i];

		if (c->kind != 0 && c->kind != 'c' && c->reason == NULL && !c->applied)
			apply_discount_coupon(r, c);
	}
	for (int i = 0; i < r->ncoupons; i++)
	{
		CouponStatus *c = &r->coupons[i];

		if (c->kind == 'c' && c->reason == NULL && !c->applied)
			apply_certificate(r, c);
	}
}
