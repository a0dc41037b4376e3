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

#include "utils/jsonb.h"

#include "engine.h"

/* A tiny jsonb builder shared with check_api.c and facts.c. */
typedef struct JsonBuilder
{
	JsonbParseState *state;
	JsonbValue *result;
} JsonBuilder;

extern void jb_begin_object(JsonBuilder *b);
extern void jb_end_object(JsonBuilder *b);
extern void jb_begin_array(JsonBuilder *b);
extern void jb_end_array(JsonBuilder *b);
extern void jb_key(JsonBuilder *b, const char *key);
/* values: after jb_key in an object, or as elements in an array */
extern void jb_string(JsonBuilder *b, bool elem, const char *s);
extern void jb_null(JsonBuilder *b, bool elem);
extern void jb_bool(JsonBuilder *b, bool elem, bool v);
extern void jb_int(JsonBuilder *b, bool elem, int64 v);
extern void jb_scaled(JsonBuilder *b, bool elem, int64 v, int scale);
extern void jb_money(JsonBuilder *b, bool elem, int64 v);
extern void jb_trimmed(JsonBuilder *b, bool elem, int64 v, int scale);
extern void jb_qty(JsonBuilder *b, bool elem, int64 qty);
extern void jb_points(JsonBuilder *b, bool elem, int64 points, int precision);
extern Jsonb *jb_finish(JsonBuilder *b);

/* a moment in ISO 8601 with the offset of time zone tz */
extern char *response_timestamp(TimestampTz t, pg_tz *tz);

/*
 * response_build makes the calculate/purchase response; operation_id is
 * added when not NULL (purchase).
 */
extern Jsonb *response_build(CheckResult *r, const char *operation_id);

#endif							/* LOYALTY_RESPONSE_H */
