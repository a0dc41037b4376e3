/*-------------------------------------------------------------------------
 *
 * icu_format.cpp
 *	  ICU MessageFormat behind a C interface (see icu_format.h).
 *
 * Named arguments need ICU's C++ API: its C API (umsg_*) takes numbered
 * varargs whose types must match the template, which a template written by
 * a marketer cannot promise.  Nothing here calls PostgreSQL, and every
 * exception is caught, so no error unwinds through C frames.
 *
 *-------------------------------------------------------------------------
 */
#include "icu_format.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unicode/fmtable.h>
#include <unicode/locid.h>
#include <unicode/msgfmt.h>
#include <unicode/strenum.h>
#include <unicode/unistr.h>
#include <unicode/utypes.h>

/* set_error writes a message into errbuf. */
static void
set_error(char *errbuf, int errlen, const char *what, UErrorCode status,
		  const UParseError *pe)
{
	if (pe != NULL && pe->offset >= 0)
		snprintf(errbuf, errlen, "%s at character %d (%s)", what,
				 (int) pe->offset + 1, u_errorName(status));
	else
		snprintf(errbuf, errlen, "%s (%s)", what, u_errorName(status));
}

extern "C" int
icu_format_message(const char *pattern, const char *locale,
				   int nargs, const IcuArg *args,
				   char **result, char *errbuf, int errlen)
{
	try
	{
		UErrorCode	status = U_ZERO_ERROR;
		UParseError pe;
		icu::MessageFormat fmt(icu::UnicodeString::fromUTF8(pattern),
							   icu::Locale(locale), pe, status);

		if (U_FAILURE(status))
		{
			set_error(errbuf, errlen, "malformed message template", status, &pe);
			return -1;
		}

		std::vector<icu::UnicodeString> names;
		std::vector<icu::Formattable> values;

		for (int i = 0; i < nargs; i++)
		{
			names.push_back(icu::UnicodeString::fromUTF8(args[i].name));
			if (args[i].is_number)
				values.push_back(icu::Formattable(args[i].number));
			else
				values.push_back(icu::Formattable(icu::UnicodeString::fromUTF8(
					args[i].text ? args[i].text : "")));
		}

		icu::UnicodeString out;

		fmt.format(names.data(), values.data(), nargs, out, status);
		if (U_FAILURE(status))
		{
			set_error(errbuf, errlen, "cannot format message", status, NULL);
			return -1;
		}

		std::string utf8;

		out.toUTF8String(utf8);
		*result = strdup(utf8.c_str());
		if (*result == NULL)
		{
			snprintf(errbuf, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	catch (...)
	{
		snprintf(errbuf, errlen, "unexpected failure in ICU");
		return -1;
	}
}

extern "C" int
icu_check_template(const char *pattern, const char *locale,
				   int nallowed, const char *const *allowed,
				   char *errbuf, int errlen)
{
	try
	{
		UErrorCode	status = U_ZERO_ERROR;
		UParseError pe;
		icu::MessageFormat fmt(icu::UnicodeString::fromUTF8(pattern),
							   icu::Locale(locale), pe, status);

		if (U_FAILURE(status))
		{
			set_error(errbuf, errlen, "malformed message template", status, &pe);
			return -1;
		}
		if (!fmt.usesNamedArguments() && fmt.getArgTypeCount() > 0)
		{
			snprintf(errbuf, errlen, "arguments must be named, such as {points}");
			return -1;
		}

		icu::StringEnumeration *names = fmt.getFormatNames(status);

		if (U_FAILURE(status) || names == NULL)
		{
			delete names;
			return 0;			/* no arguments at all */
		}

		const icu::UnicodeString *name;
		int			rc = 0;

		while ((name = names->snext(status)) != NULL && U_SUCCESS(status))
		{
			std::string n;
			bool		known = false;

			name->toUTF8String(n);
			for (int i = 0; i < nallowed; i++)
				if (n == allowed[i])
					known = true;
			if (!known)
			{
				snprintf(errbuf, errlen, "unknown argument {%s}", n.c_str());
				rc = -1;
				break;
			}
		}
		delete names;
		return rc;
	}
	catch (...)
	{
		snprintf(errbuf, errlen, "unexpected failure in ICU");
		return -1;
	}
}
