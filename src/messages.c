/*-------------------------------------------------------------------------
 *
 * messages.c
 *	  Customer messages: ICU MessageFormat templates per event kind and
 *	  locale (SPEC section 11).
 *
 * loyalty.format_message(template, locale, args) formats a template with
 * the named arguments of a JSON object (numbers stay numbers, so plural
 * rules apply: 1 балл, 2 балла, 5 баллов, 21 балл).  The trigger
 * loyalty.message_template_validate() refuses a template ICU cannot parse or
 * one naming an argument its event kind does not provide (LY006).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "icu_format.h"

#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(loyalty_format_message);
PG_FUNCTION_INFO_V1(message_template_validate);

#define MAX_MESSAGE_ARGS	16

/* The arguments each event kind provides to its template. */
typedef struct EventKindArgs
{
	const char *kind;
	int			nargs;
	const char *args[6];
} EventKindArgs;

static const EventKindArgs event_kind_args[] = {
	{"points_earned", 4, {"points", "account", "available_date", "expires_date"}},
	{"points_available", 2, {"points", "account"}},
	{"points_expiring", 3, {"points", "account", "date"}},
	{"points_expired", 2, {"points", "account"}},
	{"tier_changed", 2, {"tier", "old_tier"}},
	{"coupon_issued", 5, {"code", "kind", "percent", "value", "date"}},
};

/*
 * kind_args returns the arguments of an event kind, or NULL for an unknown
 * kind.
 */
static const EventKindArgs *
kind_args(const char *kind)
{
	for (int i = 0; i < lengthof(event_kind_args); i++)
		if (strcmp(event_kind_args[i].kind, kind) == 0)
			return &event_kind_args[i];
	return NULL;
}

/*
 * loyalty_format_message formats template for locale with the members of the
 * JSON object args: numbers as numbers, strings as text, anything else as
 * its JSON text.  A malformed template is 22023.
 */
Datum
loyalty_format_message(PG_FUNCTION_ARGS)
{
	char	   *template = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *locale = text_to_cstring(PG_GETARG_TEXT_PP(1));
	Jsonb	   *args = PG_GETARG_JSONB_P(2);
	IcuArg		iargs[MAX_MESSAGE_ARGS];
	int			nargs = 0;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *result;
	char		errbuf[256];
	text	   *out;

	if (!JB_ROOT_IS_OBJECT(args))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message arguments must be a JSON object")));

	it = JsonbIteratorInit(&args->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		IcuArg	   *a;

		CHECK_FOR_INTERRUPTS();
		if (tok != WJB_KEY)
			continue;
		if (nargs == MAX_MESSAGE_ARGS)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too many message arguments"),
					 errdetail("At most %d arguments are supported.", MAX_MESSAGE_ARGS)));
		a = &iargs[nargs++];
		a->name = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		a->is_number = (v.type == jbvNumeric);
		a->number = 0;
		a->text = NULL;
		if (v.type == jbvNumeric)
			a->number = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
														   NumericGetDatum(v.val.numeric)));
		else if (v.type == jbvString)
			a->text = pnstrdup(v.val.string.val, v.val.string.len);
		else if (v.type == jbvNull)
			a->text = "";
		else
			a->text = JsonbToCString(NULL, (JsonbContainer *) v.val.binary.data,
									 v.val.binary.len);
	}

	if (icu_format_message(template, locale, nargs, iargs, &result,
						   errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot format message"),
				 errdetail("%s.", errbuf)));

	out = cstring_to_text(result);
	free(result);
	PG_RETURN_TEXT_P(out);
}

/*
 * message_template_validate is a BEFORE INSERT OR UPDATE row trigger on
 * loyalty.message_template: the kind must be an event kind, and ICU must
 * parse the template with only the arguments that kind provides.
 */
Datum
message_template_validate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple	tuple;
	TupleDesc	desc;
	char	   *kind;
	char	   *locale;
	char	   *template;
	const EventKindArgs *ka;
	char		errbuf[256];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "message_template_validate must be a BEFORE ROW trigger");

	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event)
		? trigdata->tg_newtuple : trigdata->tg_trigtuple;
	desc = RelationGetDescr(trigdata->tg_relation);
	kind = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "kind"));
	locale = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "locale"));
	template = SPI_getvalue(tuple, desc, SPI_fnumber(desc, "template"));
	if (kind == NULL || locale == NULL || template == NULL)
		return PointerGetDatum(tuple);	/* NOT NULL constraints report it */

	ka = kind_args(kind);
	if (ka == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INVALID_CONFIGURATION),
				 errmsg("invalid message template for \"%s\"", kind),
				 errdetail("Field \"kind\" must be an event kind."),
				 errhint("Event kinds are points_earned, points_available, points_expiring, "
						 "points_expired, tier_changed and coupon_issued.")));

	if (icu_check_template(template, locale, ka->nargs, ka->args,
						   errbuf, sizeof(errbuf)) != 0)
	{
		StringInfoData known;

		initStringInfo(&known);
		for (int i = 0; i < ka->nargs; i++)
			appendStringInfo(&known, "%s{%s}", i > 0 ? ", " : "", ka->args[i]);
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INVALID_CONFIGURATION),
				 errmsg("invalid message template for \"%s\" in locale \"%s\"", kind, locale),
				 errdetail("Field \"template\": %s.", errbuf),
				 errhint("Templates of %s may use %s.", kind, known.data)));
	}
	return PointerGetDatum(tuple);
}
