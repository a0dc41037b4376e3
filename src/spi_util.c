/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *	  The one SPI idiom of the extension: prepare once (saved_plan,
 *	  saved_batch_plan), execute and check (spi_exec), read the columns of
 *	  the result by type (spi_int8, spi_text, ...), copy out of SPI's memory
 *	  (spi_text and spi_text_array into a given context, spi_copy_varlena).
 *	  A failure of SPI itself cannot be caused by a client: it is an
 *	  internal error (elog).
 *
 * Every statement the check and the ledger run is prepared once per backend
 * and kept.  Plans are forced generic: their shape does not depend on the
 * parameters (a customer, a lot, an operation), and the plan cache would
 * otherwise plan many of them anew on every call, which costs more than
 * running them.  Statements over a batch of rows are the exception
 * (saved_batch_plan).
 *
 * A generic plan is made as for a large program: every table it reads
 * counts as at least LARGE_TUPLES rows (a planner hook, active only while
 * this file makes a plan), and sequential scans are disabled.  These
 * statements reach their rows through an index (by customer, lot,
 * operation); a plan made while a table was empty or small (a fresh
 * program, a table vacuumed while empty) otherwise scans the whole table,
 * or walks a whole index, on every later call.  Inside one transaction
 * that runs many operations (a bulk grant over a segment) the table grows
 * with every call and the plan is never made again, so each call read
 * everything the calls before it wrote: quadratic time (issue 14 item 5).
 * The plan is made anew the same way whenever PostgreSQL invalidated it.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "spi_util.h"

#include "catalog/pg_type.h"
#include "nodes/parsenodes.h"
#include "optimizer/plancat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/timestamp.h"

#include "money.h"

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

/* the least number of rows a table counts as while a saved plan is made */
#define LARGE_TUPLES	1000000.0
/* ... and the pages they fill */
#define LARGE_PAGES		10000

static get_relation_info_hook_type prev_get_relation_info = NULL;
static bool hook_installed = false;
static bool planning_saved = false;

/*
 * plan_as_large is the get_relation_info hook: while a saved plan is made,
 * a table and its indexes smaller than LARGE_TUPLES rows count as that
 * large, so that the plan is the one a program in use needs.
 */
static void
plan_as_large(PlannerInfo *root, Oid relid, bool inhparent, RelOptInfo *rel)
{
	ListCell   *lc;

	if (prev_get_relation_info)
		prev_get_relation_info(root, relid, inhparent, rel);
	if (!planning_saved || rel->tuples >= LARGE_TUPLES)
		return;
	rel->tuples = LARGE_TUPLES;
	rel->pages = Max(rel->pages, LARGE_PAGES);
	foreach(lc, rel->indexlist)
	{
		IndexOptInfo *index = lfirst(lc);

		index->tuples = LARGE_TUPLES;
		index->pages = Max(index->pages, LARGE_PAGES / 10);
	}
}

/*
 * plan_index_driven makes the generic plan of a kept plan now, as for a
 * large program (see the file header), unless it has a valid one already.
 * Pending invalidations are taken first, so that a plan PostgreSQL is
 * about to throw away is made again here, not with the table's own size
 * when the plan next runs.
 */
static void
plan_index_driven(SPIPlanPtr plan)
{
	ListCell   *lc;
	int			nest;
	CachedPlan *cplan = NULL;

	AcceptInvalidationMessages();
	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *source = lfirst(lc);

		if (source->is_valid && source->gplan != NULL && source->gplan->is_valid)
			return;
	}

	if (!hook_installed)
	{
		prev_get_relation_info = get_relation_info_hook;
		get_relation_info_hook = plan_as_large;
		hook_installed = true;
	}
	nest = NewGUCNestLevel();
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	planning_saved = true;
	PG_TRY();
	{
		cplan = SPI_plan_get_cached_plan(plan);
	}
	PG_FINALLY();
	{
		planning_saved = false;
	}
	PG_END_TRY();
	if (cplan != NULL)
		ReleaseCachedPlan(cplan, CurrentResourceOwner);
	AtEOXact_GUC(true, nest);
}

/*
 * saved_plan returns the plan in *slot, preparing and keeping it on first
 * use (a generic plan made for index access, see above).  Must run inside
 * an SPI connection.
 */
SPIPlanPtr
saved_plan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = keep_plan(slot, sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);

	plan_index_driven(plan);
	return plan;
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

/*
 * spi_exec executes a saved plan (count rows at most, 0 = all) and returns
 * the number of rows it processed; a failure of SPI is an internal error.
 */
uint64
spi_exec(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only,
		 long count)
{
	int			rc = SPI_execute_plan(plan, values, nulls, read_only, count);

	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * spi_query runs a read-only query given as text, unprepared (the loads of
 * the configuration cache, each run once per cache build), and returns the
 * number of rows; a failure of SPI is an internal error.  Unlike spi_exec
 * it leaves the caller in its own memory context: SPI returns in its
 * procedure context, and the caller may be building something elsewhere.
 */
uint64
spi_query(const char *sql)
{
	MemoryContext cxt = CurrentMemoryContext;
	int			rc = SPI_execute(sql, true, 0);

	MemoryContextSwitchTo(cxt);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* spi_datum returns column col of row row of the last result. */
Datum
spi_datum(uint64 row, int col, bool *isnull)
{
	if (SPI_tuptable == NULL || row >= SPI_processed)
		elog(ERROR, "SPI result has no row " UINT64_FORMAT, row);
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

/* spi_isnull says whether column col of row row is NULL. */
bool
spi_isnull(uint64 row, int col)
{
	bool		isnull;

	(void) spi_datum(row, col, &isnull);
	return isnull;
}

/* spi_int8 reads a bigint column (if_null when NULL). */
int64
spi_int8(uint64 row, int col, int64 if_null)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	return isnull ? if_null : DatumGetInt64(d);
}

/* spi_int4 reads an integer column (if_null when NULL). */
int32
spi_int4(uint64 row, int col, int32 if_null)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	return isnull ? if_null : DatumGetInt32(d);
}

/* spi_bool reads a boolean column (if_null when NULL). */
bool
spi_bool(uint64 row, int col, bool if_null)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	return isnull ? if_null : DatumGetBool(d);
}

/* spi_timestamptz reads a timestamptz column (if_null when NULL). */
TimestampTz
spi_timestamptz(uint64 row, int col, TimestampTz if_null)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);

	return isnull ? if_null : DatumGetTimestampTz(d);
}

/*
 * spi_scaled reads a numeric column in units of 10^-scale (money in minor
 * units with scale 2, quantities in thousandths with 3); if_null when NULL.
 * A stored value that does not fit is an internal error: the tables'
 * domains bound every amount the extension writes.
 */
int64
spi_scaled(uint64 row, int col, int scale, int64 if_null)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);
	int64		v;

	if (isnull)
		return if_null;
	if (!numeric_to_scaled(DatumGetNumeric(d), scale, &v))
		elog(ERROR, "stored amount out of range in column %d", col);
	return v;
}

/*
 * spi_scaled_round is spi_scaled for a value that may have more decimals
 * than scale (a configured percent, a price): rounded half up first.
 */
int64
spi_scaled_round(uint64 row, int col, int scale, int64 if_null)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);
	int64		v;

	if (isnull)
		return if_null;
	d = DirectFunctionCall2(numeric_round, d, Int32GetDatum(scale));
	if (!numeric_to_scaled(DatumGetNumeric(d), scale, &v))
		elog(ERROR, "configuration value out of range");
	return v;
}

/*
 * spi_text reads a text column as a C string allocated in cxt (NULL when
 * NULL), so it outlives SPI_finish.
 */
char *
spi_text(uint64 row, int col, MemoryContext cxt)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);
	MemoryContext old;
	char	   *s;

	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(cxt);
	s = TextDatumGetCString(d);
	MemoryContextSwitchTo(old);
	return s;
}

/*
 * spi_text_array reads a text[] column as C strings allocated in cxt; *n
 * gets their number (0 and NULL for a NULL array; NULL elements are NULL).
 */
char **
spi_text_array(uint64 row, int col, MemoryContext cxt, int *n)
{
	bool		isnull;
	Datum		d = spi_datum(row, col, &isnull);
	MemoryContext old;
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;

	*n = 0;
	if (isnull)
		return NULL;
	old = MemoryContextSwitchTo(cxt);
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, n);
	out = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	MemoryContextSwitchTo(old);
	return out;
}

/*
 * spi_copy_varlena copies a (detoasted) varlena value, such as a response
 * jsonb, into cxt.
 */
void *
spi_copy_varlena(const void *value, MemoryContext cxt)
{
	void	   *copy = MemoryContextAlloc(cxt, VARSIZE(value));

	memcpy(copy, value, VARSIZE(value));
	return copy;
}
