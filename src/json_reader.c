/*-------------------------------------------------------------------------
 *
 * json_reader.c
 *	  The one strict JSON reader (see json_reader.h): the path of the value
 *	  being read, errors naming it, known-key checks, and typed access to
 *	  values and fields.
 *
 * The reader walks the jsonb with the container API.  Numbers are read
 * exactly (numeric_to_scaled, numeric arithmetic), never through floating
 * point.  Nothing here runs SQL.
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
	initStringInfo(&r->path);
	appendStringInfoString(&r->path, root);
}

/* jr_free frees what the reader allocated. */
void
jr_free(JsonReader *r)
{
	pfree(r->path.data);
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
	jr_verror(r->style, r->errmsg, r->path.data, hint, fmt, args);
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

/* jr_push_key appends ".key" ("key" at the root); returns the old length */
int
jr_push_key(JsonReader *r, const char *key)
{
	int			saved = r->path.len;

	appendStringInfo(&r->path, saved == 0 ? "%s" : ".%s", key);
	return saved;
}

/* jr_push_index appends "[i]"; returns the old length */
int
jr_push_index(JsonReader *r, int i)
{
	int			saved = r->path.len;

	appendStringInfo(&r->path, "[%d]", i);
	return saved;
}

/* jr_pop cuts the path back to a length returned by a push */
void
jr_pop(JsonReader *r, int saved)
{
	r->path.len = saved;
	r->path.data[saved] = '\0';
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
				 errmsg("%s", r->errmsg),
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

/* numeric_cmp_int64 compares a numeric with an int64. */
static int
numeric_cmp_int64(Numeric n, int64 i)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
											 NumericGetDatum(int64_to_numeric(i))));
}

/*
 * number_as_written reads n with decimals counted as written ("2.00" has
 * two), for a kind of scale 0 or 2.
 */
static int64
number_as_written(JsonReader *r, Numeric n, const JsonNumberKind *kind)
{
	int32		scale;
	Numeric		scaled;

	scale = DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(n)));
	if (scale > kind->scale && kind->scale == 0)
		jr_error(r, NULL, "must be a whole number.");
	if (scale > kind->scale)
		jr_error(r, NULL, r->style->decimals, kind->scale);

	scaled = DatumGetNumeric(DirectFunctionCall2(numeric_mul, NumericGetDatum(n),
												 NumericGetDatum(int64_to_numeric(kind->scale == 2 ? 100 : 1))));
	if (numeric_cmp_int64(scaled, kind->min) < 0 ||
		numeric_cmp_int64(scaled, kind->max) > 0)
		jr_error(r, NULL, "%s.", kind->range);

	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(scaled)));
}

/*
 * number_as_valued reads n with decimals counted by value (2.00 is whole),
 * telling "too many decimals" from "too large".
 */
static int64
number_as_valued(JsonReader *r, Numeric n, const JsonNumberKind *kind)
{
	int64		result;

	if (!numeric_to_scaled(n, kind->scale, &result))
	{
		int64		dummy;

		if (numeric_to_scaled(n, 6, &dummy) || numeric_to_scaled(n, 12, &dummy))
		{
			if (kind->scale == 0)
				jr_error(r, NULL, "must be a whole number.");
			jr_error(r, NULL, r->style->decimals, kind->scale);
		}
		jr_error(r, NULL, "%s.", kind->range);
	}
	if (result < kind->min || result > kind->max)
		jr_error(r, NULL, "%s.", kind->range);
	return result;
}

/*
 * jr_number reads a JSON number of the given kind, returned scaled by
 * 10^kind->scale (money in minor units, quantities in thousandths, ...).
 */
int64
jr_number(JsonReader *r, JsonbValue *v, const JsonNumberKind *kind)
{
	if (v->type != jbvNumeric)
		jr_error(r, NULL, "must be a number.");
	if (numeric_is_nan(v->val.numeric) || numeric_is_inf(v->val.numeric))
		jr_error(r, NULL, "%s", r->style->not_finite);
	if (r->style->written_decimals)
		return number_as_written(r, v->val.numeric, kind);
	return number_as_valued(r, v->val.numeric, kind);
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
