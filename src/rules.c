/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  Parsing and validation of the parts of promotion rules that several
 *	  mechanics share (SPEC sections 3 and 5): product selectors, steps and
 *	  discounts, validity, and schedules.  A mechanic's own rule is parsed in
 *	  its file under src/mechanics/; the promotion row as a whole (mechanic,
 *	  rule, schedule) is checked by promotion.c.  No SQL runs here.
 *
 * The parsers read the jsonb with the one JSON reader (json_reader.h) in
 * the rules' style (LY006 "invalid promotion "<code>"", decimals counted as
 * written), which keeps the JSON path of the value being read so that every
 * error names the field ("rule.steps[1].percent").  Each kind of value
 * (money, percent, count, selector, validity, time, date) is read by one
 * function, and each numeric range is defined once, in a JsonNumberKind
 * (the ones only one mechanic uses are in that mechanic's file).
 * See rules.h for the units and the decisions taken where the SPEC is
 * silent.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "json_reader.h"
#include "money.h"
#include "rules.h"

/* how rules are read and their errors worded (LY006) */
static const JsonReaderStyle RULES_STYLE = {
	.sqlstate = ERRCODE_LOYALTY_INVALID_CONFIGURATION,
	.errmsg = NULL,
	.null_is_absent = false,
	.not_object = NULL,
	.unknown_key = "is not a known field.",
	.max_key_bytes = 0,
	.not_string = "must be a string.",
	.empty_string = "must not be an empty string.",
	.not_finite = "must be a number.",
	.written_decimals = true,
	.decimals = "must have at most %d decimal places.",
};

/*
 * The kinds of number several mechanics' rules and the schedules hold
 * (json_reader.h: decimals, inclusive bounds scaled by 10^scale, the
 * sentence saying so), each range defined once.
 */
const JsonNumberKind RULE_PERCENT = {2, 1, 10000,
"must be greater than 0 and at most 100"};
const JsonNumberKind RULE_MONEY = {2, 0, RULE_MONEY_LIMIT - 1,
"must be at least 0 and less than 1000000000000"};
const JsonNumberKind RULE_MONEY_POSITIVE = {2, 1, RULE_MONEY_LIMIT - 1,
"must be greater than 0 and less than 1000000000000"};
const JsonNumberKind RULE_QUANTITY = {0, 1, RULE_MAX_COUNT,
"must be a whole number from 1 to 1000000"};
static const JsonNumberKind WEEKDAY = {0, 1, 7,
"must be a whole number from 1 (Monday) to 7 (Sunday)"};
static const JsonNumberKind DAY_OF_MONTH = {0, 1, 31,
"must be a whole number from 1 to 31"};

static const JsonChoice STEP_CHOICES[] = {
	{"percent", DISCOUNT_PERCENT, &RULE_PERCENT},
	{"amount", DISCOUNT_AMOUNT, &RULE_MONEY_POSITIVE},
	{NULL, 0, NULL}
};

#define REQUIRED	true
#define OPTIONAL	false

/* the keys each kind of object may have; NULL-terminated */
static const char *const SELECTOR_KEYS[] =
{"all", "categories", "brands", "skus", "tags", "exclude", NULL};
static const char *const STEP_KEYS[] = {"min_total", "percent", "amount", NULL};
static const char *const SCHEDULE_KEYS[] =
{"weekdays", "dates", "days_of_month", "hours", NULL};

/* ---------------------------------------------------------------------
 * The reader
 * ---------------------------------------------------------------------
 */

/*
 * rule_reader_init starts reading a rule, schedule or selector of the
 * "what" ("promotion", "subscription plan") called "code" at the JSON path
 * "root" ("rule", "schedule", "mechanic"): errors are LY006 "invalid <what>
 * "<code>"".
 */
void
rule_reader_init(JsonReader *ctx, const char *what, const char *code, const char *root)
{
	jr_init(ctx, &RULES_STYLE, NULL, root);
	/* formatted only for an error: a rule read costs no psprintf */
	ctx->errmsg = NULL;
	ctx->errmsg_fmt = "invalid %s \"%s\"";
	ctx->errmsg_arg1 = what;
	ctx->errmsg_arg2 = code;
}


/* ---------------------------------------------------------------------
 * Product selectors
 * ---------------------------------------------------------------------
 */

/* selector_all returns the selector {"all": true}. */
static ProductSelector *
selector_all(void)
{
	ProductSelector *sel = palloc0(sizeof(ProductSelector));

	sel->all = true;
	return sel;
}

/*
 * parse_selector reads a product selector (SPEC section 3) at the current
 * path: "all": true, or at least one non-empty list, optionally "exclude".
 */
static ProductSelector *
parse_selector(JsonReader *ctx, JsonbValue *v)
{
	JsonbContainer *obj = jr_object(ctx, v);
	ProductSelector *sel = palloc0(sizeof(ProductSelector));
	int			saved;
	JsonbValue *exclude;
	int			nitems;

	jr_check_keys(ctx, obj, "A product selector", SELECTOR_KEYS);
	sel->all = jr_bool_field(ctx, obj, "all", false);
	sel->categories.items = jr_string_list_field(ctx, obj, "categories", &sel->categories.count);
	sel->brands.items = jr_string_list_field(ctx, obj, "brands", &sel->brands.count);
	sel->skus.items = jr_string_list_field(ctx, obj, "skus", &sel->skus.count);
	sel->tags.items = jr_string_list_field(ctx, obj, "tags", &sel->tags.count);

	nitems = sel->categories.count + sel->brands.count +
		sel->skus.count + sel->tags.count;
	if (!sel->all && nitems == 0)
		jr_error(ctx,
					"Write {\"all\": true} to select every product.",
					"must have \"all\": true or a non-empty list of categories, brands, skus or tags.");
	if (sel->all && nitems > 0)
		jr_error(ctx,
					"Use \"exclude\" to leave products out of {\"all\": true}.",
					"cannot combine \"all\": true with a list of categories, brands, skus or tags.");

	exclude = jr_field(ctx, obj, "exclude", OPTIONAL, &saved);
	if (exclude != NULL)
	{
		sel->exclude = parse_selector(ctx, exclude);
		jr_pop(ctx, saved);
	}
	return sel;
}

/*
 * rule_selector_field reads obj.key as a product selector; when absent and
 * optional, the result is {"all": true}.
 */
ProductSelector *
rule_selector_field(JsonReader *ctx, JsonbContainer *obj, const char *key,
			   bool required)
{
	int			saved;
	JsonbValue *v = jr_field(ctx, obj, key, required, &saved);
	ProductSelector *sel;

	if (v == NULL)
		return selector_all();
	sel = parse_selector(ctx, v);
	jr_pop(ctx, saved);
	return sel;
}


/* ---------------------------------------------------------------------
 * Validity, steps, discounts
 * ---------------------------------------------------------------------
 */

/*
 * parse_interval parses a PostgreSQL interval literal without raising
 * errors (as interval_in does, PostgreSQL 15); false when it is not one.
 */
static bool
parse_interval(const char *str, Interval *result)
{
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	int			dterr;
	struct pg_itm_in itm;
	char	   *copy = pstrdup(str);

	dterr = ParseDateTime(copy, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf);
	if (dterr == 0)
		dterr = DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE,
							   &dtype, &itm);
	if (dterr == DTERR_BAD_FORMAT)
		dterr = DecodeISO8601Interval(copy, &dtype, &itm);
	pfree(copy);
	if (dterr != 0 || dtype != DTK_DELTA)
		return false;
	return itmin2interval(&itm, result) == 0;
}

/*
 * interval_text_ok tells whether s is "N unit" with N a whole number from
 * 1 to 100000 and unit day(s), week(s), month(s) or year(s): the intervals
 * a marketer writes in segment rules and campaign grants.
 */
bool
interval_text_ok(const char *s)
{
	const char *p = s;
	long		n = 0;
	int			digits = 0;

	while (*p >= '0' && *p <= '9' && digits < 7)
	{
		n = n * 10 + (*p - '0');
		p++;
		digits++;
	}
	if (digits == 0 || n < 1 || n > 100000 || *p != ' ')
		return false;
	p++;
	return strcmp(p, "day") == 0 || strcmp(p, "days") == 0 ||
		strcmp(p, "week") == 0 || strcmp(p, "weeks") == 0 ||
		strcmp(p, "month") == 0 || strcmp(p, "months") == 0 ||
		strcmp(p, "year") == 0 || strcmp(p, "years") == 0;
}

/* interval_is_positive tells whether iv has no negative part and is not 0. */
static bool
interval_is_positive(const Interval *iv)
{
	if (iv->month < 0 || iv->day < 0 || iv->time < 0)
		return false;
	return iv->month > 0 || iv->day > 0 || iv->time > 0;
}

/* has_letter tells whether s contains a letter (a unit, or ISO 8601's "P"). */
static bool
has_letter(const char *s)
{
	for (; *s; s++)
		if (isalpha((unsigned char) *s))
			return true;
	return false;
}

/*
 * rule_validity_field reads obj.key as "end_of_month" or a positive
 * interval with a unit ("30 days"); VALIDITY_DEFAULT when absent.
 */
Validity
rule_validity_field(JsonReader *ctx, JsonbContainer *obj, const char *key)
{
	int			saved;
	JsonbValue *v = jr_field(ctx, obj, key, OPTIONAL, &saved);
	Validity	result;
	char	   *s;

	memset(&result, 0, sizeof(result));
	result.kind = VALIDITY_DEFAULT;
	if (v == NULL)
		return result;

	s = jr_string(ctx, v);
	if (strcmp(s, "end_of_month") == 0)
		result.kind = VALIDITY_END_OF_MONTH;
	else if (has_letter(s) && parse_interval(s, &result.interval) &&
			 interval_is_positive(&result.interval))
		result.kind = VALIDITY_INTERVAL;
	else
		jr_error(ctx,
					"An interval needs a unit: \"30 days\", \"2 weeks\", \"1 month\".",
					"must be \"end_of_month\" or a positive interval such as \"30 days\".");
	jr_pop(ctx, saved);
	return result;
}

/* rule_discount makes a Discount from a jr_choice_field result. */
Discount
rule_discount(int tag, int64 value)
{
	Discount	d;

	d.kind = (DiscountKind) tag;
	d.percent = (tag == DISCOUNT_PERCENT) ? (int32) value : 0;
	d.amount = (tag == DISCOUNT_PERCENT) ? 0 : value;
	return d;
}

/* the shared keys, in the order rule_common_parse reads them */
static const char *const CONDITION_KEYS[] = {"min_qty", "min_items", NULL};

/*
 * rule_common_keys returns keys followed by the shared keys a mechanic with
 * flags "shared" takes: the conditions always, "max_discount" with
 * RULE_SHARED_CAP, "once" with RULE_SHARED_ONCE.
 */
const char *const *
rule_common_keys(const char *const *keys, int shared)
{
	const char **all;
	int			n = 0;
	int			i;

	while (keys[n] != NULL)
		n++;
	all = palloc(sizeof(char *) * (n + 5));
	for (i = 0; i < n; i++)
		all[i] = keys[i];
	if (shared & RULE_SHARED_CAP)
		all[n++] = "max_discount";
	for (i = 0; CONDITION_KEYS[i] != NULL; i++)
		all[n++] = CONDITION_KEYS[i];
	if (shared & RULE_SHARED_ONCE)
		all[n++] = "once";
	all[n] = NULL;
	return all;
}

/*
 * rule_common_parse reads the shared fields of a rule into *common, after
 * the mechanic's own (so the mechanic's errors come first): "max_discount"
 * (money > 0), "min_qty" (a whole number of units from 1), "min_items" (a
 * count from 1), "once" (a boolean).  Keys the mechanic does not take were
 * refused before, by the key check.
 */
void
rule_common_parse(JsonReader *ctx, JsonbContainer *obj, int shared,
				  RuleCommon *common)
{
	memset(common, 0, sizeof(RuleCommon));
	if (shared & RULE_SHARED_CAP)
		common->max_discount = jr_number_field(ctx, obj, "max_discount",
											   &RULE_MONEY_POSITIVE, JR_OPTIONAL, 0);
	/* whole units, kept in thousandths like a line's quantity */
	common->min_qty = jr_number_field(ctx, obj, "min_qty", &RULE_QUANTITY,
									  JR_OPTIONAL, 0) * QTY_ONE;
	common->min_items = (int32) jr_number_field(ctx, obj, "min_items",
												&RULE_QUANTITY, JR_OPTIONAL, 0);
	if (shared & RULE_SHARED_ONCE)
		common->once = jr_bool_field(ctx, obj, "once", false);
}

/* step_cmp orders steps by min_total ascending, for qsort. */
static int
step_cmp(const void *a, const void *b)
{
	int64		x = ((const RuleStep *) a)->min_total;
	int64		y = ((const RuleStep *) b)->min_total;

	return (x > y) - (x < y);
}

/* parse_step reads one step: {"min_total": T, "percent"|"amount": X}. */
static RuleStep
parse_step(JsonReader *ctx, JsonbValue *v)
{
	JsonbContainer *obj = jr_object(ctx, v);
	RuleStep	step;
	int64		value;
	int			tag;

	jr_check_keys(ctx, obj, "A step", STEP_KEYS);
	step.min_total = jr_number_field(ctx, obj, "min_total", &RULE_MONEY, REQUIRED, 0);
	tag = jr_choice_field(ctx, obj, STEP_CHOICES, &value);
	step.discount = rule_discount(tag, value);
	return step;
}

/*
 * rule_steps_field reads obj.key, a non-empty array of steps with distinct
 * min_total, and returns them sorted by min_total.
 */
StepList
rule_steps_field(JsonReader *ctx, JsonbContainer *obj, const char *key)
{
	int			saved;
	JsonbValue *v = jr_field(ctx, obj, key, REQUIRED, &saved);
	JsonbContainer *arr = jr_nonempty_array(ctx, v);
	StepList	list;
	int			i;

	list.count = JsonContainerSize(arr);
	list.steps = palloc(sizeof(RuleStep) * list.count);
	for (i = 0; i < list.count; i++)
	{
		int			saved_elem;
		JsonbValue *elem = jr_element(ctx, arr, i, &saved_elem);
		int			j;

		CHECK_FOR_INTERRUPTS();
		list.steps[i] = parse_step(ctx, elem);
		for (j = 0; j < i; j++)
			if (list.steps[j].min_total == list.steps[i].min_total)
			{
				char	   *steps_path = jr_path_upto(ctx, saved_elem);

				jr_push_key(ctx, "min_total");
				jr_error(ctx, "Each step needs its own min_total.",
							"has the same value as \"%s[%d].min_total\".",
							steps_path, j);
			}
		jr_pop(ctx, saved_elem);
	}
	qsort(list.steps, list.count, sizeof(RuleStep), step_cmp);
	jr_pop(ctx, saved);
	return list;
}


/* ---------------------------------------------------------------------
 * Selectors standing on their own
 * ---------------------------------------------------------------------
 */

/*
 * selector_parse reads a product selector standing on its own (a
 * subscription plan's products): errors name "what" and "code", and the
 * JSON path starts at "root".
 */
ProductSelector *
selector_parse(const char *what, const char *code, const char *root, Jsonb *jb)
{
	JsonReader	ctx;
	JsonbValue	v;
	ProductSelector *sel;

	rule_reader_init(&ctx, what, code, root);
	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	sel = parse_selector(&ctx, &v);
	jr_free(&ctx);
	return sel;
}


/* ---------------------------------------------------------------------
 * Schedules
 * ---------------------------------------------------------------------
 */

/* two_digits reads two ASCII digits at s; -1 when they are not. */
static int
two_digits(const char *s)
{
	if (!isdigit((unsigned char) s[0]) || !isdigit((unsigned char) s[1]))
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/*
 * parse_time reads "HH:MM" (00:00 .. 24:00) as minutes from midnight; -1
 * when malformed.
 */
static int
parse_time(const char *s)
{
	int			h,
				m;

	if (strlen(s) != 5 || s[2] != ':')
		return -1;
	h = two_digits(s);
	m = two_digits(s + 3);
	if (h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

/* time_value reads a JSON value at the current path as "HH:MM". */
static int
time_value(JsonReader *ctx, JsonbValue *v)
{
	int			minutes;

	if (v->type != jbvString)
		jr_error(ctx, NULL, "must be a time \"HH:MM\".");
	minutes = parse_time(pnstrdup(v->val.string.val, v->val.string.len));
	if (minutes < 0)
		jr_error(ctx, NULL,
					"must be a time \"HH:MM\" from \"00:00\" to \"24:00\".");
	return minutes;
}

/*
 * parse_window reads the array at the current path as one window
 * ["HH:MM", "HH:MM"], start before end.
 */
static HourWindow
parse_window(JsonReader *ctx, JsonbContainer *arr)
{
	HourWindow	w;
	int			saved;

	if (JsonContainerSize(arr) != 2)
		jr_error(ctx, NULL,
					"must be a window of two times, [\"HH:MM\", \"HH:MM\"].");
	w.from = (int16) time_value(ctx, jr_element(ctx, arr, 0, &saved));
	jr_pop(ctx, saved);
	w.to = (int16) time_value(ctx, jr_element(ctx, arr, 1, &saved));
	jr_pop(ctx, saved);
	if (w.from >= w.to)
		jr_error(ctx,
					"A window across midnight is written as two windows: [[\"22:00\", \"24:00\"], [\"00:00\", \"02:00\"]].",
					"must end after it starts.");
	return w;
}

/*
 * hours_field reads "hours": one window ["10:00", "14:00"] or a list of
 * windows [["08:00", "10:00"], ["18:00", "20:00"]].
 */
static void
hours_field(JsonReader *ctx, JsonbContainer *obj, Schedule *s)
{
	int			saved;
	JsonbValue *v = jr_field(ctx, obj, "hours", OPTIONAL, &saved);
	JsonbContainer *arr;
	JsonbValue *first;
	int			i;

	if (v == NULL)
		return;
	arr = jr_nonempty_array(ctx, v);
	first = getIthJsonbValueFromContainer(arr, 0);
	if (first->type == jbvString)
	{
		s->nhours = 1;
		s->hours = palloc(sizeof(HourWindow));
		s->hours[0] = parse_window(ctx, arr);
	}
	else
	{
		s->nhours = JsonContainerSize(arr);
		s->hours = palloc(sizeof(HourWindow) * s->nhours);
		for (i = 0; i < s->nhours; i++)
		{
			int			saved_elem;
			JsonbValue *elem = jr_element(ctx, arr, i, &saved_elem);

			CHECK_FOR_INTERRUPTS();
			if (elem->type != jbvBinary || !JsonContainerIsArray(elem->val.binary.data))
				jr_error(ctx, NULL,
							"must be a window of two times, [\"HH:MM\", \"HH:MM\"].");
			s->hours[i] = parse_window(ctx, elem->val.binary.data);
			jr_pop(ctx, saved_elem);
		}
	}
	jr_pop(ctx, saved);
}

/*
 * parse_date reads "YYYY-MM-DD" (years 1..9999) as a DateADT; false when
 * malformed or not a real date.
 */
static bool
parse_date(const char *s, DateADT *result)
{
	int			y,
				m,
				d;

	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	if (two_digits(s) < 0 || two_digits(s + 2) < 0)
		return false;
	y = two_digits(s) * 100 + two_digits(s + 2);
	m = two_digits(s + 5);
	d = two_digits(s + 8);
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > day_tab[isleap(y)][m - 1])
		return false;
	*result = date2j(y, m, d) - POSTGRES_EPOCH_JDATE;
	return true;
}

/* dates_field reads "dates", a non-empty array of "YYYY-MM-DD", sorted. */
static void
dates_field(JsonReader *ctx, JsonbContainer *obj, Schedule *s)
{
	int			saved;
	JsonbValue *v = jr_field(ctx, obj, "dates", OPTIONAL, &saved);
	JsonbContainer *arr;
	int			i;

	if (v == NULL)
		return;
	arr = jr_nonempty_array(ctx, v);
	s->ndates = JsonContainerSize(arr);
	s->dates = palloc(sizeof(DateADT) * s->ndates);
	for (i = 0; i < s->ndates; i++)
	{
		int			saved_elem;
		JsonbValue *elem = jr_element(ctx, arr, i, &saved_elem);

		CHECK_FOR_INTERRUPTS();
		if (elem->type != jbvString ||
			!parse_date(pnstrdup(elem->val.string.val, elem->val.string.len),
						&s->dates[i]))
			jr_error(ctx, NULL, "must be a date \"YYYY-MM-DD\".");
		jr_pop(ctx, saved_elem);
	}
	qsort(s->dates, s->ndates, sizeof(DateADT), dateadt_qsort_cmp);
	jr_pop(ctx, saved);
}

/*
 * bitmask_field reads obj.key, a non-empty array of whole numbers of the
 * given kind (at most 31), as a bitmask with bit (1 << value).
 */
static uint32
bitmask_field(JsonReader *ctx, JsonbContainer *obj, const char *key,
			  const JsonNumberKind *kind)
{
	int			saved;
	JsonbValue *v = jr_field(ctx, obj, key, OPTIONAL, &saved);
	JsonbContainer *arr;
	uint32		mask = 0;
	int			i;

	if (v == NULL)
		return 0;
	arr = jr_nonempty_array(ctx, v);
	for (i = 0; i < (int) JsonContainerSize(arr); i++)
	{
		int			saved_elem;
		JsonbValue *elem = jr_element(ctx, arr, i, &saved_elem);

		CHECK_FOR_INTERRUPTS();
		mask |= ((uint32) 1) << jr_number(ctx, elem, kind);
		jr_pop(ctx, saved_elem);
	}
	jr_pop(ctx, saved);
	return mask;
}

/*
 * schedule_parse parses and validates a promotion's schedule (SPEC section
 * 5): weekdays, dates, days_of_month and hours, combined with AND.  The
 * result is palloc'd in CurrentMemoryContext; problems raise LY006.
 */
Schedule *
schedule_parse(const char *code, Jsonb *schedule)
{
	JsonReader	ctx;
	JsonbContainer *obj;
	Schedule   *s = palloc0(sizeof(Schedule));

	rule_reader_init(&ctx, "promotion", code, "schedule");
	obj = jr_root_object(&ctx, schedule);
	jr_check_keys(&ctx, obj, "A schedule", SCHEDULE_KEYS);
	s->weekdays = (uint8) bitmask_field(&ctx, obj, "weekdays", &WEEKDAY);
	dates_field(&ctx, obj, s);
	s->days_of_month = bitmask_field(&ctx, obj, "days_of_month", &DAY_OF_MONTH);
	hours_field(&ctx, obj, s);
	jr_free(&ctx);
	return s;
}
