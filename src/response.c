/*-------------------------------------------------------------------------
 *
 * response.c
 *	  Building the check API's JSON responses (see response.h).
 *
 * Response of calculate and purchase (SPEC section 7), with these extra
 * keys: "at" (the check's moment in the store's time zone), "store",
 * "channel", "promotions" (each promotion that took effect, with its name,
 * discount and points) and, per line, "name" of known products.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "miscadmin.h"
#include "utils/datetime.h"
#include "utils/numeric.h"

#include "jsonb_builder.h"
#include "money.h"
#include "response.h"

/* response_timestamp prints t in ISO 8601 with tz's offset. */
char *
response_timestamp(TimestampTz t, pg_tz *tz)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	const char *tzn;
	char		buf[MAXDATELEN + 1];

	if (TIMESTAMP_NOT_FINITE(t) || timestamp2tm(t, &tzoff, &tm, &fsec, &tzn, tz) != 0)
		return NULL;
	EncodeDateTime(&tm, fsec, true, tzoff, NULL, USE_XSD_DATES, buf);
	return pstrdup(buf);
}


/* ---------------------------------------------------------------------
 * The check response
 * ---------------------------------------------------------------------
 */

/* accrual_object adds {"account": points, ...} for the non-zero entries. */
static void
accrual_object(JsonBuilder *b, CheckResult *r, const int64 *points)
{
	int			a;

	jb_begin_object(b);
	for (a = 0; a < r->cfg->naccounts && points != NULL; a++)
	{
		if (points[a] == 0)
			continue;
		jb_key(b, r->cfg->accounts[a].code);
		jb_points(b, false, points[a], r->cfg->points_precision);
	}
	jb_end_object(b);
}

/*
 * build_line adds one line.  Keys are pushed in jsonb's own key order
 * (shorter first, then bytewise), so that sorting the object when it is
 * closed finds it already sorted: a measurable saving on every line.
 */
static void
build_line(JsonBuilder *b, CheckResult *r, CheckLine *l)
{
	int			k;

	jb_begin_object(b);
	jb_key(b, "qty");
	jb_qty(b, false, l->qty);
	jb_key(b, "sku");
	jb_string(b, false, l->sku);
	if (l->product)
	{
		jb_key(b, "name");
		jb_string(b, false, l->product->name);
	}
	jb_key(b, "index");
	jb_int(b, false, l->index);
	jb_key(b, "parts");
	jb_begin_array(b);
	for (k = 0; k < l->nparts; k++)
	{
		jb_begin_object(b);
		jb_key(b, "qty");
		jb_qty(b, false, l->parts[k].qty);
		jb_key(b, "price");
		jb_money(b, false, l->parts[k].price);
		jb_end_object(b);
	}
	jb_end_array(b);
	jb_key(b, "price");
	jb_money(b, false, l->price);
	jb_key(b, "total");
	jb_money(b, false, l->total);
	jb_key(b, "amount");
	jb_money(b, false, l->amount);
	jb_key(b, "accrual");
	accrual_object(b, r, l->accrual);
	jb_key(b, "discount");
	jb_money(b, false, l->discount);
	jb_key(b, "redeemed");
	jb_money(b, false, l->redeemed);
	jb_key(b, "promotions");
	jb_begin_array(b);
	for (k = 0; k < l->npromos; k++)
	{
		jb_begin_object(b);
		jb_key(b, "code");
		jb_string(b, false, l->promos[k].promo->code);
		jb_key(b, "discount");
		jb_money(b, false, l->promos[k].discount);
		jb_end_object(b);
	}
	jb_end_array(b);
	if (l->certificate > 0)
	{
		jb_key(b, "certificate");
		jb_money(b, false, l->certificate);
	}
	jb_end_object(b);
}

/* build_redeem adds the "redeem" object (keys in jsonb order). */
static void
build_redeem(JsonBuilder *b, CheckResult *r)
{
	int			prec = r->cfg->points_precision;
	int			a;

	jb_begin_object(b);
	jb_key(b, "max");
	jb_points(b, false, r->redeem_max, prec);
	jb_key(b, "money");
	jb_money(b, false, r->redeemed);
	jb_key(b, "applied");
	jb_points(b, false, r->redeem_applied, prec);
	jb_key(b, "requested");
	if (r->redeem_requested < 0)
		jb_string(b, false, "max");
	else
		jb_points(b, false, r->redeem_requested, prec);
	jb_key(b, "by_account");
	jb_begin_object(b);
	for (a = 0; r->redeem != NULL && a < r->cfg->naccounts; a++)
	{
		if (r->redeem[a].points == 0)
			continue;
		jb_key(b, r->cfg->accounts[a].code);
		jb_points(b, false, r->redeem[a].points, prec);
	}
	jb_end_object(b);
	jb_end_object(b);
}

/*
 * build_issued adds one issued coupon or certificate: a certificate sold
 * by a line has no promotion ("promotion": null) and names its "line".
 */
static void
build_issued(JsonBuilder *b, CheckResult *r, IssuedItem *it)
{
	char	   *until;

	jb_begin_object(b);
	jb_key(b, "kind");
	jb_string(b, false, it->kind == ISSUED_COUPON ? "coupon" : "certificate");
	jb_key(b, "promotion");
	if (it->promo != NULL)
		jb_string(b, false, it->promo->code);
	else
	{
		jb_null(b, false);
		jb_key(b, "line");
		jb_int(b, false, it->line);
	}
	if (it->value.kind == DISCOUNT_PERCENT)
	{
		jb_key(b, "percent");
		jb_scaled(b, false, it->value.percent, 2);
	}
	else
	{
		jb_key(b, "value");
		jb_money(b, false, it->value.amount);
	}
	if (it->kind == ISSUED_COUPON)
	{
		jb_key(b, "min_total_to_use");
		jb_money(b, false, it->min_total_to_use);
	}
	else
	{
		jb_key(b, "count");
		jb_int(b, false, it->count);
		/* only when the rule's max_per_check held the count back */
		if (it->capped)
		{
			jb_key(b, "capped");
			jb_bool(b, false, true);
		}
	}
	jb_key(b, "valid_until");
	until = it->has_valid_until ? response_timestamp(it->valid_until, r->tz) : NULL;
	jb_string(b, false, until);
	if (it->codes != NIL)
	{
		ListCell   *lc;

		jb_key(b, "codes");
		jb_begin_array(b);
		foreach(lc, it->codes)
			jb_string(b, true, lfirst(lc));
		jb_end_array(b);
	}
	jb_end_object(b);
}

/* string_array adds an array of the C strings of a list. */
static void
string_array(JsonBuilder *b, List *list)
{
	ListCell   *lc;

	jb_begin_array(b);
	foreach(lc, list)
		jb_string(b, true, lfirst(lc));
	jb_end_array(b);
}

/*
 * build_response writes the response of calculate and purchase (see the
 * file header for the keys beyond SPEC section 7) into b, a jsonb or a
 * text builder.  Keys are added in jsonb's key order (shorter first, then
 * bytewise), which spares sorting most objects when they close.
 */
static void
build_response(JsonBuilder *b, CheckResult *r, const char *operation_id)
{
	int			prec = r->cfg->points_precision;
	ListCell   *lc;
	int			i;

	jb_begin_object(b);
	jb_key(b, "at");
	jb_string(b, false, response_timestamp(r->at, r->tz));

	jb_key(b, "lines");
	jb_begin_array(b);
	for (i = 0; i < r->nlines; i++)
	{
		CHECK_FOR_INTERRUPTS();
		build_line(b, r, &r->lines[i]);
	}
	jb_end_array(b);

	jb_key(b, "store");
	jb_string(b, false, r->store ? r->store->code : NULL);

	jb_key(b, "issued");
	jb_begin_array(b);
	foreach(lc, r->issued)
		build_issued(b, r, lfirst(lc));
	jb_end_array(b);

	jb_key(b, "redeem");
	build_redeem(b, r);

	jb_key(b, "totals");
	jb_begin_object(b);
	jb_key(b, "total");
	jb_money(b, false, r->total);
	jb_key(b, "amount");
	jb_money(b, false, r->amount);
	jb_key(b, "accrual");
	accrual_object(b, r, r->accrual);
	jb_key(b, "discount");
	jb_money(b, false, r->discount);
	jb_key(b, "redeemed");
	jb_money(b, false, r->redeemed);
	if (r->certificate > 0)
	{
		jb_key(b, "certificate");
		jb_money(b, false, r->certificate);
	}
	jb_end_object(b);

	jb_key(b, "balance");
	jb_begin_object(b);
	for (i = 0; r->has_balances && i < r->cfg->naccounts; i++)
	{
		jb_key(b, r->cfg->accounts[i].code);
		jb_begin_object(b);
		jb_key(b, "pending");
		jb_points(b, false, r->balances[i].pending, prec);
		jb_key(b, "available");
		jb_points(b, false, r->balances[i].available, prec);
		jb_end_object(b);
	}
	jb_end_object(b);

	jb_key(b, "channel");
	jb_string(b, false, r->channel);

	jb_key(b, "coupons");
	jb_begin_array(b);
	for (i = 0; i < r->ncoupons; i++)
	{
		jb_begin_object(b);
		jb_key(b, "code");
		jb_string(b, false, r->coupons[i].code);
		if (r->coupons[i].applied)
		{
			jb_key(b, "amount");
			jb_money(b, false, r->coupons[i].amount);
		}
		else
		{
			jb_key(b, "reason");
			jb_string(b, false, r->coupons[i].reason);
		}
		jb_key(b, "status");
		jb_string(b, false, r->coupons[i].applied ? "applied" : "rejected");
		if (r->coupons[i].applied && r->coupons[i].kind == 'c')
		{
			/* a certificate: what is left on it after this check */
			jb_key(b, "balance");
			jb_money(b, false, r->coupons[i].balance - r->coupons[i].amount);
		}
		jb_end_object(b);
	}
	jb_end_array(b);

	jb_key(b, "customer");
	if (r->cust->identified)
	{
		jb_begin_object(b);
		jb_key(b, "id");
		jb_int(b, false, r->cust->id);
		jb_key(b, "tier");
		jb_string(b, false, r->cust->tier ? r->cust->tier->code : NULL);
		jb_end_object(b);
	}
	else
		jb_null(b, false);

	jb_key(b, "messages");
	string_array(b, r->messages);
	jb_key(b, "warnings");
	string_array(b, r->warnings);

	jb_key(b, "promotions");
	jb_begin_array(b);
	foreach(lc, r->applied)
	{
		AppliedPromotion *ap = lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		jb_begin_object(b);
		jb_key(b, "code");
		jb_string(b, false, ap->promo->code);
		jb_key(b, "name");
		jb_string(b, false, ap->promo->name);
		if (ap->points > 0)
		{
			jb_key(b, "points");
			jb_points(b, false, ap->points, prec);
		}
		jb_key(b, "discount");
		jb_money(b, false, ap->discount);
		jb_key(b, "mechanic");
		jb_string(b, false, mechanic_name(ap->promo->mechanic));
		jb_end_object(b);
	}
	jb_end_array(b);

	jb_key(b, "suggestions");
	jb_begin_array(b);
	foreach(lc, r->suggestions)
	{
		Suggestion *s = lfirst(lc);

		jb_begin_object(b);
		jb_key(b, "qty");
		jb_int(b, false, s->qty);
		jb_key(b, "sku");
		jb_string(b, false, s->sku);
		jb_key(b, "text");
		jb_string(b, false, s->text);
		jb_key(b, "promotion");
		jb_string(b, false, s->promo->code);
		jb_end_object(b);
	}
	jb_end_array(b);

	if (operation_id)
	{
		jb_key(b, "operation_id");
		jb_string(b, false, operation_id);
	}
	jb_end_object(b);
}

/*
 * response_build makes the response of calculate and purchase as jsonb:
 * containers filled in place and numbers written in numeric's storage
 * form (jsonb_builder.c), one conversion to binary at the end.
 */
Jsonb *
response_build(CheckResult *r, const char *operation_id)
{
	JsonBuilder b = {0};

	build_response(&b, r, operation_id);
	return jb_finish(&b);
}

/*
 * response_build_text makes the same response as JSON text (the keys of
 * an object in the order build_response adds them; jsonb's spacing): for
 * calculate_json, whose clients only print it, no binary jsonb is built
 * and none is printed.
 */
text *
response_build_text(CheckResult *r, const char *operation_id)
{
	JsonBuilder b = {0};

	jb_begin_text(&b);
	build_response(&b, r, operation_id);
	return jb_finish_text(&b);
}
