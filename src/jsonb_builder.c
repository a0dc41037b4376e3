/*-------------------------------------------------------------------------
 *
 * jsonb_builder.c
 *	  A tiny jsonb builder (see jsonb_builder.h): values added in document
 *	  order to a tree of JsonbValue containers, numbers from scaled
 *	  integers, the binary jsonb made once at the end.
 *
 * pushJsonbValue copies every value into its parse state and sorts and
 * de-duplicates every object when it closes; numbers went through
 * NumericVar arithmetic.  For a check response of a hundred fields that
 * was a fifth of a calculate (issue 21).  Here each container is an array
 * grown in place, an object is sorted only when its keys were not added in
 * jsonb's order (shorter first, then bytewise), and numbers are written in
 * numeric's storage form directly (scaled_to_numeric).
 *
 * It knows nothing of checks, the ledger or the database: the check
 * response, purchase facts, refunds and events all build their documents
 * with it.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "jsonb_builder.h"
#include "money.h"

#define JB_INITIAL_SLOTS 8

/* open pushes a new empty container of the given type. */
static void
open_container(JsonBuilder *b, enum jbvType type)
{
	JsonbValue *c = palloc(sizeof(JsonbValue));

	c->type = type;
	if (type == jbvObject)
	{
		c->val.object.nPairs = 0;
		c->val.object.pairs = palloc(sizeof(JsonbPair) * JB_INITIAL_SLOTS);
	}
	else
	{
		c->val.array.nElems = 0;
		c->val.array.rawScalar = false;
		c->val.array.elems = palloc(sizeof(JsonbValue) * JB_INITIAL_SLOTS);
	}
	if (b->depth == b->stack_size)
	{
		b->stack_size = b->stack_size == 0 ? 8 : b->stack_size * 2;
		b->stack = b->stack == NULL
			? palloc(sizeof(JsonbValue *) * b->stack_size)
			: repalloc(b->stack, sizeof(JsonbValue *) * b->stack_size);
	}
	b->stack[b->depth++] = c;
}

/* is_pow2 tells whether n (> 0) is a power of two: a full slot array. */
static inline bool
is_pow2(int n)
{
	return (n & (n - 1)) == 0;
}

/*
 * slot returns where the next value goes: the value of the object's last
 * key, or a new element of the array.
 */
static JsonbValue *
slot(JsonBuilder *b)
{
	JsonbValue *c;

	Assert(b->depth > 0);
	c = b->stack[b->depth - 1];
	if (c->type == jbvObject)
	{
		Assert(c->val.object.nPairs > 0);
		return &c->val.object.pairs[c->val.object.nPairs - 1].value;
	}
	if (c->val.array.nElems >= JB_INITIAL_SLOTS && is_pow2(c->val.array.nElems))
		c->val.array.elems = repalloc(c->val.array.elems,
									  sizeof(JsonbValue) * c->val.array.nElems * 2);
	return &c->val.array.elems[c->val.array.nElems++];
}

/* key_cmp orders keys as jsonb does: shorter first, then bytewise. */
static int
key_cmp(const JsonbValue *a, const JsonbValue *b)
{
	if (a->val.string.len != b->val.string.len)
		return a->val.string.len > b->val.string.len ? 1 : -1;
	return memcmp(a->val.string.val, b->val.string.val, a->val.string.len);
}

/* pair_cmp orders pairs by key, the later one first among equal keys. */
static int
pair_cmp(const void *a, const void *b)
{
	const JsonbPair *pa = a;
	const JsonbPair *pb = b;
	int			c = key_cmp(&pa->key, &pb->key);

	if (c != 0)
		return c;
	return pa->order > pb->order ? -1 : 1;
}

/*
 * sort_object puts the pairs in jsonb's key order when they were not added
 * in it, keeping the last of equal keys as pushJsonbValue does.
 */
static void
sort_object(JsonbValue *o)
{
	JsonbPair  *p = o->val.object.pairs;
	int			n = o->val.object.nPairs;
	int			i;
	int			kept;

	for (i = 1; i < n; i++)
		if (key_cmp(&p[i - 1].key, &p[i].key) >= 0)
			break;
	if (i >= n)
		return;
	qsort(p, n, sizeof(JsonbPair), pair_cmp);
	kept = 1;
	for (i = 1; i < n; i++)
		if (key_cmp(&p[kept - 1].key, &p[i].key) != 0)
			p[kept++] = p[i];
	o->val.object.nPairs = kept;
}

/* close_container closes the innermost container and places it. */
static void
close_container(JsonBuilder *b, enum jbvType type)
{
	JsonbValue *c;

	Assert(b->depth > 0);
	c = b->stack[--b->depth];
	if (c->type != type)
		elog(ERROR, "jsonb builder: closing a container of another type");
	if (type == jbvObject)
		sort_object(c);
	if (b->depth == 0)
		b->result = c;
	else
		*slot(b) = *c;
}

/* ---------------------------------------------------------------------
 * Text mode
 * ---------------------------------------------------------------------
 */

/* jb_begin_text starts a document written as JSON text. */
void
jb_begin_text(JsonBuilder *b)
{
	b->text = makeStringInfo();
	b->need_comma = false;
}

/*
 * text_value starts a value: ", " before an array element that follows
 * another (a key wrote its own).
 */
static inline void
text_value(JsonBuilder *b)
{
	if (!b->after_key && b->need_comma)
		appendBinaryStringInfo(b->text, ", ", 2);
	b->after_key = false;
	b->need_comma = true;
}

/* text_open opens a container in text mode. */
static void
text_open(JsonBuilder *b, char c)
{
	text_value(b);
	appendStringInfoChar(b->text, c);
	b->need_comma = false;
	b->depth++;
}

/* text_close closes a container in text mode. */
static void
text_close(JsonBuilder *b, char c)
{
	Assert(b->depth > 0);
	appendStringInfoChar(b->text, c);
	b->need_comma = true;
	b->depth--;
}

/* text_scaled writes value 10^-scale units with exactly "scale" decimals. */
static void
text_scaled(StringInfo buf, int64 value, int scale)
{
	uint64		mag = value < 0 ? -(uint64) value : (uint64) value;
	char		digits[32];
	int			n = 0;
	int			i;

	if (scale < 0 || scale > 8)
		elog(ERROR, "jsonb builder: scale %d out of range", scale);

	/* the digits, least significant first, at least scale + 1 of them */
	do
	{
		digits[n++] = '0' + (char) (mag % 10);
		mag /= 10;
	} while (mag > 0 || n <= scale);
	enlargeStringInfo(buf, n + 2);
	if (value < 0)
		buf->data[buf->len++] = '-';
	for (i = n - 1; i >= 0; i--)
	{
		buf->data[buf->len++] = digits[i];
		if (i == scale && scale > 0)
			buf->data[buf->len++] = '.';
	}
	buf->data[buf->len] = '\0';
}

/*
 * text_string writes s as a JSON string, escaped as escape_json escapes it
 * (so that the text is jsonb_out's), copying the runs between escapes
 * whole rather than a character at a time.
 */
static void
text_string(StringInfo buf, const char *s)
{
	const char *run = s;
	const char *p;

	appendStringInfoCharMacro(buf, '"');
	for (p = s; *p; p++)
	{
		unsigned char c = (unsigned char) *p;
		const char *esc;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		appendBinaryStringInfo(buf, run, p - run);
		run = p + 1;
		switch (c)
		{
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			default:
				appendStringInfo(buf, "\\u%04x", (int) c);
				continue;
		}
		appendBinaryStringInfo(buf, esc, 2);
	}
	appendBinaryStringInfo(buf, run, p - run);
	appendStringInfoCharMacro(buf, '"');
}

/* jb_finish_text returns the written document as a json datum. */
text *
jb_finish_text(JsonBuilder *b)
{
	if (b->text == NULL || b->depth != 0)
		elog(ERROR, "jsonb builder: the document is not complete");
	return cstring_to_text_with_len(b->text->data, b->text->len);
}


/* ---------------------------------------------------------------------
 * The calls
 * ---------------------------------------------------------------------
 */

/* jb_begin_object opens an object. */
void
jb_begin_object(JsonBuilder *b)
{
	if (b->text)
		text_open(b, '{');
	else
		open_container(b, jbvObject);
}

/* jb_end_object closes an object. */
void
jb_end_object(JsonBuilder *b)
{
	if (b->text)
		text_close(b, '}');
	else
		close_container(b, jbvObject);
}

/* jb_begin_array opens an array. */
void
jb_begin_array(JsonBuilder *b)
{
	if (b->text)
		text_open(b, '[');
	else
		open_container(b, jbvArray);
}

/* jb_end_array closes an array. */
void
jb_end_array(JsonBuilder *b)
{
	if (b->text)
		text_close(b, ']');
	else
		close_container(b, jbvArray);
}

/* jb_key adds an object key; its value comes next. */
void
jb_key(JsonBuilder *b, const char *key)
{
	JsonbValue *c;
	JsonbPair  *p;
	int			n;

	if (b->text)
	{
		if (b->need_comma)
			appendBinaryStringInfo(b->text, ", ", 2);
		text_string(b->text, key);
		appendBinaryStringInfo(b->text, ": ", 2);
		b->after_key = true;
		return;
	}
	Assert(b->depth > 0);
	c = b->stack[b->depth - 1];
	if (c->type != jbvObject)
		elog(ERROR, "jsonb builder: a key outside an object");
	n = c->val.object.nPairs;
	if (n >= JB_INITIAL_SLOTS && is_pow2(n))
		c->val.object.pairs = repalloc(c->val.object.pairs,
									   sizeof(JsonbPair) * n * 2);
	p = &c->val.object.pairs[n];
	p->key.type = jbvString;
	p->key.val.string.val = (char *) key;
	p->key.val.string.len = strlen(key);
	p->value.type = jbvNull;
	p->order = n;
	c->val.object.nPairs = n + 1;
}

/* jb_string adds a string (kept by reference until jb_finish). */
void
jb_string(JsonBuilder *b, bool elem, const char *s)
{
	JsonbValue *v;

	if (s == NULL)
	{
		jb_null(b, elem);
		return;
	}
	if (b->text)
	{
		text_value(b);
		text_string(b->text, s);
		return;
	}
	v = slot(b);
	v->type = jbvString;
	v->val.string.val = (char *) s;
	v->val.string.len = strlen(s);
}

/* jb_null adds a null. */
void
jb_null(JsonBuilder *b, bool elem)
{
	if (b->text)
	{
		text_value(b);
		appendBinaryStringInfo(b->text, "null", 4);
		return;
	}
	slot(b)->type = jbvNull;
}

/* jb_bool adds a boolean. */
void
jb_bool(JsonBuilder *b, bool elem, bool value)
{
	JsonbValue *v;

	if (b->text)
	{
		text_value(b);
		appendStringInfoString(b->text, value ? "true" : "false");
		return;
	}
	v = slot(b);
	v->type = jbvBool;
	v->val.boolean = value;
}

/* jb_scaled adds a number given in 10^-scale units, with "scale" decimals. */
void
jb_scaled(JsonBuilder *b, bool elem, int64 value, int scale)
{
	JsonbValue *v;

	if (b->text)
	{
		text_value(b);
		text_scaled(b->text, value, scale);
		return;
	}
	v = slot(b);
	v->type = jbvNumeric;
	v->val.numeric = scaled_to_numeric(value, scale);
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

/* ---------------------------------------------------------------------
 * The binary form
 *
 * What convertToJsonb (jsonb_util.c) writes, written here with the
 * buffer's bounds checked inline: a container is its header (count and
 * kind), one JEntry per key and value (keys first; every
 * JB_OFFSET_STRIDE-th holds the end offset, the others the length), then
 * the data; numbers and nested containers start 4-byte aligned, the
 * padding counting as theirs.
 * ---------------------------------------------------------------------
 */

/* The document being written. */
typedef struct JbOut
{
	char	   *data;
	int			len;
	int			size;
} JbOut;

/* out_grow makes room for n more bytes. */
static void
out_grow(JbOut *o, int n)
{
	Size		want = (Size) o->len + n;
	Size		size = (Size) o->size * 2;

	while (size < want)
		size *= 2;
	if (size > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("jsonb document too large")));
	o->data = repalloc(o->data, size);
	o->size = (int) size;
}

/* out_reserve makes sure n more bytes fit. */
static inline void
out_reserve(JbOut *o, int n)
{
	if (o->len + n > o->size)
		out_grow(o, n);
}

/* out_pad pads with zeros to a 4-byte boundary; returns the padding. */
static inline int
out_pad(JbOut *o)
{
	int			pad = INTALIGN(o->len) - o->len;
	int			i;

	out_reserve(o, pad);
	for (i = 0; i < pad; i++)
		o->data[o->len++] = '\0';
	return pad;
}

static uint32 put_value(JbOut *o, const JsonbValue *v);

/*
 * put_container writes an object or array; returns its JEntry (the
 * padding before it counts as its data).
 */
static uint32
put_container(JbOut *o, const JsonbValue *v)
{
	int			base = o->len;
	bool		object = v->type == jbvObject;
	int			n = object ? v->val.object.nPairs : v->val.array.nElems;
	int			nentries = object ? 2 * n : n;
	uint32		head = (uint32) n | (object ? JB_FOBJECT : JB_FARRAY);
	int			jpos;
	uint32		total = 0;
	int			i;

	out_pad(o);
	out_reserve(o, sizeof(uint32) + sizeof(JEntry) * nentries);
	memcpy(o->data + o->len, &head, sizeof(uint32));
	o->len += sizeof(uint32);
	jpos = o->len;
	o->len += sizeof(JEntry) * nentries;

	for (i = 0; i < nentries; i++)
	{
		const JsonbValue *item;
		uint32		meta;

		if (!object)
			item = &v->val.array.elems[i];
		else if (i < n)
			item = &v->val.object.pairs[i].key;
		else
			item = &v->val.object.pairs[i - n].value;
		meta = put_value(o, item);
		total += JBE_OFFLENFLD(meta);
		if (total > JENTRY_OFFLENMASK)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("total size of jsonb elements exceeds the maximum of %u bytes",
							JENTRY_OFFLENMASK)));
		if (i % JB_OFFSET_STRIDE == 0)
			meta = (meta & JENTRY_TYPEMASK) | total | JENTRY_HAS_OFF;
		memcpy(o->data + jpos + sizeof(JEntry) * i, &meta, sizeof(JEntry));
	}
	if (o->len - base > JENTRY_OFFLENMASK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("total size of jsonb elements exceeds the maximum of %u bytes",
						JENTRY_OFFLENMASK)));
	return JENTRY_ISCONTAINER | (uint32) (o->len - base);
}

/* put_value writes one value; returns its JEntry (kind and length). */
static uint32
put_value(JbOut *o, const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return JENTRY_ISNULL;
		case jbvBool:
			return v->val.boolean ? JENTRY_ISBOOL_TRUE : JENTRY_ISBOOL_FALSE;
		case jbvString:
			out_reserve(o, v->val.string.len);
			memcpy(o->data + o->len, v->val.string.val, v->val.string.len);
			o->len += v->val.string.len;
			return (uint32) v->val.string.len;
		case jbvNumeric:
			{
				int			size = VARSIZE_ANY(v->val.numeric);
				int			pad = out_pad(o);

				out_reserve(o, size);
				memcpy(o->data + o->len, v->val.numeric, size);
				o->len += size;
				return JENTRY_ISNUMERIC | (uint32) (pad + size);
			}
		case jbvObject:
		case jbvArray:
			return put_container(o, v);
		default:
			elog(ERROR, "jsonb builder: unexpected value type %d", (int) v->type);
	}
	return 0;					/* keep the compiler quiet */
}

/*
 * jb_finish returns the built document (every container closed), written
 * in jsonb's binary form in one pass.
 */
Jsonb *
jb_finish(JsonBuilder *b)
{
	JbOut		o;

	if (b->depth != 0 || b->result == NULL)
		elog(ERROR, "jsonb builder: the document is not complete");
	o.size = 1024;
	o.data = palloc(o.size);
	o.len = VARHDRSZ;
	(void) put_value(&o, b->result);
	SET_VARSIZE(o.data, o.len);
	return (Jsonb *) o.data;
}
