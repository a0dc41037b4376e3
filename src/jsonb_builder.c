/*-------------------------------------------------------------------------
 *
 * jsonb_builder.c
 *	  A tiny jsonb builder (see jsonb_builder.h): values pushed in document
 *	  order straight into a JsonbParseState, numbers from scaled integers.
 *
 * It knows nothing of checks, the ledger or the database: the check
 * response, purchase facts, refunds and events all build their documents
 * with it.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "jsonb_builder.h"
#include "money.h"

/* push pushes a value as an object member value or an array element. */
static void
push(JsonBuilder *b, bool elem, JsonbValue *v)
{
	b->result = pushJsonbValue(&b->state, elem ? WJB_ELEM : WJB_VALUE, v);
}

/* jb_begin_object opens an object. */
void
jb_begin_object(JsonBuilder *b)
{
	b->result = pushJsonbValue(&b->state, WJB_BEGIN_OBJECT, NULL);
}

/* jb_end_object closes an object. */
void
jb_end_object(JsonBuilder *b)
{
	b->result = pushJsonbValue(&b->state, WJB_END_OBJECT, NULL);
}

/* jb_begin_array opens an array. */
void
jb_begin_array(JsonBuilder *b)
{
	b->result = pushJsonbValue(&b->state, WJB_BEGIN_ARRAY, NULL);
}

/* jb_end_array closes an array. */
void
jb_end_array(JsonBuilder *b)
{
	b->result = pushJsonbValue(&b->state, WJB_END_ARRAY, NULL);
}

/* jb_key adds an object key. */
void
jb_key(JsonBuilder *b, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	b->result = pushJsonbValue(&b->state, WJB_KEY, &v);
}

/* jb_string adds a string. */
void
jb_string(JsonBuilder *b, bool elem, const char *s)
{
	JsonbValue	v;

	if (s == NULL)
	{
		jb_null(b, elem);
		return;
	}
	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	push(b, elem, &v);
}

/* jb_null adds a null. */
void
jb_null(JsonBuilder *b, bool elem)
{
	JsonbValue	v;

	v.type = jbvNull;
	push(b, elem, &v);
}

/* jb_bool adds a boolean. */
void
jb_bool(JsonBuilder *b, bool elem, bool value)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = value;
	push(b, elem, &v);
}

/* jb_scaled adds a number given in 10^-scale units, with "scale" decimals. */
void
jb_scaled(JsonBuilder *b, bool elem, int64 value, int scale)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = scaled_to_numeric(value, scale);
	push(b, elem, &v);
}

/* jb_int adds a whole number. */
void
jb_int(JsonBuilder *b, bool elem, int64 value)
{
	jb_scaled(b, elem, value, 0);
}

/* jb_money adds money with exactly two decimals. */
void
jb_money(JsonBuilder *b, bool elem, int64 value)
{
	jb_scaled(b, elem, value, MONEY_SCALE);
}

/*
 * jb_trimmed adds a number given in 10^-scale units with the decimals it
 * needs (2, 0.75, 12.5).
 */
void
jb_trimmed(JsonBuilder *b, bool elem, int64 value, int scale)
{
	while (scale > 0 && value % 10 == 0)
	{
		value /= 10;
		scale--;
	}
	jb_scaled(b, elem, value, scale);
}

/* jb_qty adds a quantity with the decimals it needs (2, 0.75, 1.125). */
void
jb_qty(JsonBuilder *b, bool elem, int64 qty)
{
	jb_trimmed(b, elem, qty, QTY_SCALE);
}

/* jb_points adds points (hundredths inside) at the points precision. */
void
jb_points(JsonBuilder *b, bool elem, int64 points, int precision)
{
	if (precision == 0)
		jb_scaled(b, elem, points / 100, 0);
	else
		jb_scaled(b, elem, points, POINTS_SCALE);
}

/* jb_finish returns the built document. */
Jsonb *
jb_finish(JsonBuilder *b)
{
	return JsonbValueToJsonb(b->result);
}
