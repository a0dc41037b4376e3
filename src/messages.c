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
 * Nothing reaches ICU unchecked (issue 14, see icu_format.h): a template
 * longer than ICU_MAX_TEMPLATE_BYTES, nesting arguments deeper than
 * ICU_MAX_NESTING, or a locale ICU does not know is refused, 22023 from
 * format_message and LY006 from the trigger.  loyalty.render_message, with
 * which take_events renders an event's message, never fails on a template
 * or locale: it warns and tries the next template, so a bad row stored
 * before these checks existed cannot stop the outbox.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "icu_format.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(loyalty_format_message);
PG_FUNCTION_INFO_V1(loyalty_render_message);
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
	{"welcome_points", 5, {"points", "account", "available_date", "expires_date", "date"}},
	{"first_purchase_points", 5, {"points", "account", "available_date", "expires_date", "date"}},
	{"birthday_points", 5, {"points", "account", "available_date", "expires_date", "date"}},
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
 * message_args turns the JSON object args into named ICU arguments:
 * numbers as numbers, strings as text, anything else as its JSON text.
 * Returns how many it wrote into iargs (at most MAX_MESSAGE_ARGS).
 */
static int
message_args(Jsonb *args, IcuArg *iargs)
{
	int			nargs = 0;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

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
		else if (v.type == jbvBool)
			a->text = v.val.boolean ? "true" : "false";	/* 0.8 read it as a container and crashed */
		else if (v.type == jbvBinary)
			a->text = JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
		else
			elog(ERROR, "unexpected jsonb value type %d in message arguments", (int) v.type);
	}
	return nargs;
}

/*
 * bounded_cstring returns the text t as a C string, or NULL when it is
 * longer than max bytes (so that a huge argument is not copied to be
 * refused).
 */
static char *
bounded_cstring(text *t, int max)
{
	if (VARSIZE_ANY_EXHDR(t) > max)
		return NULL;
	return text_to_cstring(t);
}

/*
 * loyalty_format_message formats template for locale with the members of the
 * JSON object args.  A template too long, too deeply nested or malformed,
 * and a locale ICU does not know, are 22023.
 */
Datum
loyalty_format_message(PG_FUNCTION_ARGS)
{
	text	   *ttemplate = PG_GETARG_TEXT_PP(0);
	text	   *tlocale = PG_GETARG_TEXT_PP(1);
	char	   *template = bounded_cstring(ttemplate, ICU_MAX_TEMPLATE_BYTES);
	char	   *locale = bounded_cstring(tlocale, ICU_MAX_LOCALE_BYTES);
	IcuArg		iargs[MAX_MESSAGE_ARGS];
	int			nargs;
	char	   *result;
	char		errbuf[256];
	int			rc;
	text	   *out;

	if (template == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot format message"),
				 errdetail("The template is %zu bytes long, more than the %d allowed.",
						   VARSIZE_ANY_EXHDR(ttemplate), ICU_MAX_TEMPLATE_BYTES)));
	if (locale == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid locale for a message"),
				 errdetail("A locale is 1 to %d characters long.", ICU_MAX_LOCALE_BYTES)));

	nargs = message_args(PG_GETARG_JSONB_P(2), iargs);

	rc = icu_format_message(template, locale, nargs, iargs, &result,
							errbuf, sizeof(errbuf));
	if (rc == ICU_BAD_LOCALE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid locale for a message"),
				 errdetail("%s.", errbuf),
				 errhint("Use a locale ICU has data for, such as ru, en_US or de-DE.")));
	if (rc != ICU_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot format message"),
				 errdetail("%s.", errbuf)));

	out = cstring_to_text(result);
	free(result);
	PG_RETURN_TEXT_P(out);
}

/*
 * loyalty_render_message renders an event's message: the first of the
 * templates (best first; NULLs skipped) that formats for locale with the
 * members of args.  It never fails on a template or a locale: a locale ICU
 * does not know is replaced by en, and a template that cannot be used
 * (stored before 0.9 checked templates, say) is skipped, each with a
 * WARNING that names it; NULL when none formats.
 */
Datum
loyalty_render_message(PG_FUNCTION_ARGS)
{
	ArrayType  *templates = PG_GETARG_ARRAYTYPE_P(0);
	text	   *tlocale = PG_GETARG_TEXT_PP(1);
	char	   *locale = bounded_cstring(tlocale, ICU_MAX_LOCALE_BYTES);
	IcuArg		iargs[MAX_MESSAGE_ARGS];
	int			nargs;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char		errbuf[256];

	nargs = message_args(PG_GETARG_JSONB_P(2), iargs);

	if (locale == NULL || icu_check_locale(locale, errbuf, sizeof(errbuf)) != ICU_OK)
	{
		if (locale == NULL)
			snprintf(errbuf, sizeof(errbuf), "a locale is 1 to %d characters long",
					 ICU_MAX_LOCALE_BYTES);
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid locale for a message, using en"),
				 errdetail("%s.", errbuf)));
		locale = "en";
	}

	deconstruct_array(templates, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	for (int i = 0; i < nelems; i++)
	{
		text	   *ttemplate;
		char	   *template;
		char	   *result;
		text	   *out;

		CHECK_FOR_INTERRUPTS();
		if (nulls[i])
			continue;
		ttemplate = DatumGetTextPP(elems[i]);
		template = bounded_cstring(ttemplate, ICU_MAX_TEMPLATE_BYTES);
		if (template == NULL)
			snprintf(errbuf, sizeof(errbuf), "template is %zu bytes long, more than the %d allowed",
					 VARSIZE_ANY_EXHDR(ttemplate), ICU_MAX_TEMPLATE_BYTES);
		else if (icu_format_message(template, locale, nargs, iargs, &result,
									errbuf, sizeof(errbuf)) == ICU_OK)
		{
			out = cstring_to_text(result);
			free(result);
			PG_RETURN_TEXT_P(out);
		}
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message template %d of %d cannot be used", i + 1, nelems),
				 errdetail("%s.", errbuf),
				 errhint("Correct the template in loyalty.message_template.")));
	}
	PG_RETURN_NULL();
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
	int			rc;

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

	rc = icu_check_template(template, locale, ka->nargs, ka->args,
							errbuf, sizeof(errbuf));
	if (rc == ICU_BAD_LOCALE)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INVALID_CONFIGURATION),
				 errmsg("invalid message template for \"%s\"", kind),
				 errdetail("Field \"locale\": %s.", errbuf),
				 errhint("Use a locale ICU has data for, such as ru or en_US.")));
	if (rc != ICU_OK)
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
