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
 * Nothing reaches ICU unchecked (issue 14): a template longer than
 * ICU_MAX_TEMPLATE_BYTES or nesting arguments deeper than ICU_MAX_NESTING
 * (ICU recurses once per level, parsing and formatting, and 4,000 levels
 * overflowed the server's stack), and a locale ICU does not know: ICU
 * accepts a locale id with a language of 12 letters or more as a "bogus"
 * Locale whose base name is NULL, and SimpleDateFormat (a {x, date} or
 * {x, time} argument) then dereferences it.  Every UErrorCode is checked.
 *
 *-------------------------------------------------------------------------
 */
#include "icu_format.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <unicode/fmtable.h>
#include <unicode/locid.h>
#include <unicode/messagepattern.h>
#include <unicode/msgfmt.h>
#include <unicode/strenum.h>
#include <unicode/uchar.h>
#include <unicode/uloc.h>
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

/*
 * The kinds of argument the nesting scanner tells apart: plural and
 * selectordinal share their syntax (# and '# in their messages).
 */
enum ScanArg
{
	SCAN_SIMPLE,
	SCAN_PLURAL,
	SCAN_SELECT,
	SCAN_CHOICE
};

/* What scan_nesting returns for a template it finds malformed. */
#define SCAN_MALFORMED	(-10)

/* scan_fail writes "what at character N" into errbuf and returns SCAN_MALFORMED. */
static int
scan_fail(char *errbuf, int errlen, const char *what, int32_t at)
{
	snprintf(errbuf, errlen, "%s at character %d", what, (int) at + 1);
	return SCAN_MALFORMED;
}

/* is_type says whether m[start, end) is name, ignoring case and white space around it. */
static bool
is_type(const icu::UnicodeString &m, int32_t start, int32_t end, const char *name)
{
	int32_t		n = (int32_t) strlen(name);

	while (start < end && u_hasBinaryProperty(m.charAt(start), UCHAR_PATTERN_WHITE_SPACE))
		start++;
	while (end > start && u_hasBinaryProperty(m.charAt(end - 1), UCHAR_PATTERN_WHITE_SPACE))
		end--;
	if (end - start != n)
		return false;
	for (int32_t k = 0; k < n; k++)
	{
		UChar		c = m.charAt(start + k);

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c != (UChar) name[k])
			return false;
	}
	return true;
}

/*
 * scan_nesting follows the syntax of ICU's MessagePattern (apostrophe mode
 * DOUBLE_OPTIONAL: '' is an apostrophe, and a single one quotes only before
 * { or }, before | in a choice message and # in a plural one; a simple
 * argument's style quotes from one apostrophe to the next) far enough to
 * know how deeply the complex arguments (plural, select, selectordinal,
 * choice) nest, with an explicit stack instead of recursion.  Wherever it
 * is unsure it refuses: what ICU would refuse anyway (an unterminated
 * argument, a quote or brace inside a name), so it never admits a template
 * nesting deeper than ICU_MAX_NESTING and never refuses one ICU parses.
 */
static int
scan_nesting(const icu::UnicodeString &m, char *errbuf, int errlen)
{
	std::vector<ScanArg> open;	/* the complex arguments open, innermost last */
	bool		in_message = true;	/* else in the style of open.back() */
	int32_t		len = m.length();
	int32_t		i = 0;

	for (;;)
	{
		ScanArg		parent = open.empty() ? SCAN_SIMPLE : open.back();

		if (in_message)
		{
			UChar		c;

			if (i >= len)
			{
				if (!open.empty())
					return scan_fail(errbuf, errlen, "malformed message template: unmatched {", len - 1);
				return ICU_OK;
			}
			c = m.charAt(i++);
			if (c == '\'')
			{
				UChar		d;

				if (i >= len)
					continue;
				d = m.charAt(i);
				if (d == '\'')
					i++;
				else if (d == '{' || d == '}' ||
						 (parent == SCAN_CHOICE && d == '|') ||
						 (parent == SCAN_PLURAL && d == '#'))
				{
					/* quoted literal text, to the next single apostrophe */
					for (;;)
					{
						i = m.indexOf((UChar) '\'', i + 1);
						if (i < 0)
						{
							i = len;
							break;
						}
						if (i + 1 < len && m.charAt(i + 1) == '\'')
							i++;
						else
						{
							i++;
							break;
						}
					}
				}
			}
			else if (c == '{')
			{
				int32_t		start = i - 1;
				int32_t		type_start;
				ScanArg		type;

				/* the argument's name, then its type */
				while (i < len && m.charAt(i) != ',' && m.charAt(i) != '}')
				{
					if (m.charAt(i) == '{' || m.charAt(i) == '\'')
						return scan_fail(errbuf, errlen, "malformed message template: bad argument name", i);
					i++;
				}
				if (i >= len)
					return scan_fail(errbuf, errlen, "malformed message template: unmatched {", start);
				if (m.charAt(i++) == '}')
					continue;	/* {name} */
				type_start = i;
				while (i < len && m.charAt(i) != ',' && m.charAt(i) != '}')
				{
					if (m.charAt(i) == '{' || m.charAt(i) == '\'')
						return scan_fail(errbuf, errlen, "malformed message template: bad argument type", i);
					i++;
				}
				if (i >= len)
					return scan_fail(errbuf, errlen, "malformed message template: unmatched {", start);
				if (is_type(m, type_start, i, "plural") || is_type(m, type_start, i, "selectordinal"))
					type = SCAN_PLURAL;
				else if (is_type(m, type_start, i, "select"))
					type = SCAN_SELECT;
				else if (is_type(m, type_start, i, "choice"))
					type = SCAN_CHOICE;
				else
					type = SCAN_SIMPLE;
				if (m.charAt(i++) == '}')
					continue;	/* {name, type} */
				if (type == SCAN_SIMPLE)
				{
					int32_t		braces = 0;

					/* a simple style, such as a number pattern or skeleton */
					for (;;)
					{
						if (i >= len)
							return scan_fail(errbuf, errlen, "malformed message template: unmatched {", start);
						c = m.charAt(i++);
						if (c == '\'')
						{
							i = m.indexOf((UChar) '\'', i);
							if (i < 0)
								return scan_fail(errbuf, errlen, "malformed message template: unmatched apostrophe", start);
							i++;
						}
						else if (c == '{')
							braces++;
						else if (c == '}' && braces > 0)
							braces--;
						else if (c == '}')
							break;
					}
					continue;
				}
				if ((int) open.size() >= ICU_MAX_NESTING)
				{
					snprintf(errbuf, errlen,
							 "arguments nest more than %d deep at character %d",
							 ICU_MAX_NESTING, (int) start + 1);
					return ICU_BAD_TEMPLATE;
				}
				open.push_back(type);
				in_message = false;
			}
			else if (c == '}' && !open.empty())
			{
				/* the end of a sub-message; in a choice, of the argument too */
				if (parent == SCAN_CHOICE)
					open.pop_back();
				else
					in_message = false;
			}
			else if (c == '|' && parent == SCAN_CHOICE)
				in_message = false;
		}
		else if (parent == SCAN_CHOICE)
		{
			/* a number and its separator (#, < or U+2264), then a message */
			while (i < len && m.charAt(i) != '#' && m.charAt(i) != '<' && m.charAt(i) != 0x2264)
			{
				UChar		c = m.charAt(i);

				if (c == '{' || c == '}' || c == '|' || c == '\'')
					return scan_fail(errbuf, errlen, "malformed message template: bad choice", i);
				i++;
			}
			if (i >= len)
				return scan_fail(errbuf, errlen, "malformed message template: unmatched {", len - 1);
			i++;
			in_message = true;
		}
		else
		{
			/* a selector (or a plural's offset:n), then { and a message; or } */
			while (i < len && m.charAt(i) != '{' && m.charAt(i) != '}')
			{
				if (m.charAt(i) == '\'')
					return scan_fail(errbuf, errlen, "malformed message template: bad selector", i);
				i++;
			}
			if (i >= len)
				return scan_fail(errbuf, errlen, "malformed message template: unmatched {", len - 1);
			if (m.charAt(i++) == '}')
				open.pop_back();	/* the end of the argument */
			in_message = true;
		}
	}
}

extern "C" int
icu_check_bounds(const char *pattern, char *errbuf, int errlen)
{
	try
	{
		size_t		bytes = strlen(pattern);

		if (bytes > ICU_MAX_TEMPLATE_BYTES)
		{
			snprintf(errbuf, errlen, "template is %zu bytes long, more than the %d allowed",
					 bytes, ICU_MAX_TEMPLATE_BYTES);
			return ICU_BAD_TEMPLATE;
		}
		icu::UnicodeString m = icu::UnicodeString::fromUTF8(pattern);
		int			rc = scan_nesting(m, errbuf, errlen);

		if (rc == SCAN_MALFORMED)
		{
			UErrorCode	status = U_ZERO_ERROR;
			UParseError pe;

			/*
			 * ICU refuses it too, no later than where the scan stopped, so no
			 * deeper than the scan saw: let ICU say what is wrong, as before.
			 */
			icu::MessagePattern mp(m, &pe, status);

			if (U_FAILURE(status))
				set_error(errbuf, errlen, "malformed message template", status, &pe);
			rc = ICU_BAD_TEMPLATE;
		}
		return rc;
	}
	catch (...)
	{
		snprintf(errbuf, errlen, "unexpected failure in ICU");
		return ICU_FAILED;
	}
}

/*
 * known_languages returns the languages of the locales ICU has data for
 * (some 200), gathered on first use.
 */
static const std::set<std::string> &
known_languages()
{
	static std::set<std::string> *langs = NULL;

	if (langs == NULL)
	{
		std::set<std::string> *s = new std::set<std::string>();
		int32_t		n = 0;
		const icu::Locale *all = icu::Locale::getAvailableLocales(n);

		for (int32_t k = 0; all != NULL && k < n; k++)
			if (!all[k].isBogus() && all[k].getLanguage()[0] != '\0')
				s->insert(all[k].getLanguage());
		langs = s;
	}
	return *langs;
}

/*
 * parse_locale makes the ICU Locale of locale after the checks of
 * icu_check_locale.  Returns ICU_OK or ICU_BAD_LOCALE with errbuf set.
 */
static int
parse_locale(const char *locale, icu::Locale &loc, char *errbuf, int errlen)
{
	size_t		bytes = strlen(locale);
	UErrorCode	status = U_ZERO_ERROR;
	char		tag[ULOC_FULLNAME_CAPACITY];
	int32_t		taglen;

	if (bytes == 0 || bytes > ICU_MAX_LOCALE_BYTES)
	{
		snprintf(errbuf, errlen, "a locale is 1 to %d characters long", ICU_MAX_LOCALE_BYTES);
		return ICU_BAD_LOCALE;
	}
	if (strspn(locale, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-@=;") != bytes)
	{
		snprintf(errbuf, errlen, "a locale has only letters, digits and the characters _-@=;");
		return ICU_BAD_LOCALE;
	}
	if (strchr(locale, '-') != NULL && strchr(locale, '@') == NULL)
	{
		loc = icu::Locale::forLanguageTag(locale, status);
		if (U_FAILURE(status))
		{
			snprintf(errbuf, errlen, "locale \"%s\" is not a well-formed BCP 47 language tag (%s)",
					 locale, u_errorName(status));
			return ICU_BAD_LOCALE;
		}
	}
	else
		loc = icu::Locale(locale);
	if (loc.isBogus() || loc.getLanguage()[0] == '\0')
	{
		snprintf(errbuf, errlen, "locale \"%s\" is not a well-formed locale", locale);
		return ICU_BAD_LOCALE;
	}
	/* every part well formed: the locale has a strict BCP 47 form */
	status = U_ZERO_ERROR;
	taglen = uloc_toLanguageTag(loc.getName(), tag, sizeof(tag), true, &status);
	if (U_FAILURE(status) || status == U_STRING_NOT_TERMINATED_WARNING ||
		taglen <= 0 || taglen >= (int32_t) sizeof(tag))
	{
		snprintf(errbuf, errlen, "locale \"%s\" is not a well-formed locale (%s)",
				 locale, u_errorName(status));
		return ICU_BAD_LOCALE;
	}
	if (known_languages().count(loc.getLanguage()) == 0)
	{
		snprintf(errbuf, errlen, "ICU has no data for the language of locale \"%s\"", locale);
		return ICU_BAD_LOCALE;
	}
	return ICU_OK;
}

extern "C" int
icu_check_locale(const char *locale, char *errbuf, int errlen)
{
	try
	{
		icu::Locale loc;

		return parse_locale(locale, loc, errbuf, errlen);
	}
	catch (...)
	{
		snprintf(errbuf, errlen, "unexpected failure in ICU");
		return ICU_FAILED;
	}
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
		icu::Locale loc;
		int			rc;

		*result = NULL;
		if ((rc = icu_check_bounds(pattern, errbuf, errlen)) != ICU_OK)
			return rc;
		if ((rc = parse_locale(locale, loc, errbuf, errlen)) != ICU_OK)
			return rc;

		icu::MessageFormat fmt(icu::UnicodeString::fromUTF8(pattern), loc, pe, status);

		if (U_FAILURE(status))
		{
			set_error(errbuf, errlen, "malformed message template", status, &pe);
			return ICU_BAD_TEMPLATE;
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
		if (U_FAILURE(status) || out.isBogus())
		{
			set_error(errbuf, errlen, "cannot format message",
					  U_FAILURE(status) ? status : U_MEMORY_ALLOCATION_ERROR, NULL);
			return ICU_FAILED;
		}

		std::string utf8;

		out.toUTF8String(utf8);
		*result = strdup(utf8.c_str());
		if (*result == NULL)
		{
			snprintf(errbuf, errlen, "out of memory");
			return ICU_FAILED;
		}
		return ICU_OK;
	}
	catch (...)
	{
		snprintf(errbuf, errlen, "unexpected failure in ICU");
		return ICU_FAILED;
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
		icu::Locale loc;
		int			rc;

		if ((rc = parse_locale(locale, loc, errbuf, errlen)) != ICU_OK)
			return rc;
		if ((rc = icu_check_bounds(pattern, errbuf, errlen)) != ICU_OK)
			return rc;

		icu::MessageFormat fmt(icu::UnicodeString::fromUTF8(pattern), loc, pe, status);

		if (U_FAILURE(status))
		{
			set_error(errbuf, errlen, "malformed message template", status, &pe);
			return ICU_BAD_TEMPLATE;
		}
		if (!fmt.usesNamedArguments() && fmt.getArgTypeCount() > 0)
		{
			snprintf(errbuf, errlen, "arguments must be named, such as {points}");
			return ICU_BAD_TEMPLATE;
		}

		icu::StringEnumeration *names = fmt.getFormatNames(status);

		if (U_FAILURE(status) || names == NULL)
		{
			delete names;
			set_error(errbuf, errlen, "cannot list the template's arguments",
					  U_FAILURE(status) ? status : U_MEMORY_ALLOCATION_ERROR, NULL);
			return ICU_FAILED;
		}

		const icu::UnicodeString *name;

		rc = ICU_OK;
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
				rc = ICU_BAD_TEMPLATE;
				break;
			}
		}
		if (rc == ICU_OK && U_FAILURE(status))
		{
			set_error(errbuf, errlen, "cannot list the template's arguments", status, NULL);
			rc = ICU_FAILED;
		}
		delete names;
		return rc;
	}
	catch (...)
	{
		snprintf(errbuf, errlen, "unexpected failure in ICU");
		return ICU_FAILED;
	}
}
