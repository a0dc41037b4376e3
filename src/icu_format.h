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
 * icu_format_message formats pattern (a MessageFormat template, UTF-8) for
 * locale with the named arguments.  Returns 0 and a malloc'd UTF-8 string in
 * *result, or -1 with a message in errbuf.
 */
extern int	icu_format_message(const char *pattern, const char *locale,
							   int nargs, const IcuArg *args,
							   char **result, char *errbuf, int errlen);

/*
 * icu_check_template parses pattern for locale and checks that every
 * argument it names is one of the allowed names.  Returns 0, or -1 with a
 * message in errbuf.
 */
extern int	icu_check_template(const char *pattern, const char *locale,
							   int nallowed, const char *const *allowed,
							   char *errbuf, int errlen);

#ifdef __cplusplus
}
#endif

#endif							/* LOYALTY_ICU_FORMAT_H */
