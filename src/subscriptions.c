/*-------------------------------------------------------------------------
 *
 * subscriptions.c
 *	  Subscription plans (SPEC section 6): validation of a plan's product
 *	  selector with the same parser promotions use.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "rules.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

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
