/*-------------------------------------------------------------------------
 *
 * icu_format.h
 *	  A plain C interface to ICU's MessageFormat (icu_format.cpp), so that
 *	  customer messages get their plurals right in every locale (1 балл,
 *	  2 балла, 5 баллов, 21 балл).
 *
 * The C++ side never calls PostgreSQL and never lets an exception out: it
 * returns a status and an error text, and the C caller (messages.c) turns
 * that into ereport.  Results are malloc'd; the caller frees them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_ICU_FORMAT_H
#define LOYALTY_ICU_FORMAT_H

#ifdef __cplusplus
extern "C"
{
#endif

/* One named argument: a number or a string (UTF-8). */
typedef struct IcuArg
{
	const char *name;
	int			is_number;
	double		number;			/* a count of points or money: exact enough */
	const char *text;
} IcuArg;

/*
 * What reaches ICU is bounded first (issue 14): ICU's MessageFormat parses
 * and formats nested arguments recursively and crashes the server on deep
 * enough nesting, and it dereferences a null pointer when a date or time
 * argument meets a locale it could not parse.  A message is a text for an
 * SMS or a push notification: 4 kB holds a template with many plural and
 * select branches (the longest default is under 200 bytes); 16 arguments
 * nested inside one another is far more than a real template uses (a
 * plural inside a select is two).
 */
#define ICU_MAX_TEMPLATE_BYTES	4096
#define ICU_MAX_NESTING			16
#define ICU_MAX_LOCALE_BYTES	64

/* What the functions below return: which input was refused, if any. */
#define ICU_OK					0
#define ICU_BAD_TEMPLATE		(-1)	/* too long, too deep, or malformed */
#define ICU_BAD_LOCALE			(-2)	/* not a locale ICU knows */
#define ICU_FAILED				(-3)	/* the arguments did not fit, or ICU failed */

/*
 * icu_check_locale checks that locale is a well-formed locale id (ICU's
 * form, such as ru_RU or en@calendar=japanese, or a BCP 47 tag, such as
 * de-DE-u-ca-buddhist) of at most ICU_MAX_LOCALE_BYTES whose language ICU
 * has data for.  Returns ICU_OK, or ICU_BAD_LOCALE with a message in errbuf.
 */
extern int	icu_check_locale(const char *locale, char *errbuf, int errlen);

/*
 * icu_check_bounds checks a template's length and the nesting of its
 * arguments without ICU (so without recursion).  Returns ICU_OK, or
 * ICU_BAD_TEMPLATE with a message in errbuf.
 */
extern int	icu_check_bounds(const char *pattern, char *errbuf, int errlen);

/*
 * icu_format_message formats pattern (a MessageFormat template, UTF-8) for
 * locale with the named arguments.  Returns ICU_OK and a malloc'd UTF-8
 * string in *result, or ICU_BAD_TEMPLATE, ICU_BAD_LOCALE or ICU_FAILED with
 * a message in errbuf.  The template and locale are checked as above first.
 */
extern int	icu_format_message(const char *pattern, const char *locale,
							   int nargs, const IcuArg *args,
							   char **result, char *errbuf, int errlen);

/*
 * icu_check_template checks pattern and locale as above, parses pattern for
 * locale and checks that every argument it names is one of the allowed
 * names.  Returns ICU_OK, or ICU_BAD_TEMPLATE or ICU_BAD_LOCALE with a
 * message in errbuf.
 */
extern int	icu_check_template(const char *pattern, const char *locale,
							   int nallowed, const char *const *allowed,
							   char *errbuf, int errlen);

#ifdef __cplusplus
}
#endif

#endif							/* LOYALTY_ICU_FORMAT_H */
