/*-------------------------------------------------------------------------
 *
 * subscriptions.c
 *	  Subscriptions (SPEC section 6): validation of a plan's product
 *	  selector with the same parser promotions use, and the subscriptions
 *	  a purchase starts or extends (subscriptions_commit).  The engine
 *	  reads a customer's subscriptions with the customer (check_db.c).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "rules.h"
#include "spi_util.h"
#include "subscriptions.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(subscription_plan_validate);

/*
 * subscription_plan_validate is a BEFORE INSERT OR UPDATE row trigger on
 * loyalty.subscription_plan: its products must be a valid product selector
 * (LY006 naming the field otherwise).
 */
Datum
subscription_plan_validate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	char	   *code;
	bool		isnull;
	Datum		products;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "subscription_plan_validate must be a BEFORE ROW trigger");

	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)
		? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	code = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "code"));
	products = SPI_getbinval(tuple, desc, SPI_fnumber(desc, "products"), &isnull);
	if (code != NULL && !isnull)
		(void) selector_parse("subscription plan", code, "products",
							  DatumGetJsonbP(products));
	return PointerGetDatum(tuple);
}

/*
 * subscriptions_commit starts or extends, for an identified customer, the
 * subscription of every plan whose SKU the purchase bought: each whole unit
 * adds the plan's duration, from the end of a running subscription or from
 * the check's moment.
 */
void
subscriptions_commit(CheckResult *r, const char *operation_id)
{
	static SPIPlanPtr subscribe_plan = NULL;
	ConfigCache *cfg = r->cfg;

	if (!r->cust->identified || cfg->nplans == 0)
		return;
	for (int i = 0; i < r->nlines; i++)
	{
		for (int k = 0; k < cfg->nplans; k++)
		{
			const CachedSubscriptionPlan *plan = &cfg->plans[k];
			Oid			types[6] = {INT8OID, TEXTOID, TIMESTAMPTZOID, INTERVALOID, INT4OID, TEXTOID};
			Datum		values[6];
			int64		units = r->lines[i].qty / QTY_ONE;

			CHECK_FOR_INTERRUPTS();
			if (strcmp(r->lines[i].sku, plan->sku) != 0 || units < 1)
				continue;
			values[0] = Int64GetDatum(r->cust->id);
			values[1] = CStringGetTextDatum(plan->code);
			values[2] = TimestampTzGetDatum(r->at);
			values[3] = IntervalPGetDatum(&plan->duration);
			values[4] = Int32GetDatum((int32) Min(units, 1000));
			values[5] = CStringGetTextDatum(operation_id);
			spi_exec(saved_plan(&subscribe_plan,
								"INSERT INTO loyalty.subscription AS s"
								" (customer_id, plan, starts_at, ends_at, operation_id)"
								" VALUES ($1, $2, $3, $3 + $4 * $5, $6)"
								" ON CONFLICT (customer_id, plan) DO UPDATE"
								" SET starts_at = CASE WHEN s.ends_at > $3 THEN s.starts_at ELSE $3 END,"
								"     ends_at = greatest(s.ends_at, $3) + $4 * $5,"
								"     operation_id = $6",
								6, types),
					 values, NULL, false, 0);
		}
	}
}
