/*-------------------------------------------------------------------------
 *
 * json_reader.c
 *	  The one strict JSON reader (see json_reader.h): the path of the value
 *	  being read, errors naming it, known-key checks, and typed access to
 *	  values and fields.
 *
 * The reader walks the jsonb with the container API.  Numbers are read
 * exactly by arithmetic on numeric's stored digits (numeric_to_scaled_status)
 * or on a decimal string's, never through floating point or a text form.
 * The path is a stack of steps; its text is made only for an error.
 * Nothing here runs SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "json_reader.h"
#include "money.h"


/* ---------------------------------------------------------------------
 * Start, errors, paths
 * ---------------------------------------------------------------------
 */

/*
 * jr_init starts reading a document in the given style: errors say errmsg
 * (NULL: the style's) and paths start at root ("" for none).
 */
void
jr_init(JsonReader *r, const JsonReaderStyle *style, const char *errmsg,
		const char *root)
{
	r->style = style;
	r->errmsg = errmsg ? errmsg : style->errmsg;
	r->root = pstrdup(root);
	r->size = 8;
	r->depth = 0;
	r->steps = palloc(sizeof(JsonPathStep) * r->size);
	r->errmsg_fmt = NULL;
	r->errmsg_arg1 = NULL;
	r->errmsg_arg2 = NULL;
	r->trusted = false;
}

/*
 * jr_errmsg returns the reader's errmsg, formatting it from errmsg_fmt the
 * first time when it is made lazily.
 */
static const char *
jr_errmsg(JsonReader *r)
{
	if (r->errmsg == NULL && r->errmsg_fmt != NULL)
		r->errmsg = psprintf(r->errmsg_fmt, r->errmsg_arg1, r->errmsg_arg2);
	return r->errmsg;
}

/* jr_free frees what the reader allocated. */
void
jr_free(JsonReader *r)
{
	pfree(r->steps);
}

/*
 * jr_verror raises the style's SQLSTATE with errmsg(message) and the errdetail
 * "Field "<path>" <sentence>", and hint when not NULL.
 */
void
jr_verror(const JsonReaderStyle *style, const char *message, const char *path,
		  const char *hint, const char *fmt, va_list args)
{
	StringInfoData sentence;

	initStringInfo(&sentence);
	for (;;)
	{
		va_list		copy;
		int			needed;

		va_copy(copy, args);
		needed = appendStringInfoVA(&sentence, fmt, copy);
		va_end(copy);
		if (needed == 0)
			break;
		enlargeStringInfo(&sentence, needed);
	}
	ereport(ERROR,
			(errcode(style->sqlstate),
			 errmsg("%s", message),
			 errdetail("Field \"%s\" %s", path, sentence.data),
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* jr_error raises an error for the field at the reader's path. */
void
jr_error(JsonReader *r, const char *hint, const char *fmt,...)
{
	va_list		args;

	va_start(args, fmt);
	jr_verror(r->style, jr_errmsg(r), jr_path(r), hint, fmt, args);
	va_end(args);
}

/*
 * jr_key_list formats a NULL-terminated list of names as "a, b, c", each
 * optionally quoted, with last_sep before the last.
 */
char *
jr_key_list(const char *const *keys, bool quoted, const char *last_sep)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; keys[i] != NULL; i++)
	{
		if (i > 0)
			appendStringInfoString(&buf, keys[i + 1] == NULL ? last_sep : ", ");
		appendStringInfo(&buf, quoted ? "\"%s\"" : "%s", keys[i]);
	}
	return buf.data;
}

/*
 * jr_path_upto prints the path as it was when "saved" was returned by a
 * push: "lines[2].sku" ("key" first at the root, ".key" after it).
 */
char *
jr_path_upto(JsonReader *r, int saved)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoString(&buf, r->root);
	for (i = 0; i < saved && i < r->depth; i++)
	{
		if (r->steps[i].key == NULL)
			appendStringInfo(&buf, "[%d]", r->steps[i].index);
		else if (buf.len == 0)
			appendStringInfoString(&buf, r->steps[i].key);
		else
			appendStringInfo(&buf, ".%s", r->steps[i].key);
	}
	return buf.data;
}

/* jr_path prints the path of the value being read. */
char *
jr_path(JsonReader *r)
{
	return jr_path_upto(r, r->depth);
}

/* push_step adds a step to the path; returns the depth before it. */
static inline int
push_step(JsonReader *r, const char *key, int index)
{
	if (r->depth == r->size)
	{
		r->size *= 2;
		r->steps = repalloc(r->steps, sizeof(JsonPathStep) * r->size);
	}
	r->steps[r->depth].key = key;
	r->steps[r->depth].index = index;
	return r->depth++;
}

/* jr_push_key appends ".key" ("key" at the root); returns the old depth */
int
jr_push_key(JsonReader *r, const char *key)
{
	return push_step(r, key, 0);
}

/* jr_push_index appends "[i]"; returns the old depth */
int
jr_push_index(JsonReader *r, int i)
{
	return push_step(r, NULL, i);
}

/* jr_pop cuts the path back to a depth returned by a push */
void
jr_pop(JsonReader *r, int saved)
{
	Assert(saved >= 0 && saved <= r->depth);
	r->depth = saved;
}


/* ---------------------------------------------------------------------
 * Containers and keys
 * ---------------------------------------------------------------------
 */

/* jr_root_object returns the top-level object of a document, or errors. */
JsonbContainer *
jr_root_object(JsonReader *r, Jsonb *jb)
{
	if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_OBJECT(jb))
	{
		if (r->style->not_object == NULL)
			jr_error(r, NULL, "must be a JSON object.");
		ereport(ERROR,
				(errcode(r->style->sqlstate),
				 errmsg("%s", jr_errmsg(r)),
				 errdetail("%s", r->style->not_object)));
	}
	return &jb->root;
}

/* jr_object returns the object held by v, or errors. */
JsonbContainer *
jr_object(JsonReader *r, JsonbValue *v)
{
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		jr_error(r, NULL, "must be a JSON object.");
	return v->val.binary.data;
}

/* jr_array returns the array held by v, or errors. */
JsonbContainer *
jr_array(JsonReader *r, JsonbValue *v)
{
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		jr_error(r, NULL, "must be a JSON array.");
	return v->val.binary.data;
}

/* jr_nonempty_array is jr_array refusing "[]". */
JsonbContainer *
jr_nonempty_array(JsonReader *r, JsonbValue *v)
{
	JsonbContainer *arr = jr_array(r, v);

	if (JsonContainerSize(arr) == 0)
		jr_error(r, NULL, "must not be empty.");
	return arr;
}

/* jr_fields_begin starts iterating the fields of obj. */
void
jr_fields_begin(JsonFieldIter *iter, JsonbContainer *obj)
{
	iter->it = JsonbIteratorInit(obj);
}

/*
 * jr_fields_next gives the next key and its value (a nested container as
 * jbvBinary); false after the last.
 */
bool
jr_fields_next(JsonFieldIter *iter, JsonbValue *key, JsonbValue *value)
{
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&iter->it, key, true)) != WJB_DONE)
	{
		CHECK_FOR_INTERRUPTS();
		if (tok != WJB_KEY)
			continue;
		(void) JsonbIteratorNext(&iter->it, value, true);
		return true;
	}
	return false;
}

/*
 * jr_unknown_key raises the error for the unknown key of an object at the
 * path; the hint lists the keys it may have: "<what> takes the fields: a,
 * b." or, without what, "Known fields are a, b and c.".
 */
void
jr_unknown_key(JsonReader *r, const char *key, int len, const char *what,
			   const char *const *keys)
{
	int			max = r->style->max_key_bytes;
	const char *hint;

	jr_push_key(r, pnstrdup(key, max > 0 ? Min(len, max) : len));
	if (what != NULL)
		hint = psprintf("%s takes the fields: %s.", what,
						jr_key_list(keys, false, ", "));
	else
		hint = psprintf("Known fields are %s.", jr_key_list(keys, false, " and "));
	jr_error(r, hint, "%s", r->style->unknown_key);
}

/*
 * jr_check_keys errors on the first key of obj (in jsonb's order) not in
 * keys; "what" names the object in the hint (see jr_unknown_key).
 */
void
jr_check_keys(JsonReader *r, JsonbContainer *obj, const char *what,
			  const char *const *keys)
{
	JsonFieldIter iter;
	JsonbValue	k,
				v;

	if (r->trusted)
		return;					/* validated when written */
	jr_fields_begin(&iter, obj);
	while (jr_fields_next(&iter, &k, &v))
	{
		int			i;

		for (i = 0; keys[i] != NULL; i++)
			if (strlen(keys[i]) == (size_t) k.val.string.len &&
				memcmp(keys[i], k.val.string.val, k.val.string.len) == 0)
				break;
		if (keys[i] == NULL)
			jr_unknown_key(r, k.val.string.val, k.val.string.len, what, keys);
	}
}

/*
 * jr_get returns obj.key, or NULL when absent (or JSON null, when the
 * style reads null as absent).
 */
JsonbValue *
jr_get(JsonReader *r, JsonbContainer *obj, const char *key)
{
	JsonbValue *v = getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);

	if (v != NULL && v->type == jbvNull && r->style->null_is_absent)
		return NULL;
	return v;
}

/*
 * jr_field looks key up in obj.  When present, it pushes the key onto the
 * path (*saved gets the length to pop back to) and returns the value.  When
 * absent it errors if required, otherwise returns NULL with the path
 * unchanged.
 */
JsonbValue *
jr_field(JsonReader *r, JsonbContainer *obj, const char *key, bool required,
		 int *saved)
{
	JsonbValue *v = jr_get(r, obj, key);

	if (v == NULL && !required)
		return NULL;
	*saved = jr_push_key(r, key);
	if (v == NULL)
		jr_error(r, NULL, "is required.");
	return v;
}

/* jr_element returns element i of arr and pushes "[i]" onto the path. */
JsonbValue *
jr_element(JsonReader *r, JsonbContainer *arr, int i, int *saved)
{
	JsonbValue *v = getIthJsonbValueFromContainer(arr, i);

	if (v == NULL)
		elog(ERROR, "jsonb array element %d not found", i);
	*saved = jr_push_index(r, i);
	return v;
}


/* ---------------------------------------------------------------------
 * Values
 * ---------------------------------------------------------------------
 */

/*
 * A number being read: a JSON number, or a decimal string where the style
 * takes them ("199.90").
 */
typedef struct NumberSource
{
	Numeric		numeric;		/* NULL for a string */
	const char *text;
	int			len;
} NumberSource;

/*
 * decimal_text_valid tells whether text is a plain decimal: an optional
 * minus, digits, and optionally a point and digits ("-12", "199.90");
 * *fraction gets the digits written after the point.
 */
static bool
decimal_text_valid(const char *text, int len, int *fraction)
{
	int			i = 0;
	int			digits = 0;

	*fraction = 0;
	if (i < len && text[i] == '-')
		i++;
	while (i < len && text[i] >= '0' && text[i] <= '9')
		i++, digits++;
	if (digits == 0)
		return false;
	if (i < len && text[i] == '.')
	{
		i++;
		while (i < len && text[i] >= '0' && text[i] <= '9')
			i++, (*fraction)++;
		if (*fraction == 0)
			return false;
	}
	return i == len;
}

/*
 * decimal_text_to_scaled is numeric_to_scaled_status for a valid decimal
 * text (decimal_text_valid): the same answers for "12.345" as for 12.345.
 */
static NumToScaled
decimal_text_to_scaled(const char *text, int len, int scale, int64 *result)
{
	bool		negative = len > 0 && text[0] == '-';
	int128		acc = 0;
	bool		range = false;
	bool		decimals = false;
	int			after = -1;		/* digits read after the point */
	int			i;

	for (i = negative ? 1 : 0; i < len; i++)
	{
		if (text[i] == '.')
		{
			after = 0;
			continue;
		}
		if (after >= 0 && after++ >= scale)
		{
			/* beyond the scale: only zeros */
			if (text[i] != '0')
				decimals = true;
			continue;
		}
		if (!range)
		{
			acc = acc * 10 + (text[i] - '0');
			if (acc > (int128) PG_INT64_MAX + 1)
				range = true;
		}
	}
	for (i = Max(after, 0); i < scale && !range; i++)
	{
		acc *= 10;
		if (acc > (int128) PG_INT64_MAX + 1)
			range = true;
	}
	if (decimals)
		return NUM_TO_SCALED_DECIMALS;
	if (negative)
		acc = -acc;
	if (range || acc > PG_INT64_MAX || acc < PG_INT64_MIN)
		return NUM_TO_SCALED_RANGE;
	*result = (int64) acc;
	return NUM_TO_SCALED_OK;
}

/*
 * to_scaled converts a number being read at the given scale; *written gets
 * its decimals as written.
 */
static NumToScaled
to_scaled(const NumberSource *src, int scale, int64 *result, int *written)
{
	if (src->numeric != NULL)
		return numeric_to_scaled_status(src->numeric, scale, result, written);
	(void) decimal_text_valid(src->text, src->len, written);
	return decimal_text_to_scaled(src->text, src->len, scale, result);
}

/*
 * number_read reads a number of the given kind, scaled: arithmetic on the
 * stored digits or the string's, never a text form in between.
 */
static int64
number_read(JsonReader *r, const NumberSource *src, const JsonNumberKind *kind)
{
	int64		result = 0;
	int64		dummy;
	int			written;
	NumToScaled status;

	status = to_scaled(src, kind->scale, &result, &written);
	if (status == NUM_TO_SCALED_SPECIAL)
		jr_error(r, NULL, "%s", r->style->not_finite);
	if (r->style->written_decimals && written > kind->scale)
	{
		/* decimals as written: "2.00" has two */
		if (kind->scale == 0)
			jr_error(r, NULL, "must be a whole number.");
		jr_error(r, NULL, r->style->decimals, kind->scale);
	}
	if (status == NUM_TO_SCALED_DECIMALS &&
		(to_scaled(src, 6, &dummy, &written) == NUM_TO_SCALED_OK ||
		 to_scaled(src, 12, &dummy, &written) == NUM_TO_SCALED_OK))
	{
		/* a value with a few decimals too many, not a huge one */
		if (kind->scale == 0)
			jr_error(r, NULL, "must be a whole number.");
		jr_error(r, NULL, r->style->decimals, kind->scale);
	}
	if (status != NUM_TO_SCALED_OK || result < kind->min || result > kind->max)
		jr_error(r, NULL, "%s.", kind->range);
	return result;
}

/*
 * jr_is_decimal_string tells whether v is a string the style reads as a
 * number ("199.90").
 */
bool
jr_is_decimal_string(JsonReader *r, JsonbValue *v)
{
	int			fraction;

	return r->style->decimal_strings && v->type == jbvString &&
		decimal_text_valid(v->val.string.val, v->val.string.len, &fraction);
}

/*
 * jr_number reads a JSON number of the given kind, returned scaled by
 * 10^kind->scale (money in minor units, quantities in thousandths, ...).
 * Where the style says so, a decimal string ("199.90") is read as the
 * number it writes, under the same rules.
 */
int64
jr_number(JsonReader *r, JsonbValue *v, const JsonNumberKind *kind)
{
	NumberSource src = {0};

	if (v->type == jbvNumeric)
		src.numeric = v->val.numeric;
	else if (v->type == jbvString && r->style->decimal_strings)
	{
		int			fraction;

		if (!decimal_text_valid(v->val.string.val, v->val.string.len, &fraction))
			jr_error(r, "A number may also be given as a string of its decimal digits, such as \"199.90\".",
					 "must be a number.");
		src.text = v->val.string.val;
		src.len = v->val.string.len;
	}
	else
		jr_error(r, NULL, "must be a number.");
	return number_read(r, &src, kind);
}

/* jr_numeric returns the number held by v as it is, or errors. */
Numeric
jr_numeric(JsonReader *r, JsonbValue *v)
{
	if (v->type != jbvNumeric)
		jr_error(r, NULL, "must be a number.");
	return v->val.numeric;
}

/* jr_string reads a non-empty JSON string as a palloc'd C string. */
char *
jr_string(JsonReader *r, JsonbValue *v)
{
	if (v->type != jbvString)
		jr_error(r, NULL, "%s", r->style->not_string);
	if (v->val.string.len == 0)
		jr_error(r, NULL, "%s", r->style->empty_string);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * jr_name reads a name (a SKU, a store, a code): a string trimmed of
 * surrounding blanks, not empty, of at most max_chars characters and
 * without line breaks.
 */
char *
jr_name(JsonReader *r, JsonbValue *v, int max_chars)
{
	char	   *s;
	char	   *end;

	if (v->type != jbvString)
		jr_error(r, NULL, "must be a string.");
	if (v->val.string.len > max_chars * 4)
		jr_error(r, NULL, "must have at most %d characters.", max_chars);
	s = pnstrdup(v->val.string.val, v->val.string.len);
	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*s == '\0')
		jr_error(r, NULL, "must not be empty.");
	if (pg_mbstrlen(s) > max_chars)
		jr_error(r, NULL, "must have at most %d characters.", max_chars);
	if (strchr(s, '\n') || strchr(s, '\r'))
		jr_error(r, NULL, "must not contain line breaks.");
	return s;
}


/* ---------------------------------------------------------------------
 * Fields
 * ---------------------------------------------------------------------
 */

/* jr_number_field reads obj.key as a number of the given kind. */
int64
jr_number_field(JsonReader *r, JsonbContainer *obj, const char *key,
				const JsonNumberKind *kind, bool required, int64 dflt)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, required, &saved);
	int64		result;

	if (v == NULL)
		return dflt;
	result = jr_number(r, v, kind);
	jr_pop(r, saved);
	return result;
}

/* jr_string_field reads obj.key as a non-empty string (jr_string). */
char *
jr_string_field(JsonReader *r, JsonbContainer *obj, const char *key,
				bool required, const char *dflt)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, required, &saved);
	char	   *result;

	if (v == NULL)
		return dflt ? pstrdup(dflt) : NULL;
	result = jr_string(r, v);
	jr_pop(r, saved);
	return result;
}

/* jr_name_field reads obj.key as a name (jr_name); NULL when absent. */
char *
jr_name_field(JsonReader *r, JsonbContainer *obj, const char *key,
			  bool required, int max_chars)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, required, &saved);
	char	   *result;

	if (v == NULL)
		return NULL;
	result = jr_name(r, v, max_chars);
	jr_pop(r, saved);
	return result;
}

/* jr_bool_field reads obj.key as true or false (dflt when absent). */
bool
jr_bool_field(JsonReader *r, JsonbContainer *obj, const char *key, bool dflt)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, JR_OPTIONAL, &saved);
	bool		result;

	if (v == NULL)
		return dflt;
	if (v->type != jbvBool)
		jr_error(r, NULL, "must be true or false.");
	result = v->val.boolean;
	jr_pop(r, saved);
	return result;
}

/*
 * jr_enum_field reads obj.key as one of the strings in "values" and returns
 * its index; dflt when absent.
 */
int
jr_enum_field(JsonReader *r, JsonbContainer *obj, const char *key,
			  const char *const *values, int dflt)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, JR_OPTIONAL, &saved);
	char	   *s;
	int			i;

	if (v == NULL)
		return dflt;
	s = jr_string(r, v);
	for (i = 0; values[i] != NULL; i++)
		if (strcmp(values[i], s) == 0)
			break;
	if (values[i] == NULL)
		jr_error(r, NULL, "must be %s.", jr_key_list(values, true, " or "));
	jr_pop(r, saved);
	return i;
}

/*
 * jr_choice_field reads exactly one of the keys in "choices" from obj (the
 * object at the current path), storing its value in *value and returning
 * the choice's tag.
 */
int
jr_choice_field(JsonReader *r, JsonbContainer *obj, const JsonChoice *choices,
				int64 *value)
{
	const JsonChoice *found = NULL;
	const char *keys[8];
	int			nkeys;
	int			npresent = 0;

	for (nkeys = 0; choices[nkeys].key != NULL; nkeys++)
	{
		Assert(nkeys < lengthof(keys) - 1);
		keys[nkeys] = choices[nkeys].key;
		if (jr_get(r, obj, choices[nkeys].key) != NULL)
		{
			found = &choices[nkeys];
			npresent++;
		}
	}
	keys[nkeys] = NULL;

	if (npresent == 0)
		jr_error(r, NULL, "must have one of %s.",
				 jr_key_list(keys, true, " or "));
	if (npresent > 1)
		jr_error(r, NULL, "must have only one of %s.",
				 jr_key_list(keys, true, " and "));

	*value = jr_number_field(r, obj, found->key, found->kind, JR_REQUIRED, 0);
	return found->tag;
}

/* string_ptr_cmp orders pointers to C strings by strcmp, for qsort. */
static int
string_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * jr_string_list_field reads obj.key, an array of non-empty strings, sorted
 * (strcmp); NULL and *count 0 when absent.
 */
char **
jr_string_list_field(JsonReader *r, JsonbContainer *obj, const char *key,
					 int *count)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, JR_OPTIONAL, &saved);
	JsonbContainer *arr;
	char	  **items;
	int			i;

	*count = 0;
	if (v == NULL)
		return NULL;
	arr = jr_array(r, v);
	*count = JsonContainerSize(arr);
	items = palloc0(sizeof(char *) * Max(*count, 1));
	for (i = 0; i < *count; i++)
	{
		int			saved_elem;
		JsonbValue *elem = jr_element(r, arr, i, &saved_elem);

		CHECK_FOR_INTERRUPTS();
		items[i] = jr_string(r, elem);
		jr_pop(r, saved_elem);
	}
	qsort(items, *count, sizeof(char *), string_ptr_cmp);
	jr_pop(r, saved);
	return items;
}
