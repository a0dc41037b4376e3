/*-------------------------------------------------------------------------
 *
 * operations.h
 *	  Idempotent operations (SPEC section 7): every writing call carries an
 *	  operation_id; replaying the same request returns the stored response
 *	  and changes nothing, the same id with a different request is LY003.
 *
 * Call operation_begin first thing (inside SPI): it claims the id by
 * inserting its row, waiting for a concurrent claimant of the same id to
 * finish.  When it returns a response the call is a replay: return it and do
 * nothing else.  Otherwise do the work and call operation_finish with the
 * response.  Requests are compared as jsonb (key order does not matter).
 *
 * A writer that knows its response before writing anything that references
 * the operation, and that locks a row every concurrent request with the
 * same id locks too (a purchase: its customer), calls operation_lookup
 * instead (same replay, no waiting), takes that lock, calls it again, and
 * then operation_record once with the customer and response.  Nothing here
 * takes a lock in the shared lock table (see operations.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_OPERATIONS_H
#define LOYALTY_OPERATIONS_H

#include "utils/jsonb.h"

extern Jsonb *operation_begin(const char *operation_id, const char *kind,
							  Jsonb *request);
extern Jsonb *operation_lookup(const char *operation_id, const char *kind,
							   Jsonb *request);
extern void operation_record(const char *operation_id, const char *kind,
							 Jsonb *request, int64 customer_id, Jsonb *response);
extern void operation_finish(const char *operation_id, int64 customer_id,
							 Jsonb *response);

#endif							/* LOYALTY_OPERATIONS_H */
