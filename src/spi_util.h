/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  The one SPI idiom of the extension (see spi_util.c): prepare once,
 *	  execute and check, read columns of the result, copy out.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_SPI_UTIL_H
#define LOYALTY_SPI_UTIL_H

#include "datatype/timestamp.h"
#include "executor/spi.h"

extern SPIPlanPtr saved_plan(SPIPlanPtr *slot, const char *sql, int nargs,
							 Oid *argtypes);
extern SPIPlanPtr saved_batch_plan(SPIPlanPtr *slot, const char *sql,
								   int nargs, Oid *argtypes);

/* execute and check */
extern uint64 spi_exec(SPIPlanPtr plan, Datum *values, const char *nulls,
					   bool read_only, long count);
extern uint64 spi_query(const char *sql);

/* columns of row `row` of the last result (SPI_tuptable), 1-based */
extern bool spi_isnull(uint64 row, int col);
extern Datum spi_datum(uint64 row, int col, bool *isnull);
extern int64 spi_int8(uint64 row, int col, int64 if_null);
extern int32 spi_int4(uint64 row, int col, int32 if_null);
extern bool spi_bool(uint64 row, int col, bool if_null);
extern TimestampTz spi_timestamptz(uint64 row, int col, TimestampTz if_null);
extern int64 spi_scaled(uint64 row, int col, int scale, int64 if_null);
extern int64 spi_scaled_round(uint64 row, int col, int scale, int64 if_null);
extern char *spi_text(uint64 row, int col, MemoryContext cxt);
extern char **spi_text_array(uint64 row, int col, MemoryContext cxt, int *n);

/* copy a varlena (a jsonb, a text) out of SPI's memory into cxt */
extern void *spi_copy_varlena(const void *value, MemoryContext cxt);

#endif							/* LOYALTY_SPI_UTIL_H */
