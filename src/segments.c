/*-------------------------------------------------------------------------
 *
 * segments.c
 *	  Rule segments (SPEC section 10): loyalty.segment_validate, the BEFORE
 *	  ROW trigger that refuses a malformed segment rule on write (LY006, the
 *	  errdetail naming the JSON path, the hint listing the known keys).
 *
 * A rule object is the AND of its keys:
 *	  {"rfm": [SEGMENT, ...]}, {"tiers": [TIER, ...]},
 *	  {"inactive_for": INTERVAL}, {"active_within": INTERVAL},
 *	  {"bought": SEL, "not_bought": SEL, "within": INTERVAL},
 *	  {"purchases": {"min": N, "max": N, "within": INTERVAL}},
 *	  {"spend": {"min": MONEY, "max": MONEY, "within": INTERVAL}},
 *	  {"used_promotion": CODE}, {"not_used_promotion": CODE},
 *	  {"any_of": [rule, ...]}, {"not": rule}.
 * An INTERVAL is "N day(s)|week(s)|month(s)|year(s)" with N >= 1.  Members
 * are computed in SQL (loyalty.segment_condition, loyalty.refresh_segments);
 * this file only reads.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "json_reader.h"
#include "loyalty.h"
#include "rules.h"

PG_FUNCTION_INFO_V1(segment_validate);

/* how segment rules are read and their errors worded (LY006) */
static const JsonReaderStyle SEGMENT_STYLE = {
	.sqlstate = ERRCODE_LOYALTY_INVALID_CONFIGURATION,
	.errmsg = NULL,
	.null_is_absent = true,
	.not_object = NULL,
	.unknown_key = "is not a known field.",
	.max_key_bytes = 64,
	.not_string = "must be a string.",
	.empty_string = "must not be an empty string.",
	.not_finite = "must be a number.",
	.written_decimals = true,
	.decimals = "must have at most %d decimal places.",
};

static const JsonNumberKind COUNT = {0, 0, 1000000000,
"must be a whole number from 0 to 1000000000"};
static const JsonNumberKind MONEY = {2, 0, INT64CONST(99999999999999),
"must be at least 0 and less than 1000000000000"};

static const char *const RULE_KEYS[] =
{"rfm", "tiers", "inactive_for", "active_within", "bought", "not_bought",
"within", "purchases", "spend", "used_promotion", "not_used_promotion",
"any_of", "not", NULL};
static const char *const RANGE_KEYS[] = {"min", "max", "within", NULL};

/* nesting deeper than this is refused (any_of / not) */
#define SEGMENT_MAX_DEPTH 16

static void parse_rule(JsonReader *r, const char *code, JsonbValue *v, int depth);

/*
 * parse_interval checks that v is "N unit" with N a whole number from 1 to
 * 100000 and unit day(s), week(s), month(s) or year(s).
 */
static void
parse_interval(JsonReader *r, JsonbValue *v)
{
	char	   *s = jr_string(r, v);

	if (!interval_text_ok(s))
		jr_error(r, "Write an interval such as \"90 days\", \"2 weeks\", \"6 months\" or \"1 year\".",
				 "must be a positive interval of days, weeks, months or years.");
}

/* interval_field checks obj.key (optional) with parse_interval. */
static void
interval_field(JsonReader *r, JsonbContainer *obj, const char *key)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, JR_OPTIONAL, &saved);

	if (v == NULL)
		return;
	parse_interval(r, v);
	jr_pop(r, saved);
}

/* names_field checks obj.key (optional): a non-empty array of names. */
static void
names_field(JsonReader *r, JsonbContainer *obj, const char *key)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, JR_OPTIONAL, &saved);
	JsonbContainer *arr;
	int			n,
				i;

	if (v == NULL)
		return;
	arr = jr_nonempty_array(r, v);
	n = JsonContainerSize(arr);
	for (i = 0; i < n; i++)
	{
		int			esaved;
		JsonbValue *e = jr_element(r, arr, i, &esaved);

		(void) jr_name(r, e, 200);
		jr_pop(r, esaved);
	}
	jr_pop(r, saved);
}

/*
 * range_field checks obj.key (optional): {"min", "max", "within"} with
 * min <= max, of the number kind given.
 */
static void
range_field(JsonReader *r, JsonbContainer *obj, const char *key,
			const JsonNumberKind *kind, const char *what)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, JR_OPTIONAL, &saved);
	JsonbContainer *o;
	int64		min,
				max;

	if (v == NULL)
		return;
	o = jr_object(r, v);
	jr_check_keys(r, o, what, RANGE_KEYS);
	min = jr_number_field(r, o, "min", kind, JR_OPTIONAL, -1);
	max = jr_number_field(r, o, "max", kind, JR_OPTIONAL, -1);
	if (min < 0 && max < 0)
		jr_error(r, "Give \"min\", \"max\" or both.", "must have \"min\" or \"max\".");
	if (min >= 0 && max >= 0 && min > max)
	{
		int			m = jr_push_key(r, "max");

		jr_error(r, NULL, "must not be less than \"min\".");
		jr_pop(r, m);
	}
	interval_field(r, o, "within");
	jr_pop(r, saved);
}

/* selector_field checks obj.key (optional), a product selector (SEL). */
static void
selector_field(JsonReader *r, const char *code, JsonbContainer *obj, const char *key)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, JR_OPTIONAL, &saved);

	if (v == NULL)
		return;
	(void) jr_object(r, v);
	(void) selector_parse("segment", code, jr_path(r), JsonbValueToJsonb(v));
	jr_pop(r, saved);
}

/*
 * parse_rule checks one rule object at the reader's path: its keys, each
 * key's value, and the rules nested in any_of and not.
 */
static void
parse_rule(JsonReader *r, const char *code, JsonbValue *v, int depth)
{
	JsonbContainer *obj;
	int			saved;
	JsonbValue *x;

	check_stack_depth();
	CHECK_FOR_INTERRUPTS();
	if (depth > SEGMENT_MAX_DEPTH)
		jr_error(r, NULL, "nests rules deeper than %d levels.", SEGMENT_MAX_DEPTH);
	obj = jr_object(r, v);
	jr_check_keys(r, obj, "A segment rule", RULE_KEYS);
	names_field(r, obj, "rfm");
	names_field(r, obj, "tiers");
	interval_field(r, obj, "inactive_for");
	interval_field(r, obj, "active_within");
	selector_field(r, code, obj, "bought");
	selector_field(r, code, obj, "not_bought");
	interval_field(r, obj, "within");
	if (jr_get(r, obj, "within") != NULL &&
		jr_get(r, obj, "bought") == NULL && jr_get(r, obj, "not_bought") == NULL)
	{
		int			m = jr_push_key(r, "within");

		jr_error(r, "\"within\" limits \"bought\" and \"not_bought\"; purchases and spend take their own.",
				 "needs \"bought\" or \"not_bought\".");
		jr_pop(r, m);
	}
	range_field(r, obj, "purchases", &COUNT, "\"purchases\"");
	range_field(r, obj, "spend", &MONEY, "\"spend\"");
	x = jr_field(r, obj, "used_promotion", JR_OPTIONAL, &saved);
	if (x != NULL)
	{
		(void) jr_name(r, x, 200);
		jr_pop(r, saved);
	}
	x = jr_field(r, obj, "not_used_promotion", JR_OPTIONAL, &saved);
	if (x != NULL)
	{
		(void) jr_name(r, x, 200);
		jr_pop(r, saved);
	}
	x = jr_field(r, obj, "any_of", JR_OPTIONAL, &saved);
	if (x != NULL)
	{
		JsonbContainer *arr = jr_nonempty_array(r, x);
		int			n = JsonContainerSize(arr);
		int			i;

		for (i = 0; i < n; i++)
		{
			int			esaved;
			JsonbValue *e = jr_element(r, arr, i, &esaved);

			parse_rule(r, code, e, depth + 1);
			jr_pop(r, esaved);
		}
		jr_pop(r, saved);
	}
	x = jr_field(r, obj, "not", JR_OPTIONAL, &saved);
	if (x != NULL)
	{
		parse_rule(r, code, x, depth + 1);
		jr_pop(r, saved);
	}
}

/* column_number returns the attribute number of a column of loyalty.segment. */
static int
column_number(TupleDesc desc, const char *name)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		elog(ERROR, "loyalty.segment has no column \"%s\"", name);
	return attnum;
}

/*
 * segment_validate is the BEFORE INSERT OR UPDATE row trigger on
 * loyalty.segment: it refuses a row whose rule is malformed (LY006) and
 * returns the row unchanged otherwise.
 */
Datum
segment_validate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	bool		isnull;
	Datum		d;
	char	   *code;
	Jsonb	   *rule;
	JsonReader	r;
	JsonbValue	v;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "segment_validate: not called by trigger manager");
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "segment_validate: must be fired BEFORE ... FOR EACH ROW");
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		tuple = trigdata->tg_trigtuple;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		tuple = trigdata->tg_newtuple;
	else
		elog(ERROR, "segment_validate: must be fired for INSERT or UPDATE");

	desc = trigdata->tg_relation->rd_att;
	d = heap_getattr(tuple, column_number(desc, "code"), desc, &isnull);
	code = isnull ? "" : TextDatumGetCString(d);
	d = heap_getattr(tuple, column_number(desc, "rule"), desc, &isnull);
	if (isnull)
		return PointerGetDatum(tuple);	/* NOT NULL refuses it */
	rule = DatumGetJsonbP(d);

	jr_init(&r, &SEGMENT_STYLE, psprintf("invalid segment \"%s\"", code), "rule");
	v.type = jbvBinary;
	v.val.binary.data = &rule->root;
	v.val.binary.len = VARSIZE(rule) - VARHDRSZ;
	parse_rule(&r, code, &v, 0);
	jr_free(&r);
	return PointerGetDatum(tuple);
}
