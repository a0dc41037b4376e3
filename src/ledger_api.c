/*-------------------------------------------------------------------------
 *
 * ledger_api.c
 *	  SQL-callable faces of the ledger written in C: loyalty.adjust (manual
 *	  grants and debits, idempotent by operation_id) and loyalty.expire_batch
 *	  (one batch of expiry, for expire_points and the maintenance procedure).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "clock.h"
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

static void malformed(const char *path, const char *what) pg_attribute_noreturn();

/*
 * malformed reports a malformed request field (22023), naming its path.
 */
static void
malformed(const char *path, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed adjust request"),
			 errdetail("Field \"%s\" %s.", path, what)));
}

/*
 * json_string returns the text of a JSON string value, or reports the field
 * as malformed.
 */
static char *
json_string(JsonbValue *v, const char *path)
{
	if (v->type != jbvString || v->val.string.len == 0)
		malformed(path, "must be a non-empty string");
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * parse_adjust reads the request strictly: every known field with its type,
 * no unknown field, the required ones present.
 */
static void
parse_adjust(Jsonb *request, AdjustRequest *req)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		have_customer = false;

	memset(req, 0, sizeof(*req));
	if (!JB_ROOT_IS_OBJECT(request))
		malformed("request", "must be a JSON object");

	it = JsonbIteratorInit(&request->root);
	tok = JsonbIteratorNext(&it, &v, false);	/* WJB_BEGIN_OBJECT */
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *key;

		CHECK_FOR_INTERRUPTS();
		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		tok = JsonbIteratorNext(&it, &v, true);
		if (strcmp(key, "operation_id") == 0)
		{
			const char *problem;

			req->operation_id = json_string(&v, key);
			/* the rule of every API: nothing trimmed, at most 200 characters */
			problem = operation_id_problem(v.val.string.val, v.val.string.len, false);
			if (problem != NULL)
				malformed(key, problem);
		}
		else if (strcmp(key, "customer") == 0)
		{
			have_customer = true;
			if (v.type == jbvNumeric)
			{
				int64		id;

				if (!numeric_to_scaled(v.val.numeric, 0, &id) || id <= 0)
					malformed(key, "must be a positive whole customer id or an identifier string");
				req->customer_id = id;
			}
			else
				req->customer = json_string(&v, key);
		}
		else if (strcmp(key, "account") == 0)
			req->account = json_string(&v, key);
		else if (strcmp(key, "points") == 0)
		{
			if (v.type != jbvNumeric)
				malformed(key, "must be a number");
			req->points = v.val.numeric;
		}
		else if (strcmp(key, "expires_at") == 0)
		{
			if (v.type != jbvNull)
				req->expires_at = json_string(&v, key);
		}
		else if (strcmp(key, "available_at") == 0)
		{
			if (v.type != jbvNull)
				req->available_at = json_string(&v, key);
		}
		else if (strcmp(key, "reason") == 0)
			req->reason = json_string(&v, key);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("malformed adjust request"),
					 errdetail("Field \"%s\" is not known.", key),
					 errhint("Known fields are operation_id, customer, account, points, available_at, expires_at and reason.")));
	}

	if (req->operation_id == NULL)
		malformed("operation_id", "is required");
	if (!have_customer)
		malformed("customer", "is required");
	if (req->account == NULL)
		malformed("account", "is required");
	if (req->points == NULL)
		malformed("points", "is required");
	if (req->reason == NULL)
		malformed("reason", "is required");
}

/* saved plans of adjust's reads, prepared on first use */
static SPIPlanPtr customer_text_plan = NULL;
static SPIPlanPtr customer_id_plan = NULL;
static SPIPlanPtr account_plan = NULL;
static SPIPlanPtr precision_plan = NULL;

/*
 * spi_single runs a saved one-row, one-column plan with at most one
 * argument and returns the value as text (NULL for SQL NULL or no row).
 * Saved, not parsed and planned per call: a bulk adjust over a segment
 * runs it once per customer.
 */
static char *
spi_single(SPIPlanPtr plan, Datum arg)
{
	Datum		values[1] = {arg};
	int			rc = SPI_execute_plan(plan, values, NULL, false, 1);

	if (rc < 0)
		elog(ERROR, "SPI query failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
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
			malformed(path, "must be a timestamp such as 2027-01-01T00:00:00+03:00");
		case TIMESTAMP_OUT_OF_RANGE:
			malformed(path, "is out of range (years 2000 to 2200)");
	}
	return result;
}

/*
 * loyalty_adjust grants (points > 0) or debits (points < 0) a customer's
 * account by hand.  A grant is available at once (or from available_at) and
 * expires at expires_at, or after the account type's lifetime; a debit takes points like a
 * purchase does (first expiring first) and fails with LY004 beyond the
 * balance.  Idempotent by operation_id.
 */
Datum
loyalty_adjust(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext caller_cxt = CurrentMemoryContext;
	AdjustRequest req;
	Jsonb	   *stored;
	Jsonb	   *response;
	char	   *text;
	int64		customer_id;
	int64		points;
	int			precision;
	TimestampTz now = clock_server_now(false, 0);
	TimestampTz expires_at = DT_NOEND;
	TimestampTz available_at;
	LedgerBalance balance;
	const char *accounts[1];
	StringInfoData buf;

	parse_adjust(request, &req);
	available_at = now;

	SPI_connect();

	stored = operation_begin(req.operation_id, "adjust", request);
	if (stored != NULL)
	{
		MemoryContextSwitchTo(caller_cxt);
		response = DatumGetJsonbPCopy(JsonbPGetDatum(stored));
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}

	/* the customer: an identifier string or an id */
	if (req.customer != NULL)
		text = spi_single(saved_plan(&customer_text_plan,
									 "SELECT loyalty.find_customer($1)",
									 1, (Oid[]) {TEXTOID}),
						  CStringGetTextDatum(req.customer));
	else
		text = spi_single(saved_plan(&customer_id_plan,
									 "SELECT loyalty.find_customer('id:' || $1)",
									 1, (Oid[]) {INT8OID}),
						  Int64GetDatum(req.customer_id));
	if (text == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND),
				 errmsg("customer \"%s\" not found",
						req.customer ? req.customer : psprintf(INT64_FORMAT, req.customer_id))));
	customer_id = pg_strtoint64(text);

	/* the account and its lifetime */
	if (SPI_execute_plan(saved_plan(&account_plan,
									"SELECT lifetime IS NOT NULL,"
									"       $2 + coalesce(lifetime, '0')"
									"  FROM loyalty.account_type WHERE code = $1",
									2, (Oid[]) {TEXTOID, TIMESTAMPTZOID}),
						 (Datum[]) {CStringGetTextDatum(req.account),
						 TimestampTzGetDatum(now)},
						 NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading account type failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed adjust request"),
				 errdetail("Field \"account\" names no account type: \"%s\".", req.account)));
	{
		bool		isnull;

		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			expires_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 2, &isnull));
	}

	/* the points, at the program's precision */
	/* loyalty.setting_value('points_precision'), which a plan cannot inline */
	text = spi_single(saved_plan(&precision_plan,
								 "SELECT coalesce(s.value, d.default_value)"
								 "  FROM loyalty.setting_definition d"
								 "  LEFT JOIN loyalty.setting s USING (key)"
								 " WHERE d.key = 'points_precision'",
								 0, NULL),
					  (Datum) 0);
	precision = (text != NULL && strcmp(text, "2") == 0) ? 2 : 0;
	if (!numeric_to_scaled(req.points, precision, &points))
		malformed("points", precision == 0
				  ? "must be a whole number of points (points_precision is 0)"
				  : "must have at most 2 decimals");
	points *= (precision == 0) ? 100 : 1;
	if (points == 0)
		malformed("points", "must not be 0");
	if (points >= INT64CONST(100000000000000) || points <= -INT64CONST(100000000000000))
		malformed("points", "is out of range");

	if (req.available_at != NULL)
	{
		if (points < 0)
			malformed("available_at", "applies to grants only (points > 0)");
		available_at = parse_timestamp(req.available_at, "available_at");
		if (available_at < now)
			available_at = now;
	}
	if (req.expires_at != NULL)
	{
		if (points < 0)
			malformed("expires_at", "applies to grants only (points > 0)");
		expires_at = parse_timestamp(req.expires_at, "expires_at");
		if (expires_at <= available_at)
			malformed("expires_at", "must be later than now and than available_at");
	}
	else if (!TIMESTAMP_IS_NOEND(expires_at) && available_at > now)
	{
		/* the account's lifetime runs from when the points become available */
		expires_at += available_at - now;
	}

	/* merged while this waited for the lock: the survivor's points */
	customer_id = ledger_lock_survivor(customer_id);
	if (points > 0)
		ledger_accrue_kind(customer_id, req.account, points, req.operation_id,
						   now, available_at, expires_at, "adjust");
	else
		ledger_spend_kind(customer_id, req.account, -points, req.operation_id,
						  now, now, "adjust");

	accounts[0] = req.account;
	ledger_balances(customer_id, now, 1, accounts, &balance);

	/* the response, in the caller's memory so that it outlives SPI */
	MemoryContextSwitchTo(caller_cxt);
	{
		int64		unit = (precision == 0) ? 100 : 1;

		initStringInfo(&buf);
		appendStringInfoString(&buf, "{\"operation_id\": ");
		escape_json(&buf, req.operation_id);
		appendStringInfo(&buf, ", \"customer\": " INT64_FORMAT ", \"account\": ",
						 customer_id);
		escape_json(&buf, req.account);
		appendStringInfo(&buf, ", \"points\": %s, \"reason\": ",
						 scaled_to_cstring(points / unit, precision));
		escape_json(&buf, req.reason);
		appendStringInfo(&buf, ", \"balance\": {\"available\": %s, \"pending\": %s}}",
						 scaled_to_cstring(balance.available / unit, precision),
						 scaled_to_cstring(balance.pending / unit, precision));
	}
	response = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));

	operation_finish(req.operation_id, customer_id, response);
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
