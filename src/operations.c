/*-------------------------------------------------------------------------
 *
 * operations.c
 *	  Idempotent operations: claim an operation_id, replay a stored
 *	  response, refuse an id reused for a different request (LY003).
 *
 * The claim is an INSERT ... ON CONFLICT DO NOTHING into loyalty.operation.
 * A concurrent transaction claiming the same id waits on the primary key
 * until the first one ends: if it committed, the second sees its row and
 * returns the stored response; if it rolled back, the second proceeds.
 * The response is written at the end of the same transaction, so nobody
 * ever sees a claimed operation without its response.
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

/*
 * operation_begin claims operation_id for a request of the given kind.
 * Returns NULL when the operation is new (go ahead), or the stored response
 * when the same request was done before (a replay: change nothing).  The
 * same id with another kind or request is LY003.
 */
Jsonb *
operation_begin(const char *operation_id, const char *kind, Jsonb *request)
{
	Oid			types[3] = {TEXTOID, TEXTOID, JSONBOID};
	Datum		values[3];
	SPIPlanPtr	plan;
	int			rc;
	bool		isnull;
	Datum		response;

	values[0] = CStringGetTextDatum(operation_id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = JsonbPGetDatum(request);

	plan = saved_plan(&claim_plan,
						  "INSERT INTO loyalty.operation (operation_id, kind, request)"
						  " VALUES ($1, $2, $3) ON CONFLICT (operation_id) DO NOTHING",
						  3, types);
	rc = SPI_execute_plan(plan, values, NULL, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "claiming operation failed: %s", SPI_result_code_string(rc));
	if (SPI_processed == 1)
		return NULL;

	plan = saved_plan(&stored_plan,
						  "SELECT response, kind = $2 AND request = $3"
						  "  FROM loyalty.operation WHERE operation_id = $1",
						  3, types);
	rc = SPI_execute_plan(plan, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "operation \"%s\" vanished", operation_id);

	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
									SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_OPERATION_CONFLICT),
				 errmsg("operation_id \"%s\" was already used for a different request",
						operation_id),
				 errdetail("An operation_id identifies one request; a retry must send the same request."),
				 errhint("Use a new operation_id for a new operation.")));

	response = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
							 &isnull);
	if (isnull)
		elog(ERROR, "operation \"%s\" has no response", operation_id);
	/* detoast here, then copy out of SPI memory into the caller's context */
	response = PointerGetDatum(DatumGetJsonbP(response));
	return DatumGetJsonbP(SPI_datumTransfer(response, false, -1));
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
	int			rc;

	values[0] = CStringGetTextDatum(operation_id);
	values[1] = Int64GetDatum(customer_id);
	if (customer_id <= 0)
		nulls[1] = 'n';
	values[2] = JsonbPGetDatum(response);

	plan = saved_plan(&finish_plan,
						  "UPDATE loyalty.operation SET customer_id = $2, response = $3"
						  " WHERE operation_id = $1",
						  3, types);
	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != SPI_OK_UPDATE || SPI_processed != 1)
		elog(ERROR, "operation \"%s\" was not claimed", operation_id);
}
