/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  Saved SPI plans for the extension's hot paths.
 *
 * Every statement the check and the ledger run is prepared once per backend
 * and kept.  Plans are forced generic: their shape does not depend on the
 * parameters (a customer, a lot, an operation), and the plan cache would
 * otherwise plan many of them anew on every call, which costs more than
 * running them.  Statements over a batch of rows are the exception
 * (saved_batch_plan).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "spi_util.h"

#include "nodes/parsenodes.h"

/*
 * keep_plan returns the plan in *slot, preparing it with cursor_options and
 * keeping it on first use.  Must run inside an SPI connection.
 */
static SPIPlanPtr
keep_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes,
		  int cursor_options)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		SPI_keepplan(plan);
		*slot = plan;
	}
	return *slot;
}

/*
 * saved_plan returns the plan in *slot, preparing and keeping it on first
 * use (a generic plan, see above).  Must run inside an SPI connection.
 */
SPIPlanPtr
saved_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	return keep_plan(slot, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
}

/*
 * saved_batch_plan is saved_plan for a statement over a batch of rows
 * passed as arrays: the statement is parsed once, but every execution is
 * planned for its own parameters (a custom plan).  The planner then knows
 * how many rows the batch holds and how large its tables are now; a
 * generic plan made while a table was small keeps scanning all of it for
 * every batch after it has grown.  Planning costs little next to a batch.
 */
SPIPlanPtr
saved_batch_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	return keep_plan(slot, sql, nargs, argtypes, CURSOR_OPT_CUSTOM_PLAN);
}
