/*-------------------------------------------------------------------------
 *
 * ledger_api.c
 *	  SQL-callable faces of the ledger written in C: loyalty.adjust (manual
 *	  grants and debits, idempotent by operation_id) and loyalty.expire_batch
 *	  (one batch of expiry, for expire_points and the maintenance procedure).
 *
 * loyalty_adjust runs short steps over one Adjust: parse the request (the
 * one JSON reader in adjust's own style, "malformed adjust request"), load
 * what it names (the customer, the account type, the points precision),
 * plan the movement (points and times, pure C), write it to the ledger and
 * respond.  The ledger itself (lots, locks, movements) is ledger.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "clock.h"
#include "json_reader.h"
#include "ledger.h"
#include "money.h"
#include "operation_id.h"
#include "operations.h"
#include "request.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(loyalty_adjust);
PG_FUNCTION_INFO_V1(loyalty_expire_batch);

/* A parsed adjust request. */
typedef struct AdjustRequest
{
	char	   *operation_id;
	char	   *customer;		/* identifier string, or NULL when by id */
	int64		customer_id;	/* when given as a number */
	char	   *account;
	Numeric		points;
	char	   *expires_at;		/* NULL when absent */
	char	   *available_at;	/* NULL when absent */
	char	   *reason;
} AdjustRequest;

/* One adjust from its request to its response: what each step hands on. */
typedef struct Adjust
{
	AdjustRequest req;
	TimestampTz now;
	int64		customer_id;
	bool		has_lifetime;	/* the account type's points expire */
	TimestampTz lifetime_end;	/* now + the account type's lifetime */
	int			precision;		/* points_precision: 0 or 2 */
	int64		points;			/* hundredths; > 0 grants, < 0 debits */
	TimestampTz available_at;
	TimestampTz expires_at;
	LedgerBalance balance;
} Adjust;

/* the fields of an adjust request, in the order the hint lists them */
static const char *const ADJUST_KEYS[] =
{"operation_id", "customer", "account", "points", "available_at",
"expires_at", "reason", NULL};

/* how adjust requests are read and their errors worded */
static const JsonReaderStyle ADJUST_STYLE = {
	.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE,
	.errmsg = "malformed adjust request",
	.null_is_absent = false,
	.not_object = "Field \"request\" must be a JSON object.",
	.unknown_key = "is not known.",
	.max_key_bytes = 0,
	.not_string = "must be a non-empty string.",
	.empty_string = "must be a non-empty string.",
	.not_finite = "must be a number.",
	.written_decimals = false,
	.decimals = "must have at most %d decimals.",
};

/* saved plans of adjust's reads, prepared on first use */
static SPIPlanPtr customer_text_plan = NULL;
static SPIPlanPtr customer_id_plan = NULL;
static SPIPlanPtr account_plan = NULL;
static SPIPlanPtr precision_plan = NULL;

static void adjust_error(const char *path, const char *fmt,...)
			pg_attribute_printf(2, 3) pg_attribute_noreturn();

/*
 * adjust_error reports a malformed field of an adjust request (22023),
 * naming its path.
 */
static void
adjust_error(const char *path, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	jr_verror(&ADJUST_STYLE, ADJUST_STYLE.errmsg, path, NULL, fmt, args);
	va_end(args);
}


/* ---------------------------------------------------------------------
 * Parse
 * ---------------------------------------------------------------------
 */

/*
 * adjust_field reads the field key of an adjust request (the reader's path
 * names it); false when key is not a field of adjust.
 */
static bool
adjust_field(JsonReader *r, const char *key, JsonbValue *v,
			 AdjustRequest *req, bool *have_customer)
{
	if (strcmp(key, "operation_id") == 0)
	{
		const char *problem;

		req->operation_id = jr_string(r, v);
		/* the rule of every API: nothing trimmed, at most 200 characters */
		problem = operation_id_problem(v->val.string.val, v->val.string.len, false);
		if (problem != NULL)
			jr_error(r, NULL, "%s.", problem);
	}
	else if (strcmp(key, "customer") == 0)
	{
		*have_customer = true;
		if (v->type == jbvNumeric)
		{
			int64		id;

			if (!numeric_to_scaled(v->val.numeric, 0, &id) || id <= 0)
				jr_error(r, NULL, "must be a positive whole customer id or an identifier string.");
			req->customer_id = id;
		}
		else
			req->customer = jr_string(r, v);
	}
	else if (strcmp(key, "account") == 0)
		req->account = jr_string(r, v);
	else if (strcmp(key, "points") == 0)
		req->points = jr_numeric(r, v);
	else if (strcmp(key, "expires_at") == 0)
	{
		if (v->type != jbvNull)
			req->expires_at = jr_string(r, v);
	}
	else if (strcmp(key, "available_at") == 0)
	{
		if (v->type != jbvNull)
			req->available_at = jr_string(r, v);
	}
	else if (strcmp(key, "reason") == 0)
		req->reason = jr_string(r, v);
	else
		return false;
	return true;
}

/*
 * parse_adjust reads the request strictly, field by field in jsonb's order:
 * every known field with its type, no unknown field, the required ones
 * present.
 */
static void
parse_adjust(Jsonb *request, AdjustRequest *req)
{
	JsonReader	r;
	JsonFieldIter iter;
	JsonbValue	k,
				v;
	bool		have_customer = false;

	memset(req, 0, sizeof(*req));
	jr_init(&r, &ADJUST_STYLE, NULL, "");
	jr_fields_begin(&iter, jr_root_object(&r, request));
	while (jr_fields_next(&iter, &k, &v))
	{
		char	   *key = pnstrdup(k.val.string.val, k.val.string.len);
		int			saved = jr_push_key(&r, key);

		if (!adjust_field(&r, key, &v, req, &have_customer))
		{
			jr_pop(&r, saved);
			jr_unknown_key(&r, key, k.val.string.len, NULL, ADJUST_KEYS);
		}
		jr_pop(&r, saved);
	}
	jr_free(&r);

	if (req->operation_id == NULL)
		adjust_error("operation_id", "is required.");
	if (!have_customer)
		adjust_error("customer", "is required.");
	if (req->account == NULL)
		adjust_error("account", "is required.");
	if (req->points == NULL)
		adjust_error("points", "is required.");
	if (req->reason == NULL)
		adjust_error("reason", "is required.");
}

/*
 * parse_timestamp reads a timestamp of the request under the rule of every
 * API (request_timestamp_parse): ISO 8601 with an explicit UTC offset, so
 * that neither the session's TimeZone nor a word ("tomorrow") decides it.
 */
static TimestampTz
parse_timestamp(const char *text, const char *path)
{
	TimestampTz result = 0;

	switch (request_timestamp_parse(text, &result))
	{
		case TIMESTAMP_OK:
			break;
		case TIMESTAMP_MALFORMED:
			adjust_error(path, "must be a timestamp such as 2027-01-01T00:00:00+03:00.");
		case TIMESTAMP_OUT_OF_RANGE:
			adjust_error(path, "is out of range (years 2000 to 2200).");
	}
	return result;
}


/* ---------------------------------------------------------------------
 * Load: the customer, the account type, the points precision
 * ---------------------------------------------------------------------
 */

/*
 * load_customer finds the customer by identifier string or id (LY001 when
 * there is none).  Saved plans, not parsed and planned per call: a bulk
 * adjust over a segment runs them once per customer.
 */
static void
load_customer(Adjust *adj)
{
	const AdjustRequest *req = &adj->req;
	uint64		n;

	if (req->customer != NULL)
		n = spi_exec(saved_plan(&customer_text_plan,
								"SELECT loyalty.find_customer($1)",
								1, (Oid[]) {TEXTOID}),
					 (Datum[]) {CStringGetTextDatum(req->customer)}, NULL, false, 1);
	else
		n = spi_exec(saved_plan(&customer_id_plan,
								"SELECT loyalty.find_customer('id:' || $1)",
								1, (Oid[]) {INT8OID}),
					 (Datum[]) {Int64GetDatum(req->customer_id)}, NULL, false, 1);
	if (n == 0 || spi_isnull(0, 1))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND),
				 errmsg("customer \"%s\" not found",
						req->customer ? req->customer : psprintf(INT64_FORMAT, req->customer_id))));
	adj->customer_id = spi_int8(0, 1, 0);
}

/* load_account reads the account type and when its points would expire. */
static void
load_account(Adjust *adj)
{
	if (spi_exec(saved_plan(&account_plan,
							"SELECT lifetime IS NOT NULL,"
							"       $2 + coalesce(lifetime, '0')"
							"  FROM loyalty.account_type WHERE code = $1",
							2, (Oid[]) {TEXTOID, TIMESTAMPTZOID}),
				 (Datum[]) {CStringGetTextDatum(adj->req.account),
				 TimestampTzGetDatum(adj->now)},
				 NULL, true, 1) == 0)
		adjust_error("account", "names no account type: \"%s\".", adj->req.account);
	adj->has_lifetime = spi_bool(0, 1, false);
	if (adj->has_lifetime)
		adj->lifetime_end = spi_timestamptz(0, 2, 0);
}

/*
 * load_precision reads the program's points precision
 * (loyalty.setting_value('points_precision'), which a plan cannot inline).
 */
static void
load_precision(Adjust *adj)
{
	char	   *text = NULL;

	if (spi_exec(saved_plan(&precision_plan,
							"SELECT coalesce(s.value, d.default_value)"
							"  FROM loyalty.setting_definition d"
							"  LEFT JOIN loyalty.setting s USING (key)"
							" WHERE d.key = 'points_precision'",
							0, NULL),
				 NULL, NULL, false, 1) > 0)
		text = spi_text(0, 1, CurrentMemoryContext);
	adj->precision = (text != NULL && strcmp(text, "2") == 0) ? 2 : 0;
}


/* ---------------------------------------------------------------------
 * Plan: the points and times of the movement (pure C)
 * ---------------------------------------------------------------------
 */

/* plan_points converts the points at the program's precision and checks them. */
static void
plan_points(Adjust *adj)
{
	int64		points;

	if (!numeric_to_scaled(adj->req.points, adj->precision, &points))
		adjust_error("points", adj->precision == 0
					 ? "must be a whole number of points (points_precision is 0)."
					 : "must have at most 2 decimals.");
	points *= (adj->precision == 0) ? 100 : 1;
	if (points == 0)
		adjust_error("points", "must not be 0.");
	if (points >= INT64CONST(100000000000000) || points <= -INT64CONST(100000000000000))
		adjust_error("points", "is out of range.");
	adj->points = points;
}

/*
 * plan_times decides when a grant becomes available (now, or the later
 * available_at) and when it expires (expires_at, or the account type's
 * lifetime counted from when the points become available, or never).
 */
static void
plan_times(Adjust *adj)
{
	const AdjustRequest *req = &adj->req;

	adj->available_at = adj->now;
	adj->expires_at = adj->has_lifetime ? adj->lifetime_end : DT_NOEND;
	if (req->available_at != NULL)
	{
		if (adj->points < 0)
			adjust_error("available_at", "applies to grants only (points > 0).");
		adj->available_at = parse_timestamp(req->available_at, "available_at");
		if (adj->available_at < adj->now)
			adj->available_at = adj->now;
	}
	if (req->expires_at != NULL)
	{
		if (adj->points < 0)
			adjust_error("expires_at", "applies to grants only (points > 0).");
		adj->expires_at = parse_timestamp(req->expires_at, "expires_at");
		if (adj->expires_at <= adj->available_at)
			adjust_error("expires_at", "must be later than now and than available_at.");
	}
	else if (!TIMESTAMP_IS_NOEND(adj->expires_at) && adj->available_at > adj->now)
	{
		/* the account's lifetime runs from when the points become available */
		adj->expires_at += adj->available_at - adj->now;
	}
}


/* ---------------------------------------------------------------------
 * Write and respond
 * ---------------------------------------------------------------------
 */

/*
 * write_movement grants or debits the points, on the survivor when a merge
 * absorbed the customer while this waited for the lock, and reads the
 * account's balance after it.
 */
static void
write_movement(Adjust *adj)
{
	const char *accounts[1];

	adj->customer_id = ledger_lock_survivor(adj->customer_id);
	if (adj->points > 0)
		ledger_accrue_kind(adj->customer_id, adj->req.account, adj->points,
						   adj->req.operation_id, adj->now, adj->available_at,
						   adj->expires_at, "adjust");
	else
		ledger_spend_kind(adj->customer_id, adj->req.account, -adj->points,
						  adj->req.operation_id, adj->now, adj->now, "adjust");

	accounts[0] = adj->req.account;
	ledger_balances(adj->customer_id, adj->now, 1, accounts, &adj->balance);
}

/* build_response builds adjust's response in the current memory context. */
static Jsonb *
build_response(const Adjust *adj)
{
	int64		unit = (adj->precision == 0) ? 100 : 1;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"operation_id\": ");
	escape_json(&buf, adj->req.operation_id);
	appendStringInfo(&buf, ", \"customer\": " INT64_FORMAT ", \"account\": ",
					 adj->customer_id);
	escape_json(&buf, adj->req.account);
	appendStringInfo(&buf, ", \"points\": %s, \"reason\": ",
					 scaled_to_cstring(adj->points / unit, adj->precision));
	escape_json(&buf, adj->req.reason);
	appendStringInfo(&buf, ", \"balance\": {\"available\": %s, \"pending\": %s}}",
					 scaled_to_cstring(adj->balance.available / unit, adj->precision),
					 scaled_to_cstring(adj->balance.pending / unit, adj->precision));
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/*
 * loyalty_adjust grants (points > 0) or debits (points < 0) a customer's
 * account by hand.  A grant is available at once (or from available_at) and
 * expires at expires_at, or after the account type's lifetime; a debit takes points like a
 * purchase does (first expiring first) and fails with LY004 beyond the
 * balance.  Idempotent by operation_id.  Steps: parse, replay or load,
 * plan, write, respond.
 */
Datum
loyalty_adjust(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext caller_cxt = CurrentMemoryContext;
	Adjust		adj = {0};
	Jsonb	   *stored;
	Jsonb	   *response;

	adj.now = clock_server_now(false, 0);
	parse_adjust(request, &adj.req);

	SPI_connect();
	stored = operation_begin(adj.req.operation_id, "adjust", request);
	if (stored != NULL)
	{
		response = spi_copy_varlena(stored, caller_cxt);
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}

	load_customer(&adj);
	load_account(&adj);
	load_precision(&adj);
	plan_points(&adj);
	plan_times(&adj);
	write_movement(&adj);

	/* the response, in the caller's memory so that it outlives SPI */
	MemoryContextSwitchTo(caller_cxt);
	response = build_response(&adj);
	operation_finish(adj.req.operation_id, adj.customer_id, response);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}

/*
 * loyalty_expire_batch runs one expiry batch: (as_of, max_lots,
 * after_expires_at, after_id) -> (lots_seen, points, last_expires_at,
 * last_id).  NULL keyset arguments start from the
 * beginning.
 */
Datum
loyalty_expire_batch(PG_FUNCTION_ARGS)
{
	TimestampTz as_of;
	int32		max_lots;
	TimestampTz after_expires_at = DT_NOBEGIN;
	int64		after_id = 0;
	ExpireBatch batch;
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("as_of and max_lots must not be null")));
	as_of = PG_GETARG_TIMESTAMPTZ(0);
	max_lots = PG_GETARG_INT32(1);
	if (max_lots < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_lots must be positive")));
	if (!PG_ARGISNULL(2))
		after_expires_at = PG_GETARG_TIMESTAMPTZ(2);
	if (!PG_ARGISNULL(3))
		after_id = PG_GETARG_INT64(3);

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "expire_batch must return a record");

	SPI_connect();
	ledger_expire_batch(as_of, max_lots, after_expires_at, after_id, &batch);
	SPI_finish();

	values[0] = Int32GetDatum(batch.lots_seen);
	values[1] = Int64GetDatum(batch.points);
	values[2] = TimestampTzGetDatum(batch.last_expires_at);
	values[3] = Int64GetDatum(batch.last_id);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
