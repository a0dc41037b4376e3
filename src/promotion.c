/*-------------------------------------------------------------------------
 *
 * promotion.c
 *	  The loyalty.promotion row: its BEFORE ROW trigger
 *	  loyalty.promotion_validate refuses a row whose mechanic, rule or
 *	  schedule is invalid (LY006, errdetail naming the JSON path), so that a
 *	  bad rule never reaches the configuration cache.
 *
 * The mechanic and its rule are parsed through the table of mechanics
 * (mechanics/mechanics.h), the schedule by rules.c; the parse result is
 * thrown away (the cache parses the enabled promotions again when it is
 * built).  This file sits above both: nothing includes it.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "mechanics/mechanics.h"
#include "rules.h"

PG_FUNCTION_INFO_V1(promotion_validate);

/* tuple_attr returns column "name" of the tuple, or NULL for SQL NULL. */
static Datum
tuple_attr(HeapTuple tuple, TupleDesc desc, const char *name, bool *isnull)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "column \"%s\" not found in loyalty.promotion", name);
	return heap_getattr(tuple, attnum, desc, isnull);
}

/* tuple_text returns a text column as a C string, or NULL. */
static char *
tuple_text(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = tuple_attr(tuple, desc, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* tuple_jsonb returns a jsonb column, or NULL. */
static Jsonb *
tuple_jsonb(HeapTuple tuple, TupleDesc desc, const char *name)
{
	bool		isnull;
	Datum		d = tuple_attr(tuple, desc, name, &isnull);

	return isnull ? NULL : DatumGetJsonbP(d);
}

/*
 * promotion_check validates a loyalty.promotion row: mechanic, rule and
 * schedule.  NULLs are left to the table's NOT NULL constraints.
 */
static void
promotion_check(HeapTuple tuple, TupleDesc desc)
{
	char	   *code = tuple_text(tuple, desc, "code");
	char	   *name;
	Jsonb	   *rule;
	Jsonb	   *schedule;

	if (code == NULL)
		return;
	name = tuple_text(tuple, desc, "mechanic");
	rule = tuple_jsonb(tuple, desc, "rule");
	if (name != NULL)
	{
		const MechanicRoutine *m = mechanic_parse(code, name);

		if (rule != NULL)
			(void) rule_parse(code, m, rule, NULL);
	}
	schedule = tuple_jsonb(tuple, desc, "schedule");
	if (schedule != NULL)
		(void) schedule_parse(code, schedule);
}

/*
 * promotion_validate is the BEFORE INSERT OR UPDATE row trigger on
 * loyalty.promotion: it refuses a row whose mechanic, rule or schedule is
 * invalid (LY006) and returns the row unchanged otherwise.
 */
Datum
promotion_validate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TriggerEvent event;
	HeapTuple	tuple;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "promotion_validate: not called by trigger manager");
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_BEFORE(event) || !TRIGGER_FIRED_FOR_ROW(event))
		elog(ERROR, "promotion_validate: must be fired BEFORE ... FOR EACH ROW");

	if (TRIGGER_FIRED_BY_INSERT(event))
		tuple = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(event))
		tuple = trigdata->tg_newtuple;
	else
		elog(ERROR, "promotion_validate: must be fired for INSERT or UPDATE");

	promotion_check(tuple, trigdata->tg_relation->rd_att);
	return PointerGetDatum(tuple);
}
