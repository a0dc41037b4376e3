/*-------------------------------------------------------------------------
 *
 * request.c
 *	  Strict parsing of calculate/purchase and refund requests (see
 *	  request.h), on the one JSON reader (json_reader.h) in the requests'
 *	  style: SQLSTATE 22023 "malformed request", a JSON null reads as an
 *	  absent field, numbers with at most so many decimals by value.
 *
 * Also the one timestamp rule of every request (request_timestamp_parse).
 * This file reads requests only: it runs no SQL and looks no name up.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include <ctype.h>

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

#include "json_reader.h"
#include "money.h"
#include "operation_id.h"
#include "request.h"

static const char *const CHECK_KEYS[] =
{"operation_id", "customer", "store", "channel", "at", "lines", "coupons",
"redeem", NULL};
static const char *const LINE_KEYS[] = {"sku", "qty", "price", NULL};
static const char *const REFUND_KEYS[] =
{"operation_id", "purchase", "customer", "at", "lines", NULL};
static const char *const REFUND_LINE_KEYS[] = {"index", "qty", NULL};

/* how requests are read and their errors worded */
static const JsonReaderStyle REQUEST_STYLE = {
	.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE,
	.errmsg = "malformed request",
	.null_is_absent = true,
	.not_object = "The request must be a JSON object.",
	.unknown_key = "is not a known field.",
	.max_key_bytes = REQUEST_MAX_NAME,
	.not_string = "must be a string.",
	.empty_string = "must not be empty.",
	.not_finite = "must be a finite number.",
	.written_decimals = false,
	.decimals = "must have at most %d decimals.",
	.decimal_strings = true,	/* a Python POS sends Decimals as strings */
};

/* the numbers of a request */
static const JsonNumberKind QTY_NUMBER = {QTY_SCALE, 1, REQUEST_MAX_QTY - 1,
"must be greater than 0 and less than 100000"};
static const JsonNumberKind PRICE_NUMBER = {MONEY_SCALE, 0, REQUEST_MAX_PRICE - 1,
"must be at least 0 and less than 1000000000"};
static const JsonNumberKind CUSTOMER_ID_NUMBER = {0, 1, PG_INT64_MAX - 1,
"must be a positive customer id"};
static const JsonNumberKind LINE_INDEX_NUMBER = {0, 0, REQUEST_MAX_LINES - 1,
"must be a line index from 0 to 999"};


/* ---------------------------------------------------------------------
 * Errors and fields
 * ---------------------------------------------------------------------
 */

/*
 * request_error raises 22023 "malformed request" with the errdetail
 * "Field "<path>" <sentence>".
 */
void
request_error(const char *path, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	jr_verror(&REQUEST_STYLE, REQUEST_STYLE.errmsg, path, NULL, fmt, args);
	va_end(args);
}

/*
 * operation_id_field reads obj.key as an operation id under the one rule of
 * every API (operation_id.h): never trimmed, so that no two ids a client
 * tells apart become one.  reference: the id of an existing operation.
 */
static char *
operation_id_field(JsonReader *r, JsonbContainer *obj, const char *key,
				   bool required, bool reference)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, required, &saved);
	const char *problem;

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		jr_error(r, NULL, "must be a string.");
	problem = operation_id_problem(v->val.string.val, v->val.string.len,
								   reference);
	if (problem != NULL)
		jr_error(r, NULL, "%s.", problem);
	jr_pop(r, saved);
	return pnstrdup(v->val.string.val, v->val.string.len);
}


/* ---------------------------------------------------------------------
 * Timestamps
 * ---------------------------------------------------------------------
 */

/*
 * request_timestamp_parse parses an ISO 8601 timestamp that carries an
 * explicit UTC offset ("2026-11-22T10:00:00+03:00", "...Z"): a moment
 * without one would depend on the session's time zone, and words
 * ("tomorrow", "MSK") on the session too.  The one timestamp rule of every
 * request (the check API's "at", adjust's "expires_at" and
 * "available_at"); it raises nothing, each API words its own error.
 *
 * The letters ISO 8601 allows ("T" between date and time, "Z" for UTC) are
 * rewritten as a space and "+00" before PostgreSQL's parser sees them: it
 * looks any word up in the session's time zone abbreviations first, and
 * loyalty.test_now's check hook parses with this function while a parallel
 * worker restores its settings, before timezone_abbreviations is restored
 * (the table is not valid then: a worker crashed there with SIGSEGV).  With
 * no letter left, the parse depends on no setting at all.
 */
TimestampProblem
request_timestamp_parse(const char *s, TimestampTz *result)
{
	char		iso[MAXDATELEN + 3];
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_tm tt;
	fsec_t		fsec;
	int			tz;
	int			dterr;
	const char *t;
	bool		offset = false;
	bool		zone_name = false;
	size_t		len = strlen(s);

	if (len < 11 || len > MAXDATELEN)
		return TIMESTAMP_MALFORMED;
	/* an offset: "Z" at the end, or a sign after the date part */
	if (s[len - 1] == 'Z' || s[len - 1] == 'z')
		offset = true;
	for (t = s + 10; *t; t++)
	{
		if (*t == '+' || *t == '-')
			offset = true;
		else if (isalpha((unsigned char) *t) && *t != 'T' && *t != 't' &&
				 !(t[1] == '\0' && (*t == 'Z' || *t == 'z')))
			zone_name = true;	/* "Europe/Moscow", "MSK": refused */
	}
	if (!offset || zone_name || !isdigit((unsigned char) s[0]))
		return TIMESTAMP_MALFORMED;

	/* "T" -> " ", a final "Z" -> "+00" (see above) */
	for (size_t i = 0; i < len; i++)
		iso[i] = (s[i] == 'T' || s[i] == 't') ? ' ' : s[i];
	if (iso[len - 1] == 'Z' || iso[len - 1] == 'z')
	{
		memcpy(iso + len - 1, "+00", 3);
		len += 2;
	}
	iso[len] = '\0';

	dterr = ParseDateTime(iso, workbuf, sizeof(workbuf), field, ftype,
						  MAXDATEFIELDS, &nf);
	if (dterr == 0)
		dterr = DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz);
	if (dterr != 0 || dtype != DTK_DATE)
		return TIMESTAMP_MALFORMED;
	if (tm2timestamp(&tt, fsec, &tz, result) != 0 ||
		tt.tm_year < 2000 || tt.tm_year > 2200)
		return TIMESTAMP_OUT_OF_RANGE;
	return TIMESTAMP_OK;
}

/*
 * request_parse_at parses a request's timestamp (request_timestamp_parse),
 * raising 22023 for the field at path when it is not one.
 */
TimestampTz
request_parse_at(const char *path, const char *s)
{
	TimestampTz result = 0;

	switch (request_timestamp_parse(s, &result))
	{
		case TIMESTAMP_OK:
			break;
		case TIMESTAMP_MALFORMED:
			request_error(path, "must be an ISO 8601 timestamp with a UTC offset, such as \"2026-11-22T10:00:00+03:00\".");
		case TIMESTAMP_OUT_OF_RANGE:
			request_error(path, "is out of range (years 2000 to 2200).");
	}
	return result;
}

/* at_field reads an optional "at". */
static bool
at_field(JsonReader *r, JsonbContainer *obj, TimestampTz *result)
{
	char	   *s = jr_name_field(r, obj, "at", JR_OPTIONAL, REQUEST_MAX_NAME);
	int			saved;

	if (s == NULL)
		return false;
	saved = jr_push_key(r, "at");
	*result = request_parse_at(jr_path(r), s);
	jr_pop(r, saved);
	return true;
}

/*
 * array_field returns obj.key as an array container of at most max items
 * (NULL when absent).
 */
static JsonbContainer *
array_field(JsonReader *r, JsonbContainer *obj, const char *key,
			bool required, int max, const char *items)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, required, &saved);
	JsonbContainer *arr;

	if (v == NULL)
		return NULL;
	arr = jr_array(r, v);
	if (JsonContainerSize(arr) > (uint32) max)
		jr_error(r, NULL, "must have at most %d %s.", max, items);
	jr_pop(r, saved);
	return arr;
}


/* ---------------------------------------------------------------------
 * Check requests
 * ---------------------------------------------------------------------
 */

/*
 * parse_customer reads "customer": a string, a number or null (into the
 * fields of a check or a refund request).
 */
static void
parse_customer(JsonReader *r, JsonbContainer *obj, CustomerRefKind *kind,
			   int64 *id, char **text)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, "customer", JR_OPTIONAL, &saved);

	*kind = CUSTOMER_NONE;
	if (v == NULL)
		return;
	if (v->type == jbvString)
	{
		*kind = CUSTOMER_TEXT;
		*text = jr_name(r, v, REQUEST_MAX_NAME);
	}
	else if (v->type == jbvNumeric)
	{
		*kind = CUSTOMER_ID;
		*id = jr_number(r, v, &CUSTOMER_ID_NUMBER);
	}
	else
		jr_error(r, NULL, "must be a string (phone or card number), a number (customer id) or null.");
	jr_pop(r, saved);
}

/* parse_line reads lines[i]. */
static void
parse_line(JsonReader *r, JsonbValue *v, RequestLine *line)
{
	JsonbContainer *obj = jr_object(r, v);

	jr_check_keys(r, obj, "A check line", LINE_KEYS);
	line->sku = jr_name_field(r, obj, "sku", JR_REQUIRED, REQUEST_MAX_NAME);
	line->qty = jr_number_field(r, obj, "qty", &QTY_NUMBER, JR_REQUIRED, 0);
	line->price = jr_number_field(r, obj, "price", &PRICE_NUMBER, JR_OPTIONAL, -1);
}

/* parse_redeem reads "redeem": "max", a number of points, or null. */
static void
parse_redeem(JsonReader *r, JsonbContainer *obj, CheckRequest *req,
			 int points_precision)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, "redeem", JR_OPTIONAL, &saved);

	req->redeem = REDEEM_NONE;
	if (v == NULL)
		return;
	if (v->type == jbvString && !jr_is_decimal_string(r, v))
	{
		if (v->val.string.len != 3 || memcmp(v->val.string.val, "max", 3) != 0)
			jr_error(r, NULL, "must be \"max\", a number of points or null.");
		req->redeem = REDEEM_MAX;
	}
	else if (v->type == jbvNumeric || v->type == jbvString)
	{
		JsonNumberKind points = {points_precision, 0,
			INT64CONST(1000000000000) - 1,
		"must be at least 0 and less than 1000000000000"};
		int64		pts = jr_number(r, v, &points);

		if (points_precision == 0)
			pts *= 100;
		req->redeem_points = pts;
		req->redeem = pts > 0 ? REDEEM_POINTS : REDEEM_NONE;
	}
	else
		jr_error(r, NULL, "must be \"max\", a number of points or null.");
	jr_pop(r, saved);
}

/*
 * request_parse_check parses a calculate or purchase request (see
 * request.h).
 */
CheckRequest *
request_parse_check(Jsonb *jb, bool need_operation_id, int points_precision)
{
	CheckRequest *req = palloc0(sizeof(CheckRequest));
	JsonReader	r;
	JsonbContainer *obj;
	JsonbContainer *arr;
	int			i;

	jr_init(&r, &REQUEST_STYLE, NULL, "");
	obj = jr_root_object(&r, jb);
	req->raw = jb;
	jr_check_keys(&r, obj, "A check request", CHECK_KEYS);
	req->operation_id = operation_id_field(&r, obj, "operation_id",
										   need_operation_id, false);
	parse_customer(&r, obj, &req->customer_kind, &req->customer_id,
				   &req->customer_text);
	req->store = jr_name_field(&r, obj, "store", JR_OPTIONAL, REQUEST_MAX_NAME);
	req->channel = jr_name_field(&r, obj, "channel", JR_OPTIONAL, REQUEST_MAX_NAME);
	if (req->channel != NULL && strcmp(req->channel, "pos") != 0 &&
		strcmp(req->channel, "web") != 0 && strcmp(req->channel, "app") != 0)
		request_error("channel", "must be one of \"pos\", \"web\", \"app\".");
	req->has_at = at_field(&r, obj, &req->at);

	arr = array_field(&r, obj, "lines", JR_REQUIRED, REQUEST_MAX_LINES, "lines");
	req->nlines = (int) JsonContainerSize(arr);
	if (req->nlines == 0)
		request_error("lines", "must have at least one line.");
	req->lines = palloc0(sizeof(RequestLine) * req->nlines);
	jr_push_key(&r, "lines");
	for (i = 0; i < req->nlines; i++)
	{
		int			saved;
		JsonbValue *v = jr_element(&r, arr, i, &saved);

		CHECK_FOR_INTERRUPTS();
		parse_line(&r, v, &req->lines[i]);
		jr_pop(&r, saved);
	}
	jr_pop(&r, 0);

	arr = array_field(&r, obj, "coupons", JR_OPTIONAL, REQUEST_MAX_COUPONS, "coupons");
	if (arr != NULL)
	{
		req->ncoupons = (int) JsonContainerSize(arr);
		req->coupons = palloc0(sizeof(char *) * Max(req->ncoupons, 1));
		jr_push_key(&r, "coupons");
		for (i = 0; i < req->ncoupons; i++)
		{
			int			saved;
			JsonbValue *v = jr_element(&r, arr, i, &saved);

			req->coupons[i] = jr_name(&r, v, REQUEST_MAX_NAME);
			jr_pop(&r, saved);
		}
		jr_pop(&r, 0);
	}
	parse_redeem(&r, obj, req, points_precision);
	return req;
}


/* ---------------------------------------------------------------------
 * Refund requests
 * ---------------------------------------------------------------------
 */

/*
 * request_parse_refund parses {"operation_id", "purchase", "customer"?,
 * "at"?, "lines"?: [{"index", "qty"}]}.  Two entries for one index are
 * refused.
 */
RefundRequest *
request_parse_refund(Jsonb *jb)
{
	RefundRequest *req = palloc0(sizeof(RefundRequest));
	JsonReader	r;
	JsonbContainer *obj;
	JsonbContainer *arr;
	int			i,
				j;

	jr_init(&r, &REQUEST_STYLE, NULL, "");
	obj = jr_root_object(&r, jb);
	req->raw = jb;
	jr_check_keys(&r, obj, "A refund request", REFUND_KEYS);
	req->operation_id = operation_id_field(&r, obj, "operation_id", JR_REQUIRED, false);
	req->purchase = operation_id_field(&r, obj, "purchase", JR_REQUIRED, true);
	parse_customer(&r, obj, &req->customer_kind, &req->customer_id,
				   &req->customer_text);
	req->has_at = at_field(&r, obj, &req->at);
	arr = array_field(&r, obj, "lines", JR_OPTIONAL, REQUEST_MAX_LINES, "lines");
	req->all = (arr == NULL);
	if (arr == NULL)
		return req;
	req->nlines = (int) JsonContainerSize(arr);
	if (req->nlines == 0)
		request_error("lines", "must have at least one line (leave it out to refund everything).");
	req->lines = palloc0(sizeof(RefundLineRequest) * req->nlines);
	jr_push_key(&r, "lines");
	for (i = 0; i < req->nlines; i++)
	{
		int			saved;
		JsonbValue *v = jr_element(&r, arr, i, &saved);
		JsonbContainer *line;

		CHECK_FOR_INTERRUPTS();
		line = jr_object(&r, v);
		jr_check_keys(&r, line, "A refund line", REFUND_LINE_KEYS);
		req->lines[i].index = (int) jr_number_field(&r, line, "index", &LINE_INDEX_NUMBER,
													JR_REQUIRED, 0);
		req->lines[i].qty = jr_number_field(&r, line, "qty", &QTY_NUMBER, JR_REQUIRED, 0);
		for (j = 0; j < i; j++)
			if (req->lines[j].index == req->lines[i].index)
				jr_error(&r, NULL, "repeats line index %d.", req->lines[i].index);
		jr_pop(&r, saved);
	}
	return req;
}
