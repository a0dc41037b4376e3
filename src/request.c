/*-------------------------------------------------------------------------
 *
 * request.c
 *	  Strict parsing of calculate/purchase and refund requests (see
 *	  request.h).
 *
 * The parser walks the jsonb with the container API, keeping the JSON path
 * of the value being read, so every error names the field.  Numbers are
 * read exactly (numeric_to_scaled), never through floating point.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/numeric.h"

#include "money.h"
#include "json_path.h"
#include "operation_id.h"
#include "request.h"

#define REQUIRED	true
#define OPTIONAL	false

static const char *const CHECK_KEYS[] =
{"operation_id", "customer", "store", "channel", "at", "lines", "coupons",
"redeem", NULL};
static const char *const LINE_KEYS[] = {"sku", "qty", "price", NULL};
static const char *const REFUND_KEYS[] =
{"operation_id", "purchase", "at", "lines", NULL};
static const char *const REFUND_LINE_KEYS[] = {"index", "qty", NULL};

/* The JSON path being read. */
typedef struct Path
{
	StringInfoData buf;
} Path;


/* ---------------------------------------------------------------------
 * Errors and paths
 * ---------------------------------------------------------------------
 */

/*
 * request_error raises 22023 "malformed request" with the errdetail
 * "Field "<path>" <sentence>".
 */
void
request_error(const char *path, const char *fmt,...)
{
	StringInfoData sentence;

	initStringInfo(&sentence);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&sentence, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&sentence, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed request"),
			 errdetail("Field \"%s\" %s", path, sentence.data)));
}

/* key_list formats the known keys as "a, b, c". */
static char *
key_list(const char *const *keys)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; keys[i] != NULL; i++)
		appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", keys[i]);
	return buf.data;
}

/*
 * check_keys errors on the first key of obj not in keys; "what" names the
 * object in the hint.
 */
static void
check_keys(Path *p, JsonbContainer *obj, const char *const *keys,
		   const char *what)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbIteratorToken tok;
	JsonbValue	v;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (tok != WJB_KEY)
			continue;
		for (i = 0; keys[i] != NULL; i++)
			if (strlen(keys[i]) == (size_t) v.val.string.len &&
				memcmp(keys[i], v.val.string.val, v.val.string.len) == 0)
				break;
		if (keys[i] == NULL)
		{
			char	   *key = pnstrdup(v.val.string.val,
									   Min(v.val.string.len, REQUEST_MAX_NAME));

			json_path_push_key(&p->buf, key);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("malformed request"),
					 errdetail("Field \"%s\" is not a known field.", p->buf.data),
					 errhint("%s takes the fields: %s.", what, key_list(keys))));
		}
	}
}


/* ---------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------
 */

/* get_field returns obj.key or NULL when absent or JSON null. */
static JsonbValue *
get_field(JsonbContainer *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);

	if (v != NULL && v->type == jbvNull)
		return NULL;
	return v;
}

/* is_object tells whether v holds a JSON object. */
static bool
is_object(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

/* is_array tells whether v holds a JSON array. */
static bool
is_array(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/*
 * read_string reads a non-empty string of at most REQUEST_MAX_NAME
 * characters, trimmed of surrounding blanks.
 */
static char *
read_string(Path *p, JsonbValue *v)
{
	char	   *s;
	char	   *end;

	if (v->type != jbvString)
		request_error(p->buf.data, "must be a string.");
	if (v->val.string.len > REQUEST_MAX_NAME * 4)
		request_error(p->buf.data, "must have at most %d characters.", REQUEST_MAX_NAME);
	s = pnstrdup(v->val.string.val, v->val.string.len);
	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*s == '\0')
		request_error(p->buf.data, "must not be empty.");
	if (pg_mbstrlen(s) > REQUEST_MAX_NAME)
		request_error(p->buf.data, "must have at most %d characters.", REQUEST_MAX_NAME);
	if (strchr(s, '\n') || strchr(s, '\r'))
		request_error(p->buf.data, "must not contain line breaks.");
	return s;
}

/* string_field reads obj.key as a string (NULL when absent and optional). */
static char *
string_field(Path *p, JsonbContainer *obj, const char *key, bool required)
{
	JsonbValue *v = get_field(obj, key);
	int			saved;
	char	   *s;

	saved = json_path_push_key(&p->buf, key);
	if (v == NULL)
	{
		if (required)
			request_error(p->buf.data, "is required.");
		json_path_pop(&p->buf, saved);
		return NULL;
	}
	s = read_string(p, v);
	json_path_pop(&p->buf, saved);
	return s;
}

/*
 * operation_id_field reads obj.key as an operation id under the one rule of
 * every API (operation_id.h): never trimmed, so that no two ids a client
 * tells apart become one.  reference: the id of an existing operation.
 */
static char *
operation_id_field(Path *p, JsonbContainer *obj, const char *key,
				   bool required, bool reference)
{
	JsonbValue *v = get_field(obj, key);
	int			saved = json_path_push_key(&p->buf, key);
	const char *problem;
	char	   *s = NULL;

	if (v == NULL)
	{
		if (required)
			request_error(p->buf.data, "is required.");
	}
	else
	{
		if (v->type != jbvString)
			request_error(p->buf.data, "must be a string.");
		problem = operation_id_problem(v->val.string.val, v->val.string.len,
									   reference);
		if (problem != NULL)
			request_error(p->buf.data, "%s.", problem);
		s = pnstrdup(v->val.string.val, v->val.string.len);
	}
	json_path_pop(&p->buf, saved);
	return s;
}

/*
 * read_number reads a JSON number with at most "scale" decimals, scaled by
 * 10^scale, and checks min <= value < max_excl.  "what" completes "must
 * have at most N decimals" errors ("decimals", "decimals of a unit").
 */
static int64
read_number(Path *p, JsonbValue *v, int scale, int64 min, int64 max_excl,
			const char *range)
{
	int64		result;
	Numeric		n;

	if (v->type != jbvNumeric)
		request_error(p->buf.data, "must be a number.");
	n = v->val.numeric;
	if (numeric_is_nan(n) || numeric_is_inf(n))
		request_error(p->buf.data, "must be a finite number.");
	if (!numeric_to_scaled(n, scale, &result))
	{
		int64		dummy;

		/* distinguish "too many decimals" from "too large" */
		if (numeric_to_scaled(n, 6, &dummy) || numeric_to_scaled(n, 12, &dummy))
		{
			if (scale == 0)
				request_error(p->buf.data, "must be a whole number.");
			request_error(p->buf.data, "must have at most %d decimals.", scale);
		}
		request_error(p->buf.data, "%s.", range);
	}
	if (result < min || result >= max_excl)
		request_error(p->buf.data, "%s.", range);
	return result;
}

/* number_field reads obj.key as a number (dflt when absent and optional). */
static int64
number_field(Path *p, JsonbContainer *obj, const char *key, bool required,
			 int64 dflt, int scale, int64 min, int64 max_excl, const char *range)
{
	JsonbValue *v = get_field(obj, key);
	int			saved = json_path_push_key(&p->buf, key);
	int64		result = dflt;

	if (v == NULL)
	{
		if (required)
			request_error(p->buf.data, "is required.");
	}
	else
		result = read_number(p, v, scale, min, max_excl, range);
	json_path_pop(&p->buf, saved);
	return result;
}

/*
 * request_timestamp_parse parses an ISO 8601 timestamp that carries an
 * explicit UTC offset ("2026-11-22T10:00:00+03:00", "...Z"): a moment
 * without one would depend on the session's time zone, and words
 * ("tomorrow", "MSK") on the session too.  The one timestamp rule of every
 * request (the check API's "at", adjust's "expires_at" and
 * "available_at"); it raises nothing, each API words its own error.
 */
TimestampProblem
request_timestamp_parse(const char *s, TimestampTz *result)
{
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

	dterr = ParseDateTime(s, workbuf, sizeof(workbuf), field, ftype,
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
at_field(Path *p, JsonbContainer *obj, TimestampTz *result)
{
	char	   *s = string_field(p, obj, "at", OPTIONAL);
	int			saved;

	if (s == NULL)
		return false;
	saved = json_path_push_key(&p->buf, "at");
	*result = request_parse_at(p->buf.data, s);
	json_path_pop(&p->buf, saved);
	return true;
}

/* root_object returns the request's top-level object, or errors. */
static JsonbContainer *
root_object(Jsonb *jb)
{
	if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed request"),
				 errdetail("The request must be a JSON object.")));
	return &jb->root;
}

/* array_field returns obj.key as an array container (NULL when absent). */
static JsonbContainer *
array_field(Path *p, JsonbContainer *obj, const char *key, bool required,
			int max, const char *items)
{
	JsonbValue *v = get_field(obj, key);
	int			saved = json_path_push_key(&p->buf, key);
	JsonbContainer *arr;

	if (v == NULL)
	{
		if (required)
			request_error(p->buf.data, "is required.");
		json_path_pop(&p->buf, saved);
		return NULL;
	}
	if (!is_array(v))
		request_error(p->buf.data, "must be a JSON array.");
	arr = v->val.binary.data;
	if (JsonContainerSize(arr) > (uint32) max)
		request_error(p->buf.data, "must have at most %d %s.", max, items);
	json_path_pop(&p->buf, saved);
	return arr;
}


/* ---------------------------------------------------------------------
 * Check requests
 * ---------------------------------------------------------------------
 */

/* parse_customer reads "customer": a string, a number or null. */
static void
parse_customer(Path *p, JsonbContainer *obj, CheckRequest *req)
{
	JsonbValue *v = get_field(obj, "customer");
	int			saved = json_path_push_key(&p->buf, "customer");

	req->customer_kind = CUSTOMER_NONE;
	if (v == NULL)
		;
	else if (v->type == jbvString)
	{
		req->customer_kind = CUSTOMER_TEXT;
		req->customer_text = read_string(p, v);
	}
	else if (v->type == jbvNumeric)
	{
		req->customer_kind = CUSTOMER_ID;
		req->customer_id = read_number(p, v, 0, 1, PG_INT64_MAX,
									   "must be a positive customer id");
	}
	else
		request_error(p->buf.data, "must be a string (phone or card number), a number (customer id) or null.");
	json_path_pop(&p->buf, saved);
}

/* parse_line reads lines[i]. */
static void
parse_line(Path *p, JsonbValue *v, RequestLine *line)
{
	JsonbContainer *obj;

	if (!is_object(v))
		request_error(p->buf.data, "must be a JSON object.");
	obj = v->val.binary.data;
	check_keys(p, obj, LINE_KEYS, "A check line");
	line->sku = string_field(p, obj, "sku", REQUIRED);
	line->qty = number_field(p, obj, "qty", REQUIRED, 0, QTY_SCALE, 1,
							 REQUEST_MAX_QTY,
							 "must be greater than 0 and less than 100000");
	line->price = number_field(p, obj, "price", OPTIONAL, -1, MONEY_SCALE, 0,
							   REQUEST_MAX_PRICE,
							   "must be at least 0 and less than 1000000000");
}

/* parse_redeem reads "redeem": "max", a number of points, or null. */
static void
parse_redeem(Path *p, JsonbContainer *obj, CheckRequest *req,
			 int points_precision)
{
	JsonbValue *v = get_field(obj, "redeem");
	int			saved = json_path_push_key(&p->buf, "redeem");

	req->redeem = REDEEM_NONE;
	if (v == NULL)
		;
	else if (v->type == jbvString)
	{
		if (v->val.string.len != 3 || memcmp(v->val.string.val, "max", 3) != 0)
			request_error(p->buf.data, "must be \"max\", a number of points or null.");
		req->redeem = REDEEM_MAX;
	}
	else if (v->type == jbvNumeric)
	{
		int64		pts = read_number(p, v, points_precision, 0,
									  INT64CONST(1000000000000),
									  "must be at least 0 and less than 1000000000000");

		if (points_precision == 0)
			pts *= 100;
		req->redeem_points = pts;
		req->redeem = pts > 0 ? REDEEM_POINTS : REDEEM_NONE;
	}
	else
		request_error(p->buf.data, "must be \"max\", a number of points or null.");
	json_path_pop(&p->buf, saved);
}

/*
 * request_parse_check parses a calculate or purchase request (see
 * request.h).
 */
CheckRequest *
request_parse_check(Jsonb *jb, bool need_operation_id, int points_precision)
{
	CheckRequest *req = palloc0(sizeof(CheckRequest));
	JsonbContainer *obj = root_object(jb);
	JsonbContainer *arr;
	Path		p;
	int			i;

	initStringInfo(&p.buf);
	req->raw = jb;
	check_keys(&p, obj, CHECK_KEYS, "A check request");
	req->operation_id = operation_id_field(&p, obj, "operation_id",
										   need_operation_id, false);
	parse_customer(&p, obj, req);
	req->store = string_field(&p, obj, "store", OPTIONAL);
	req->channel = string_field(&p, obj, "channel", OPTIONAL);
	if (req->channel != NULL && strcmp(req->channel, "pos") != 0 &&
		strcmp(req->channel, "web") != 0 && strcmp(req->channel, "app") != 0)
		request_error("channel", "must be one of \"pos\", \"web\", \"app\".");
	req->has_at = at_field(&p, obj, &req->at);

	arr = array_field(&p, obj, "lines", REQUIRED, REQUEST_MAX_LINES, "lines");
	req->nlines = (int) JsonContainerSize(arr);
	if (req->nlines == 0)
		request_error("lines", "must have at least one line.");
	req->lines = palloc0(sizeof(RequestLine) * req->nlines);
	json_path_push_key(&p.buf, "lines");
	for (i = 0; i < req->nlines; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(arr, i);
		int			saved = json_path_push_index(&p.buf, i);

		CHECK_FOR_INTERRUPTS();
		parse_line(&p, v, &req->lines[i]);
		json_path_pop(&p.buf, saved);
	}
	json_path_pop(&p.buf, 0);

	arr = array_field(&p, obj, "coupons", OPTIONAL, REQUEST_MAX_COUPONS, "coupons");
	if (arr != NULL)
	{
		req->ncoupons = (int) JsonContainerSize(arr);
		req->coupons = palloc0(sizeof(char *) * Max(req->ncoupons, 1));
		json_path_push_key(&p.buf, "coupons");
		for (i = 0; i < req->ncoupons; i++)
		{
			JsonbValue *v = getIthJsonbValueFromContainer(arr, i);
			int			saved = json_path_push_index(&p.buf, i);

			req->coupons[i] = read_string(&p, v);
			json_path_pop(&p.buf, saved);
		}
		json_path_pop(&p.buf, 0);
	}
	parse_redeem(&p, obj, req, points_precision);
	return req;
}


/* ---------------------------------------------------------------------
 * Refund requests
 * ---------------------------------------------------------------------
 */

/*
 * request_parse_refund parses {"operation_id", "purchase", "at"?,
 * "lines"?: [{"index", "qty"}]}.  Two entries for one index are refused.
 */
RefundRequest *
request_parse_refund(Jsonb *jb)
{
	RefundRequest *req = palloc0(sizeof(RefundRequest));
	JsonbContainer *obj = root_object(jb);
	JsonbContainer *arr;
	Path		p;
	int			i,
				j;

	initStringInfo(&p.buf);
	req->raw = jb;
	check_keys(&p, obj, REFUND_KEYS, "A refund request");
	req->operation_id = operation_id_field(&p, obj, "operation_id", REQUIRED, false);
	req->purchase = operation_id_field(&p, obj, "purchase", REQUIRED, true);
	req->has_at = at_field(&p, obj, &req->at);
	arr = array_field(&p, obj, "lines", OPTIONAL, REQUEST_MAX_LINES, "lines");
	req->all = (arr == NULL);
	if (arr == NULL)
		return req;
	req->nlines = (int) JsonContainerSize(arr);
	if (req->nlines == 0)
		request_error("lines", "must have at least one line (leave it out to refund everything).");
	req->lines = palloc0(sizeof(RefundLineRequest) * req->nlines);
	json_path_push_key(&p.buf, "lines");
	for (i = 0; i < req->nlines; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(arr, i);
		int			saved = json_path_push_index(&p.buf, i);
		JsonbContainer *line;

		CHECK_FOR_INTERRUPTS();
		if (!is_object(v))
			request_error(p.buf.data, "must be a JSON object.");
		line = v->val.binary.data;
		check_keys(&p, line, REFUND_LINE_KEYS, "A refund line");
		req->lines[i].index = (int) number_field(&p, line, "index", REQUIRED, 0, 0, 0,
												 REQUEST_MAX_LINES,
												 "must be a line index from 0 to 999");
		req->lines[i].qty = number_field(&p, line, "qty", REQUIRED, 0, QTY_SCALE, 1,
										 REQUEST_MAX_QTY,
										 "must be greater than 0 and less than 100000");
		for (j = 0; j < i; j++)
			if (req->lines[j].index == req->lines[i].index)
				request_error(p.buf.data, "repeats line index %d.", req->lines[i].index);
		json_path_pop(&p.buf, saved);
	}
	return req;
}
