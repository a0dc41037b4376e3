/*-------------------------------------------------------------------------
 *
 * spi_util.h
 *	  Saved SPI plans for the extension's hot paths (see spi_util.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_SPI_UTIL_H
#define LOYALTY_SPI_UTIL_H

#include "executor/spi.h"

extern SPIPlanPtr saved_plan(SPIPlanPtr *slot, const char *sql, int nargs,
							 Oid *argtypes);
extern SPIPlanPtr saved_batch_plan(SPIPlanPtr *slot, const char *sql,
								   int nargs, Oid *argtypes);

#endif							/* LOYALTY_SPI_UTIL_H */
