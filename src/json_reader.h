/*-------------------------------------------------------------------------
 *
 * json_reader.h
 *	  The one strict JSON reader of the extension: typed access to the
 *	  fields of a jsonb object, keeping the JSON path of the value being
 *	  read ("lines[2].sku") so that every error names its field.
 *
 * Three kinds of document are read with it: check and refund requests
 * (request.c), adjust requests (ledger_api.c) and promotion rules,
 * schedules and selectors (rules.c).  What differs between them (the
 * SQLSTATE, the errmsg, the wording of a few sentences, whether a JSON
 * null counts as absent, how decimals are counted) is a JsonReaderStyle,
 * so that each keeps its error texts.  Every error is
 *
 *	  errmsg(<the reader's errmsg>)
 *	  errdetail("Field \"<path>\" <sentence>") [errhint(...)]
 *
 * This file knows no request, rule or table: it reads JSON only, raises
 * errors, runs no SQL and keeps no state between calls.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_JSON_READER_H
#define LOYALTY_JSON_READER_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define JR_REQUIRED		true
#define JR_OPTIONAL		false

/* What differs between the documents read (see the file header). */
typedef struct JsonReaderStyle
{
	int			sqlstate;
	const char *errmsg;			/* NULL: every reader gives its own */
	bool		null_is_absent; /* a JSON null reads as a missing field */
	const char *not_object;		/* errdetail when the document is no object;
								 * NULL: "Field "<root>" must be a JSON
								 * object." */
	const char *unknown_key;	/* sentence for a key not known */
	int			max_key_bytes;	/* an unknown key is cut to this in the path
								 * (0: whole) */
	const char *not_string;		/* sentence for a non-string (jr_string) */
	const char *empty_string;	/* sentence for "" (jr_string) */
	const char *not_finite;		/* sentence for NaN or infinity */
	bool		written_decimals;	/* decimals as written ("2.00" has 2),
									 * not as valued (2.00 is whole) */
	const char *decimals;		/* "must have at most %d decimals." */
	bool		decimal_strings;	/* jr_number takes "199.90" as 199.90 */
} JsonReaderStyle;

/* One step of the path: an object key, or an array index when key is NULL. */
typedef struct JsonPathStep
{
	const char *key;
	int			index;
} JsonPathStep;

/*
 * A reader: its style, errmsg and the path being read (root, then depth
 * steps; the text only when an error needs it: jr_path).
 */
typedef struct JsonReader
{
	const JsonReaderStyle *style;
	const char *errmsg;
	const char *root;
	JsonPathStep *steps;
	int			depth;
	int			size;
	/*
	 * errmsg formatted only when an error is raised (errmsg NULL): errmsg_fmt
	 * with two %s arguments; set by the caller after jr_init (rules.c)
	 */
	const char *errmsg_fmt;
	const char *errmsg_arg1;
	const char *errmsg_arg2;
	/*
	 * the document was validated when it was written (a stored promotion
	 * rule): jr_check_keys skips its scan for unknown keys
	 */
	bool		trusted;
} JsonReader;

/*
 * A kind of number: the decimals the JSON may have (the value is returned
 * scaled by 10^scale), its inclusive bounds when scaled, and the sentence
 * saying so ("must be ..." without the final period).
 */
typedef struct JsonNumberKind
{
	int			scale;
	int64		min;
	int64		max;
	const char *range;
} JsonNumberKind;

/* One of several mutually exclusive numeric keys ("percent" | "amount"). */
typedef struct JsonChoice
{
	const char *key;
	int			tag;
	const JsonNumberKind *kind;
} JsonChoice;

/* The fields of an object in jsonb's order (jr_fields_next). */
typedef struct JsonFieldIter
{
	JsonbIterator *it;
} JsonFieldIter;

/* start, end */
extern void jr_init(JsonReader *r, const JsonReaderStyle *style,
					const char *errmsg, const char *root);
extern void jr_free(JsonReader *r);

/* errors */
extern void jr_error(JsonReader *r, const char *hint, const char *fmt,...)
			pg_attribute_printf(3, 4) pg_attribute_noreturn();
extern void jr_verror(const JsonReaderStyle *style, const char *message,
					  const char *path, const char *hint, const char *fmt,
					  va_list args) pg_attribute_printf(5, 0) pg_attribute_noreturn();
extern char *jr_key_list(const char *const *keys, bool quoted,
						 const char *last_sep);

/* the path; a pushed key must live as long as it is on the path */
extern char *jr_path(JsonReader *r);
extern char *jr_path_upto(JsonReader *r, int saved);
extern int	jr_push_key(JsonReader *r, const char *key);
extern int	jr_push_index(JsonReader *r, int i);
extern void jr_pop(JsonReader *r, int saved);

/* containers and keys */
extern JsonbContainer *jr_root_object(JsonReader *r, Jsonb *jb);
extern JsonbContainer *jr_object(JsonReader *r, JsonbValue *v);
extern JsonbContainer *jr_array(JsonReader *r, JsonbValue *v);
extern JsonbContainer *jr_nonempty_array(JsonReader *r, JsonbValue *v);
extern void jr_fields_begin(JsonFieldIter *iter, JsonbContainer *obj);
extern bool jr_fields_next(JsonFieldIter *iter, JsonbValue *key,
						   JsonbValue *value);
extern void jr_check_keys(JsonReader *r, JsonbContainer *obj,
						  const char *what, const char *const *keys);
extern void jr_unknown_key(JsonReader *r, const char *key, int len,
						   const char *what, const char *const *keys)
			pg_attribute_noreturn();
extern JsonbValue *jr_get(JsonReader *r, JsonbContainer *obj, const char *key);
extern JsonbValue *jr_field(JsonReader *r, JsonbContainer *obj,
							const char *key, bool required, int *saved);
extern JsonbValue *jr_element(JsonReader *r, JsonbContainer *arr, int i,
							  int *saved);

/* values at the current path */
extern int64 jr_number(JsonReader *r, JsonbValue *v, const JsonNumberKind *kind);
extern Numeric jr_numeric(JsonReader *r, JsonbValue *v);
extern bool jr_is_decimal_string(JsonReader *r, JsonbValue *v);
extern char *jr_string(JsonReader *r, JsonbValue *v);
extern char *jr_name(JsonReader *r, JsonbValue *v, int max_chars);

/* fields of an object */
extern int64 jr_number_field(JsonReader *r, JsonbContainer *obj, const char *key,
							 const JsonNumberKind *kind, bool required,
							 int64 dflt);
extern char *jr_string_field(JsonReader *r, JsonbContainer *obj,
							 const char *key, bool required, const char *dflt);
extern char *jr_name_field(JsonReader *r, JsonbContainer *obj, const char *key,
						   bool required, int max_chars);
extern bool jr_bool_field(JsonReader *r, JsonbContainer *obj, const char *key,
						  bool dflt);
extern int	jr_enum_field(JsonReader *r, JsonbContainer *obj, const char *key,
						  const char *const *values, int dflt);
extern int	jr_choice_field(JsonReader *r, JsonbContainer *obj,
							const JsonChoice *choices, int64 *value);
extern char **jr_string_list_field(JsonReader *r, JsonbContainer *obj,
								   const char *key, int *count);

#endif							/* LOYALTY_JSON_READER_H */
