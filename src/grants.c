/*-------------------------------------------------------------------------
 *
 * grants.c
 *	  loyalty.grant_points (SPEC section 10): a campaign grant of points to
 *	  every member of a segment, or to a list of customers, as one
 *	  set-based, idempotent operation.
 *
 * Request: {"operation_id", "segment" | "customers": [id, ...], "account",
 * "points", "expires_at" | "lifetime", "reason"}.  Steps: parse strictly
 * (22023 naming the JSON path), replay by operation_id (operations.c),
 * resolve and lock the customers (survivors of merges, in id order, like a
 * purchase locks its one customer), then one statement over the ids
 * locked (they are not computed twice; the event's payload, the same for
 * every customer, is built once): each customer's debt on the account is
 * paid first, the rest becomes a lot (ledger entry kind "adjust") and a
 * points_earned event carries the reason.  The members are those of the
 * moment of the call.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "clock.h"
#include "json_reader.h"
#include "money.h"
#include "operation_id.h"
#include "operations.h"
#include "request.h"
#include "rules.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(loyalty_grant_points);

/* A parsed grant request. */
typedef struct GrantRequest
{
	char	   *operation_id;
	char	   *segment;		/* NULL when customers are listed */
	int64	   *customers;
	int			ncustomers;
	bool		have_customers;
	char	   *account;
	Numeric		points;
	char	   *expires_at;
	char	   *lifetime;
	char	   *reason;
} GrantRequest;

static const char *const GRANT_KEYS[] =
{"operation_id", "segment", "customers", "account", "points", "expires_at",
"lifetime", "reason", NULL};

/* how grant requests are read and their errors worded */
static const JsonReaderStyle GRANT_STYLE = {
	.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE,
	.errmsg = "malformed grant request",
	.null_is_absent = false,
	.not_object = "Field \"request\" must be a JSON object.",
	.unknown_key = "is not known.",
	.max_key_bytes = 64,
	.not_string = "must be a non-empty string.",
	.empty_string = "must be a non-empty string.",
	.not_finite = "must be a number.",
	.written_decimals = false,
	.decimals = "must have at most %d decimals.",
};

static SPIPlanPtr precision_plan = NULL;
static SPIPlanPtr account_plan = NULL;
static SPIPlanPtr segment_plan = NULL;
static SPIPlanPtr unknown_plan = NULL;
static SPIPlanPtr lock_plan = NULL;
static SPIPlanPtr grant_plan = NULL;

static void grant_error(const char *path, const char *fmt,...)
			pg_attribute_printf(2, 3) pg_attribute_noreturn();

/* grant_error reports a malformed field of a grant request (22023). */
static void
grant_error(const char *path, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	jr_verror(&GRANT_STYLE, GRANT_STYLE.errmsg, path, NULL, fmt, args);
	va_end(args);
}

/* parse_customers reads "customers": a non-empty array of positive ids. */
static void
parse_customers(JsonReader *r, JsonbValue *v, GrantRequest *req)
{
	JsonbContainer *arr = jr_nonempty_array(r, v);
	int			n = JsonContainerSize(arr);
	int			i;

	req->customers = palloc(sizeof(int64) * n);
	req->ncustomers = n;
	req->have_customers = true;
	for (i = 0; i < n; i++)
	{
		int			saved;
		JsonbValue *e = jr_element(r, arr, i, &saved);
		int64		id;

		CHECK_FOR_INTERRUPTS();
		if (e->type != jbvNumeric ||
			!numeric_to_scaled(e->val.numeric, 0, &id) || id <= 0)
			jr_error(r, NULL, "must be a positive whole customer id.");
		req->customers[i] = id;
		jr_pop(r, saved);
	}
}

/*
 * parse_grant reads the request strictly: every known field with its type,
 * no unknown field, the required ones present, one of segment / customers,
 * at most one of expires_at / lifetime.
 */
static void
parse_grant(Jsonb *request, GrantRequest *req)
{
	JsonReader	r;
	JsonFieldIter iter;
	JsonbValue	k,
				v;

	memset(req, 0, sizeof(*req));
	jr_init(&r, &GRANT_STYLE, NULL, "");
	jr_fields_begin(&iter, jr_root_object(&r, request));
	while (jr_fields_next(&iter, &k, &v))
	{
		char	   *key = pnstrdup(k.val.string.val, k.val.string.len);
		int			saved = jr_push_key(&r, key);

		if (strcmp(key, "operation_id") == 0)
		{
			const char *problem;

			req->operation_id = jr_string(&r, &v);
			problem = operation_id_problem(v.val.string.val, v.val.string.len, false);
			if (problem != NULL)
				jr_error(&r, NULL, "%s.", problem);
		}
		else if (strcmp(key, "segment") == 0)
			req->segment = jr_string(&r, &v);
		else if (strcmp(key, "customers") == 0)
			parse_customers(&r, &v, req);
		else if (strcmp(key, "account") == 0)
			req->account = jr_string(&r, &v);
		else if (strcmp(key, "points") == 0)
			req->points = jr_numeric(&r, &v);
		else if (strcmp(key, "expires_at") == 0)
			req->expires_at = jr_string(&r, &v);
		else if (strcmp(key, "lifetime") == 0)
		{
			req->lifetime = jr_string(&r, &v);
			if (!interval_text_ok(req->lifetime))
				jr_error(&r, NULL, "must be an interval such as \"30 days\", \"2 weeks\", \"6 months\" or \"1 year\".");
		}
		else if (strcmp(key, "reason") == 0)
			req->reason = jr_string(&r, &v);
		else
		{
			jr_pop(&r, saved);
			jr_unknown_key(&r, key, k.val.string.len, NULL, GRANT_KEYS);
		}
		jr_pop(&r, saved);
	}
	jr_free(&r);

	if (req->operation_id == NULL)
		grant_error("operation_id", "is required.");
	if (req->segment == NULL && !req->have_customers)
		grant_error("segment", "or \"customers\" is required.");
	if (req->segment != NULL && req->have_customers)
		grant_error("customers", "must not be given with \"segment\".");
	if (req->account == NULL)
		grant_error("account", "is required.");
	if (req->points == NULL)
		grant_error("points", "is required.");
	if (req->expires_at != NULL && req->lifetime != NULL)
		grant_error("lifetime", "must not be given with \"expires_at\".");
	if (req->reason == NULL)
		grant_error("reason", "is required.");
}

/* load_points converts the points at the program's precision (points > 0). */
static int64
load_points(const GrantRequest *req, int *precision)
{
	char	   *text = NULL;
	int64		points;

	if (spi_exec(saved_plan(&precision_plan,
							"SELECT coalesce(s.value, d.default_value)"
							"  FROM loyalty.setting_definition d"
							"  LEFT JOIN loyalty.setting s USING (key)"
							" WHERE d.key = 'points_precision'",
							0, NULL),
				 NULL, NULL, true, 1) > 0)
		text = spi_text(0, 1, CurrentMemoryContext);
	*precision = (text != NULL && strcmp(text, "2") == 0) ? 2 : 0;
	if (!numeric_to_scaled(req->points, *precision, &points))
		grant_error("points", *precision == 0
					? "must be a whole number of points (points_precision is 0)."
					: "must have at most 2 decimals.");
	if (points <= 0)
		grant_error("points", "must be greater than 0.");
	if (points >= INT64CONST(1000000000000))
		grant_error("points", "is out of range.");
	return points;				/* at the precision's scale */
}

/*
 * load_expiry decides when the granted points expire: expires_at, now +
 * lifetime, else the account type's lifetime, else never (*never).
 */
static TimestampTz
load_expiry(const GrantRequest *req, TimestampTz now, bool *never)
{
	TimestampTz result = 0;

	*never = false;
	if (spi_exec(saved_plan(&account_plan,
							"SELECT $2 + coalesce($3::interval, lifetime),"
							"       $3 IS NULL AND lifetime IS NULL"
							"  FROM loyalty.account_type WHERE code = $1",
							3, (Oid[]) {TEXTOID, TIMESTAMPTZOID, TEXTOID}),
				 (Datum[]) {CStringGetTextDatum(req->account), TimestampTzGetDatum(now),
				 CStringGetTextDatum(req->lifetime ? req->lifetime : "")},
				 req->lifetime ? "   " : "  n", true, 1) == 0)
		grant_error("account", "names no account type: \"%s\".", req->account);
	if (req->expires_at != NULL)
	{
		switch (request_timestamp_parse(req->expires_at, &result))
		{
			case TIMESTAMP_OK:
				break;
			case TIMESTAMP_MALFORMED:
				grant_error("expires_at", "must be a timestamp such as 2027-01-01T00:00:00+03:00.");
			case TIMESTAMP_OUT_OF_RANGE:
				grant_error("expires_at", "is out of range (years 2000 to 2200).");
		}
		if (result <= now)
			grant_error("expires_at", "must be later than now.");
		return result;
	}
	if (spi_bool(0, 2, true))
	{
		*never = true;
		return 0;
	}
	return spi_timestamptz(0, 1, 0);
}

/*
 * load_targets returns the ids the grant names (segment members, or the
 * listed customers: LY001 for the first unknown) as an int8[].
 */
static Datum
load_targets(const GrantRequest *req)
{
	Datum	   *elems;
	int			i;

	if (req->segment != NULL)
	{
		if (spi_exec(saved_plan(&segment_plan,
								"SELECT 1 FROM loyalty.segment WHERE code = $1",
								1, (Oid[]) {TEXTOID}),
					 (Datum[]) {CStringGetTextDatum(req->segment)}, NULL, true, 1) == 0)
			grant_error("segment", "names no segment: \"%s\".", req->segment);
		return (Datum) 0;
	}
	elems = palloc(sizeof(Datum) * req->ncustomers);
	for (i = 0; i < req->ncustomers; i++)
		elems[i] = Int64GetDatum(req->customers[i]);
	{
		Datum		arr = PointerGetDatum(construct_array(elems, req->ncustomers, INT8OID,
														  8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

		if (spi_exec(saved_plan(&unknown_plan,
								"SELECT x FROM pg_catalog.unnest($1::int8[]) x"
								" WHERE NOT EXISTS (SELECT 1 FROM loyalty.customer c WHERE c.id = x)"
								" LIMIT 1",
								1, (Oid[]) {INT8ARRAYOID}),
					 (Datum[]) {arr}, NULL, true, 1) > 0)
			ereport(ERROR,
					(errcode(ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND),
					 errmsg("customer \"" INT64_FORMAT "\" not found", spi_int8(0, 1, 0)),
					 errdetail("Every customer of a grant must exist; nothing was granted.")));
		return arr;
	}
}

/*
 * the customers a grant names, as survivors of merges: the members or the
 * listed ids, a merged one replaced by its survivor.  Only the merged
 * customers are looked up (their partial index): every member exists (a
 * foreign key), every listed id was checked by load_targets, and the lock
 * below reads each survivor's row anyway, so the ids are not looked up
 * once more here (at chain scale that was 1.2M index probes, twice).
 */
#define GRANT_TARGETS \
	"SELECT coalesce(mc.merged_into, x.id)" \
	"  FROM (SELECT m.customer_id FROM loyalty.segment_member m" \
	"         WHERE $1::text IS NOT NULL AND m.segment = $1" \
	"        UNION ALL SELECT pg_catalog.unnest($2::int8[])) x (id)" \
	"  LEFT JOIN loyalty.customer mc ON mc.id = x.id AND mc.merged_into IS NOT NULL"

/*
 * loyalty_grant_points grants points to every customer of a segment or a
 * list in one statement, idempotent by operation_id; see the file header.
 */
Datum
loyalty_grant_points(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext caller_cxt = CurrentMemoryContext;
	GrantRequest req;
	TimestampTz now;
	TimestampTz expires;
	bool		never;
	int			precision;
	int64		points;
	Datum		targets;
	Jsonb	   *stored;
	Jsonb	   *response;
	void	   *payload;
	Datum		values[7];
	char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int64		customers;

	now = clock_server_now(false, 0);
	parse_grant(request, &req);

	SPI_connect();
	stored = operation_begin(req.operation_id, "grant", request);
	if (stored != NULL)
	{
		response = spi_copy_varlena(stored, caller_cxt);
		SPI_finish();
		PG_RETURN_JSONB_P(response);
	}
	points = load_points(&req, &precision);
	expires = load_expiry(&req, now, &never);
	targets = load_targets(&req);

	values[0] = req.segment ? CStringGetTextDatum(req.segment) : (Datum) 0;
	nulls[0] = req.segment ? ' ' : 'n';
	values[1] = targets;
	nulls[1] = req.segment ? 'n' : ' ';

	/*
	 * every customer's row, in id order, as a purchase locks its one; the
	 * ids locked are the grant's customers (one array, handed to the grant
	 * below rather than computed a second time)
	 */
	if (spi_exec(saved_batch_plan(&lock_plan,
								  "SELECT pg_catalog.array_agg(s.id) FROM ("
								  "SELECT c.id FROM loyalty.customer c"
								  " WHERE c.id IN (" GRANT_TARGETS ")"
								  " ORDER BY c.id FOR UPDATE OF c) s",
								  2, (Oid[]) {TEXTOID, INT8ARRAYOID}),
				 values, nulls, false, 0) != 1)
		elog(ERROR, "grant_points: locking the customers returned no row");
	{
		bool		isnull;
		Datum		locked = spi_datum(0, 1, &isnull);

		/* NULL: nobody (an empty segment); the grant then writes nothing */
		targets = isnull ? (Datum) 0 : PointerGetDatum(spi_copy_varlena(DatumGetPointer(locked),
																		 CurrentMemoryContext));
		nulls[1] = isnull ? 'n' : ' ';
	}

	values[2] = CStringGetTextDatum(req.account);
	values[3] = DirectFunctionCall3(numeric_in,
									CStringGetDatum(scaled_to_cstring(points, precision)),
									ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	values[4] = CStringGetTextDatum(req.operation_id);
	values[5] = TimestampTzGetDatum(now);
	values[6] = TimestampTzGetDatum(expires);
	nulls[6] = never ? 'n' : ' ';

	/* the event's payload is the same for every customer: built once */
	if (SPI_execute_with_args("SELECT pg_catalog.jsonb_build_object("
							  "'account', $1, 'points', $2, 'operation_id', $3,"
							  " 'available_at', $4, 'expires_at', $5, 'reason', $6)",
							  6, (Oid[]) {TEXTOID, NUMERICOID, TEXTOID, TIMESTAMPTZOID,
							  TIMESTAMPTZOID, TEXTOID},
							  (Datum[]) {values[2], values[3], values[4], values[5],
							  values[6], CStringGetTextDatum(req.reason)},
							  (char[]) {' ', ' ', ' ', ' ', nulls[6], ' '}, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "grant_points: building the event's payload failed");
	{
		bool		isnull;

		payload = spi_copy_varlena(DatumGetPointer(spi_datum(0, 1, &isnull)),
								   CurrentMemoryContext);
	}

	/*
	 * One statement over the locked ids, planned for them (a custom plan:
	 * the planner knows how many there are, and joins them by hash).
	 */
	(void) spi_exec(saved_batch_plan(&grant_plan,
									 "WITH t AS (SELECT pg_catalog.unnest($1::int8[]) AS customer_id),"
									 " debt AS ("
									 "  SELECT l.id, l.customer_id, -l.remaining AS owed,"
									 "         sum(-l.remaining) OVER (PARTITION BY l.customer_id ORDER BY l.id) AS running"
									 "    FROM loyalty.lot l JOIN t ON t.customer_id = l.customer_id"
									 "   WHERE l.account = $2 AND l.remaining < 0"
									 "), pay AS ("
									 "  SELECT d.id, d.customer_id, least(d.owed, $3 - (d.running - d.owed)) AS x"
									 "    FROM debt d WHERE d.running - d.owed < $3"
									 "), repaid AS ("
									 "  UPDATE loyalty.lot l SET remaining = l.remaining + p.x"
									 "    FROM pay p WHERE l.id = p.id RETURNING l.id, l.customer_id, p.x"
									 "), repay_entries AS ("
									 "  INSERT INTO loyalty.ledger_entry"
									 "         (customer_id, account, lot_id, operation_id, kind, points, at)"
									 "  SELECT r.customer_id, $2, r.id, $4, 'repay', r.x, $5 FROM repaid r"
									 "), rest AS ("
									 "  SELECT t.customer_id, $3 - coalesce(p.paid, 0) AS v"
									 "    FROM t LEFT JOIN (SELECT customer_id, sum(x) AS paid FROM pay"
									 "                       GROUP BY customer_id) p USING (customer_id)"
									 "), new_lot AS ("
									 "  INSERT INTO loyalty.lot (customer_id, account, amount, remaining,"
									 "         earned_at, available_at, expires_at, operation_id, announced_at)"
									 "  SELECT r.customer_id, $2, r.v, r.v, $5, $5, $6, $4, $5 FROM rest r WHERE r.v > 0"
									 "  RETURNING id, customer_id, amount"
									 "), earn_entries AS ("
									 "  INSERT INTO loyalty.ledger_entry"
									 "         (customer_id, account, lot_id, operation_id, kind, points, at)"
									 "  SELECT n.customer_id, $2, n.id, $4, 'adjust', n.amount, $5 FROM new_lot n"
									 "), events AS ("
									 "  INSERT INTO loyalty.event (customer_id, kind, payload)"
									 "  SELECT t.customer_id, 'points_earned', $7 FROM t"
									 ") SELECT count(*) FROM t",
									 7, (Oid[]) {INT8ARRAYOID, TEXTOID, NUMERICOID, TEXTOID,
									 TIMESTAMPTZOID, TIMESTAMPTZOID, JSONBOID}),
					(Datum[]) {targets, values[2], values[3], values[4],
					values[5], values[6], PointerGetDatum(payload)},
					(char[]) {nulls[1], ' ', ' ', ' ', ' ', nulls[6], ' '},
					false, 1);
	customers = spi_int8(0, 1, 0);

	if (SPI_execute_with_args("SELECT pg_catalog.jsonb_build_object('operation_id', $1, 'account', $2,"
							  " 'points', $3, 'customers', $4, 'total_points', $3 * $4,"
							  " 'expires_at', $5, 'reason', $6)",
							  6, (Oid[]) {TEXTOID, TEXTOID, NUMERICOID, INT8OID, TIMESTAMPTZOID, TEXTOID},
							  (Datum[]) {values[4], values[2], values[3], Int64GetDatum(customers),
							  values[6], CStringGetTextDatum(req.reason)},
							  (char[]) {' ', ' ', ' ', ' ', nulls[6], ' '}, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "grant_points: building the response failed");
	{
		bool		isnull;

		response = spi_copy_varlena(DatumGetJsonbP(spi_datum(0, 1, &isnull)), caller_cxt);
	}
	operation_finish(req.operation_id, 0, response);
	SPI_finish();
	PG_RETURN_JSONB_P(response);
}
