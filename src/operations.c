/*-------------------------------------------------------------------------
 *
 * operations.c
 *	  Idempotent operations: claim an operation_id, replay a stored
 *	  response, refuse an id reused for a different request (LY003).
 *
 * The operation table's unique key is what makes a concurrent request with
 * the same id wait: INSERT ... ON CONFLICT DO NOTHING waits for a
 * concurrent transaction that inserted the same id and then sees its
 * outcome.  If it committed, the second finds its row and returns the
 * stored response (LY003 for another request); if it rolled back, the
 * second inserts.  The wait is on the other transaction's id, not on a
 * lock of its own: an operation leaves nothing in the shared lock table,
 * so one transaction may run any number of them (issue 14 item 5; 0.8
 * took an advisory lock per id, held until commit, and ran out of shared
 * memory after some 8,000-12,000 operations in one transaction).
 *
 * Two ways to write the row:
 *	- operation_begin inserts it at once (the claim) and operation_finish
 *	  stores the response at the end: for writers whose rows reference the
 *	  operation before the response is known (refund, adjust), and for
 *	  writers with nothing else to serialize on (an anonymous purchase);
 *	- operation_lookup only looks, and operation_record inserts the row
 *	  with its customer and response in one go, before anything that
 *	  references it: a purchase of an identified customer, whose response
 *	  is complete before it writes.  One row version instead of two, and no
 *	  update of an indexed column.  Such a writer locks its customer's row
 *	  between two lookups: a concurrent request with the same id is a
 *	  request for the same customer, so the customer lock makes it wait,
 *	  and the second lookup sees what it committed.  When the same id
 *	  comes with another customer nothing serializes the two before
 *	  operation_record, whose insert then waits and reports LY003.
 *
 * Either way the response is written in the same transaction, so nobody
 * ever sees an operation without its response.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "operations.h"
#include "spi_util.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr stored_plan = NULL;
static SPIPlanPtr finish_plan = NULL;
static SPIPlanPtr record_plan = NULL;

/*
 * stored_response returns the response stored for operation_id, or NULL
 * when there is no such operation; LY003 when it was another request.
 */
static Jsonb *
stored_response(Datum *values, const char *operation_id)
{
	Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
	SPIPlanPtr	plan;
	bool		isnull;
	Datum		response;

	plan = saved_plan(&stored_plan,
					  "SELECT response, kind = $2 AND request = $3"
					  "  FROM loyalty.operation WHERE operation_id = $1",
					  3, types);
	if (spi_exec(plan, values, NULL, false, 1) == 0)
		return NULL;

	if (!spi_bool(0, 2, false))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OPERATION_CONFLICT),
				 errmsg("operation_id \"%s\" was already used for a different request",
						operation_id),
				 errdetail("An operation_id identifies one request; a retry must send the same request."),
				 errhint("Use a new operation_id for a new operation.")));

	response = spi_datum(0, 1, &isnull);
	if (isnull)
		elog(ERROR, "operation \"%s\" has no response", operation_id);
	/* detoast here, then copy out of SPI memory into the caller's context */
	response = PointerGetDatum(DatumGetJsonbP(response));
	return DatumGetJsonbP(SPI_datumTransfer(response, false, -1));
}

/*
 * operation_begin claims operation_id for a request of the given kind by
 * inserting its row.  Returns NULL when the operation is new (go ahead), or
 * the stored response when the same request was done before (a replay:
 * change nothing).  The same id with another kind or request is LY003.
 */
Jsonb *
operation_begin(const char *operation_id, const char *kind, Jsonb *request)
{
	Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		values[3];

	values[0] = CStringGetTextDatum(operation_id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = JsonbPGetDatum(request);

	/* waits for a concurrent claimant of the same id (see above) */
	if (spi_exec(saved_plan(&claim_plan,
							"INSERT INTO loyalty.operation (operation_id, kind, request)"
							" VALUES ($1, $2, $3) ON CONFLICT (operation_id) DO NOTHING",
							3, types),
				 values, NULL, false, 0) == 1)
		return NULL;
	return stored_response(values, operation_id);
}

/*
 * operation_lookup is operation_begin without the claim: it returns the
 * stored response of a replay (LY003 for another request with this id), or
 * NULL for a new operation, which the caller then writes with
 * operation_record before any row that references it.  It does not wait
 * for a concurrent request with the same id: the caller serializes on its
 * customer and looks again (see above).
 */
Jsonb *
operation_lookup(const char *operation_id, const char *kind, Jsonb *request)
{
	Datum		values[3];

	values[0] = CStringGetTextDatum(operation_id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = JsonbPGetDatum(request);
	return stored_response(values, operation_id);
}

/*
 * operation_record writes the row of an operation that operation_lookup
 * found new, with its customer and response.  Its insert waits for a
 * concurrent transaction that wrote the same id: if that one committed
 * another request, LY003 (and this transaction's writes roll back with the
 * error).  The same request committed concurrently, which the customer
 * lock otherwise rules out (the customer changed between the two, as by a
 * merge), or any such row under REPEATABLE READ, which does not see it, is
 * a serialization failure: sent again, the request finds that operation.
 */
void
operation_record(const char *operation_id, const char *kind, Jsonb *request,
				 int64 customer_id, Jsonb *response)
{
	Oid			types[5] = {TEXTOID, TEXTOID, JSONBOID, INT8OID, JSONBOID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	values[0] = CStringGetTextDatum(operation_id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = JsonbPGetDatum(request);
	values[3] = Int64GetDatum(customer_id);
	if (customer_id <= 0)
		nulls[3] = 'n';
	values[4] = JsonbPGetDatum(response);
	if (spi_exec(saved_plan(&record_plan,
							"INSERT INTO loyalty.operation (operation_id, kind, request,"
							" customer_id, response) VALUES ($1, $2, $3, $4, $5)"
							" ON CONFLICT (operation_id) DO NOTHING",
							5, types),
				 values, nulls, false, 0) == 1)
		return;
	/* LY003 when the row that won is another request's */
	(void) stored_response(values, operation_id);
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("operation_id \"%s\" was written by a concurrent transaction",
					operation_id),
			 errhint("Send the request again: it returns that operation's response.")));
}

/*
 * operation_finish stores the response of an operation claimed by
 * operation_begin in this transaction.
 */
void
operation_finish(const char *operation_id, int64 customer_id, Jsonb *response)
{
	Oid			types[3] = {TEXTOID, INT8OID, JSONBOID};
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	SPIPlanPtr	plan;

	values[0] = CStringGetTextDatum(operation_id);
	values[1] = Int64GetDatum(customer_id);
	if (customer_id <= 0)
		nulls[1] = 'n';
	values[2] = JsonbPGetDatum(response);

	plan = saved_plan(&finish_plan,
						  "UPDATE loyalty.operation SET customer_id = $2, response = $3"
						  " WHERE operation_id = $1",
						  3, types);
	if (spi_exec(plan, values, nulls, false, 0) != 1)
		elog(ERROR, "operation \"%s\" was not claimed", operation_id);
}
