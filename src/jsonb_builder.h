/*-------------------------------------------------------------------------
 *
 * jsonb_builder.h
 *	  A tiny jsonb builder: objects, arrays, strings, numbers given as
 *	  scaled int64 (money with two decimals, points, quantities), pushed in
 *	  document order, then jb_finish.  Used by the check response, the
 *	  purchase facts, refund and the event outbox.
 *
 * It must not include the engine or anything that touches the database:
 * the ledger and the events compile against this header alone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_JSONB_BUILDER_H
#define LOYALTY_JSONB_BUILDER_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"

/*
 * A document being built; zero it ({0}) to start.  The open containers are
 * a stack of JsonbValue objects and arrays, filled in place: no
 * pushJsonbValue per field (issue 21).
 */
typedef struct JsonBuilder
{
	JsonbValue **stack;			/* open containers, innermost last */
	int			depth;
	int			stack_size;
	JsonbValue *result;			/* the root once closed */
	StringInfo	text;			/* text mode (jb_begin_text): JSON text here */
	bool		need_comma;		/* text mode: a value came before */
	bool		after_key;		/* text mode: a key waits for its value */
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

/*
 * Text mode: the same calls write JSON text (spaced as jsonb_out spaces it,
 * keys in the order given) instead of building jsonb; for a document that
 * leaves as json and would only be printed.
 */
extern void jb_begin_text(JsonBuilder *b);
extern text *jb_finish_text(JsonBuilder *b);

#endif							/* LOYALTY_JSONB_BUILDER_H */
