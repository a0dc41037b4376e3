/*-------------------------------------------------------------------------
 *
 * response.h
 *	  The check API's JSON responses (SPEC section 7), built directly as
 *	  jsonb.  Money is a JSON number with exactly two decimals (399.80),
 *	  points have the program's points precision, quantities as many
 *	  decimals as they need (2, 0.75).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_RESPONSE_H
#define LOYALTY_RESPONSE_H

#include "pgtime.h"
#include "utils/jsonb.h"

#include "check.h"
#include "jsonb_builder.h"	/* refund.c builds its response through this header */

/* a moment in ISO 8601 with the offset of time zone tz */
extern char *response_timestamp(TimestampTz t, pg_tz *tz);

/*
 * response_build makes the calculate/purchase response; operation_id is
 * added when not NULL (purchase).
 */
extern Jsonb *response_build(CheckResult *r, const char *operation_id);
/* the same response as JSON text (loyalty.calculate_json) */
extern text *response_build_text(CheckResult *r, const char *operation_id);

#endif							/* LOYALTY_RESPONSE_H */
