/*-------------------------------------------------------------------------
 *
 * phone.c
 *	  The loyalty.phone base type: a phone number normalized to E.164.
 *
 * A value is stored as an int64 holding the E.164 digits (country calling
 * code followed by the national significant number), so it is 8 bytes,
 * passed by value, and compares, sorts and hashes like an integer.  A valid
 * value has 8 to 15 digits and no leading zero; a number in country code 7
 * (Russia, Kazakhstan) has exactly 11.  The text form is '+' followed by
 * the digits, e.g. +79123456789.
 *
 * Input accepts the usual human spellings ("+7 (912) 345-67-89",
 * "8 912 345 67 89", "00 7 912 ...", "9123456789", ...); numbers written
 * without '+' or "00" are completed with the setting loyalty.default_country
 * (see phone_parse).
 *
 * This file holds the parser (phone_parse, see phone.h), the I/O functions
 * (text and binary), the comparison and hash support for the btree and
 * hash operator classes, and phone_masked.  It runs no SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common/hashfn.h"
#include "fmgr.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"

#include "phone.h"

/* E.164 limits, counting the country code */
#define PHONE_MIN_DIGITS		8
#define PHONE_MAX_DIGITS		15
/* numbers in country code 7 always have 1 + 10 digits */
#define PHONE_RU_DIGITS			11

/* version byte that starts the binary (send/recv) format */
#define PHONE_BINARY_VERSION	1

/* digits the scanner keeps; anything longer is an error anyway */
#define PHONE_SCAN_MAX			32

#define DatumGetPhone(X)		DatumGetInt64(X)
#define PhoneGetDatum(X)		Int64GetDatum(X)
#define PG_GETARG_PHONE(n)		DatumGetPhone(PG_GETARG_DATUM(n))
#define PG_RETURN_PHONE(x)		return PhoneGetDatum(x)

PG_FUNCTION_INFO_V1(phone_in);
PG_FUNCTION_INFO_V1(phone_out);
PG_FUNCTION_INFO_V1(phone_recv);
PG_FUNCTION_INFO_V1(phone_send);
PG_FUNCTION_INFO_V1(phone_eq);
PG_FUNCTION_INFO_V1(phone_ne);
PG_FUNCTION_INFO_V1(phone_lt);
PG_FUNCTION_INFO_V1(phone_le);
PG_FUNCTION_INFO_V1(phone_gt);
PG_FUNCTION_INFO_V1(phone_ge);
PG_FUNCTION_INFO_V1(phone_cmp);
PG_FUNCTION_INFO_V1(phone_hash);
PG_FUNCTION_INFO_V1(phone_hash_extended);
PG_FUNCTION_INFO_V1(phone_masked);

/*
 * PHONE_REJECT makes phone_parse fail: with errorOK it returns false,
 * else it raises 22P02 naming str, with the errdetail sentence formatted
 * from the remaining arguments (only formatted when raised).
 */
#define PHONE_REJECT(str, errorOK, ...) \
	do { \
		if (errorOK) \
			return false; \
		ereport(ERROR, \
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION), \
				 errmsg("invalid input syntax for type %s: \"%s\"", \
						"loyalty.phone", (str)), \
				 errdetail_internal("%s", psprintf(__VA_ARGS__)))); \
	} while (0)

/*
 * phone_is_blank tells whether c is white space (in the C locale).
 */
static inline bool
phone_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
		c == '\f' || c == '\v';
}

/*
 * phone_is_separator tells whether c may appear between the digits of a
 * phone number and is simply skipped.
 */
static inline bool
phone_is_separator(char c)
{
	return phone_is_blank(c) ||
		c == '-' || c == '.' || c == '(' || c == ')';
}

/*
 * phone_digit_count returns the number of decimal digits of a positive
 * value.
 */
static int
phone_digit_count(int64 value)
{
	int			n = 0;

	do
	{
		n++;
		value /= 10;
	} while (value > 0);
	return n;
}

/*
 * phone_leading_digit returns the first decimal digit of a positive value.
 */
static int
phone_leading_digit(int64 value)
{
	while (value >= 10)
		value /= 10;
	return (int) value;
}

/*
 * phone_value_is_valid tells whether an int64 is a storable phone number:
 * 8 to 15 digits (so no leading zero), exactly 11 if it starts with 7.
 */
static bool
phone_value_is_valid(int64 value)
{
	int			ndigits;

	if (value <= 0)
		return false;
	ndigits = phone_digit_count(value);
	if (ndigits < PHONE_MIN_DIGITS || ndigits > PHONE_MAX_DIGITS)
		return false;
	if (phone_leading_digit(value) == 7 && ndigits != PHONE_RU_DIGITS)
		return false;
	return true;
}

/*
 * phone_parse turns the text str into E.164 digits in *result (see
 * phone.h): false, or with errorOK false a 22P02 error, when str is no
 * phone number.  The rules:
 *
 * - Whitespace, '-', '.', '(' and ')' are ignored anywhere; a '+' is
 *   allowed only as the first non-blank character; anything else is an
 *   error.
 * - After '+', or when the digits start with the international prefix
 *   "00" (which is dropped), the digits are the international number.
 * - Otherwise the number is national and C = loyalty.default_country
 *   completes it.  For C = 7: 10 digits get 7 in front; 11 digits starting
 *   with the trunk prefix 8 get it replaced by 7; 11 digits starting with 7
 *   are kept.  For other C (trunk prefix 0): a leading 0 is replaced by C;
 *   digits that already start with C followed by at least 8 more digits are
 *   kept; anything else gets C in front.
 * - The result must have 8 to 15 digits and must not start with 0; a number
 *   in country code 7 must have exactly 11.
 */
bool
phone_parse(const char *str, bool errorOK, int64 *result)
{
	const char *p = str;
	char		digits[PHONE_SCAN_MAX + 1];
	int			ndigits = 0;	/* digits seen, even beyond the buffer */
	bool		international = false;
	char		number[PHONE_SCAN_MAX + 8];
	const char *d;
	int			nd;
	int64		value;
	int			i;

	/* skip leading blanks; a '+' may come only right after them */
	while (phone_is_blank(*p))
		p++;
	if (*p == '+')
	{
		international = true;
		p++;
	}

	for (; *p; p++)
	{
		if (*p >= '0' && *p <= '9')
		{
			if (ndigits < PHONE_SCAN_MAX)
				digits[ndigits] = *p;
			ndigits++;
		}
		else if (phone_is_separator(*p))
			continue;
		else if (*p == '+')
			PHONE_REJECT(str, errorOK,
						 "A \"+\" is allowed only at the beginning of a phone number.");
		else
		{
			/* quote the whole (possibly multibyte) character */
			PHONE_REJECT(str, errorOK,
						 "Character \"%s\" is not allowed in a phone number.",
						 pnstrdup(p, pg_mblen(p)));
		}
	}

	if (ndigits == 0)
		PHONE_REJECT(str, errorOK, "A phone number must contain digits.");
	if (ndigits > PHONE_SCAN_MAX)
		PHONE_REJECT(str, errorOK,
					 "A phone number must have %d to %d digits including the country code, but it has %d.",
					 PHONE_MIN_DIGITS, PHONE_MAX_DIGITS, ndigits);
	digits[ndigits] = '\0';

	d = digits;
	nd = ndigits;
	if (!international && nd >= 2 && d[0] == '0' && d[1] == '0')
	{
		/* "00" is the international call prefix */
		international = true;
		d += 2;
		nd -= 2;
	}

	if (international)
	{
		if (nd == 0)
			PHONE_REJECT(str, errorOK,
						 "A phone number must contain digits after the international prefix.");
		if (d[0] == '0')
			PHONE_REJECT(str, errorOK, "A country calling code cannot start with 0.");
		strlcpy(number, d, sizeof(number));
	}
	else
	{
		int			country = loyalty_default_country;
		char		cc[16];
		int			cclen;

		cclen = snprintf(cc, sizeof(cc), "%d", country);

		if (country == 7)
		{
			if (nd == PHONE_RU_DIGITS - 1)
				snprintf(number, sizeof(number), "7%s", d);
			else if (nd == PHONE_RU_DIGITS && (d[0] == '8' || d[0] == '7'))
				snprintf(number, sizeof(number), "7%s", d + 1);
			else
				PHONE_REJECT(str, errorOK,
							 "A national number in country code 7 must have 10 digits, or 11 starting with 8 or 7, but it has %d.",
							 nd);
		}
		else if (d[0] == '0')
			snprintf(number, sizeof(number), "%s%s", cc, d + 1);
		else if (nd >= cclen + PHONE_MIN_DIGITS && strncmp(d, cc, cclen) == 0)
			strlcpy(number, d, sizeof(number));
		else
			snprintf(number, sizeof(number), "%s%s", cc, d);
	}

	/* the checks every number must pass, however it was written */
	nd = strlen(number);
	if (nd < PHONE_MIN_DIGITS || nd > PHONE_MAX_DIGITS)
		PHONE_REJECT(str, errorOK,
					 "A phone number must have %d to %d digits including the country code, but it has %d.",
					 PHONE_MIN_DIGITS, PHONE_MAX_DIGITS, nd);
	if (number[0] == '7' && nd != PHONE_RU_DIGITS)
		PHONE_REJECT(str, errorOK,
					 "A phone number in country code 7 must have exactly %d digits, but it has %d.",
					 PHONE_RU_DIGITS, nd);

	value = 0;
	for (i = 0; i < nd; i++)
		value = value * 10 + (number[i] - '0');

	if (!phone_value_is_valid(value))
		elog(ERROR, "phone number normalization produced invalid value " INT64_FORMAT,
			 value);
	*result = value;
	return true;
}

/*
 * phone_in parses the text form of a phone number (any usual spelling)
 * into its E.164 value.  It depends on loyalty.default_country, hence is
 * declared STABLE.
 */
Datum
phone_in(PG_FUNCTION_ARGS)
{
	int64		value;

	(void) phone_parse(PG_GETARG_CSTRING(0), false, &value);
	PG_RETURN_PHONE(value);
}

/*
 * phone_out prints a phone number as '+' followed by its E.164 digits.
 */
Datum
phone_out(PG_FUNCTION_ARGS)
{
	int64		value = PG_GETARG_PHONE(0);

	PG_RETURN_CSTRING(psprintf("+" INT64_FORMAT, value));
}

/*
 * phone_recv reads the binary form: a version byte (1), then the value as
 * an int64.  It rejects other versions and values that are not valid
 * E.164 numbers.
 */
Datum
phone_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version;
	int64		value;

	version = pq_getmsgbyte(buf);
	if (version != PHONE_BINARY_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary data for type %s", "loyalty.phone"),
				 errdetail("Binary format version %d is not supported, only version %d is.",
						   version, PHONE_BINARY_VERSION)));

	value = pq_getmsgint64(buf);
	if (!phone_value_is_valid(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid binary data for type %s", "loyalty.phone"),
				 errdetail("Value " INT64_FORMAT " is not a valid E.164 phone number.",
						   value)));

	PG_RETURN_PHONE(value);
}

/*
 * phone_send writes the binary form: a version byte (1), then the value as
 * an int64.
 */
Datum
phone_send(PG_FUNCTION_ARGS)
{
	int64		value = PG_GETARG_PHONE(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, PHONE_BINARY_VERSION);
	pq_sendint64(&buf, value);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/*
 * phone_eq tells whether two phone numbers are equal.
 */
Datum
phone_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PG_GETARG_PHONE(0) == PG_GETARG_PHONE(1));
}

/*
 * phone_ne tells whether two phone numbers differ.
 */
Datum
phone_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PG_GETARG_PHONE(0) != PG_GETARG_PHONE(1));
}

/*
 * phone_lt tells whether the first phone number sorts before the second.
 */
Datum
phone_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PG_GETARG_PHONE(0) < PG_GETARG_PHONE(1));
}

/*
 * phone_le tells whether the first phone number sorts before or equals the
 * second.
 */
Datum
phone_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PG_GETARG_PHONE(0) <= PG_GETARG_PHONE(1));
}

/*
 * phone_gt tells whether the first phone number sorts after the second.
 */
Datum
phone_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PG_GETARG_PHONE(0) > PG_GETARG_PHONE(1));
}

/*
 * phone_ge tells whether the first phone number sorts after or equals the
 * second.
 */
Datum
phone_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(PG_GETARG_PHONE(0) >= PG_GETARG_PHONE(1));
}

/*
 * phone_cmp is the btree comparison support function: -1, 0 or 1 as the
 * first phone number sorts before, equal to or after the second.
 */
Datum
phone_cmp(PG_FUNCTION_ARGS)
{
	int64		a = PG_GETARG_PHONE(0);
	int64		b = PG_GETARG_PHONE(1);

	PG_RETURN_INT32(a < b ? -1 : (a > b ? 1 : 0));
}

/*
 * phone_hash is the hash support function; it hashes the value exactly as
 * hashint8 hashes an int8.
 */
Datum
phone_hash(PG_FUNCTION_ARGS)
{
	int64		value = PG_GETARG_PHONE(0);

	return DirectFunctionCall1(hashint8, Int64GetDatum(value));
}

/*
 * phone_hash_extended is the seeded 64-bit hash support function, matching
 * hashint8extended (so its low 32 bits with seed 0 equal phone_hash).
 */
Datum
phone_hash_extended(PG_FUNCTION_ARGS)
{
	int64		value = PG_GETARG_PHONE(0);
	int64		seed = PG_GETARG_INT64(1);

	return DirectFunctionCall2(hashint8extended,
							   Int64GetDatum(value), Int64GetDatum(seed));
}

/*
 * phone_masked returns the number with its middle digits replaced by '*',
 * keeping '+', the first 4 digits (with the country code) and the last 4:
 * +79123456789 becomes +7912***6789.  At least 3 digits are always hidden;
 * for numbers shorter than 11 digits the kept head and tail shrink instead
 * (+12345678 becomes +123***78).
 */
Datum
phone_masked(PG_FUNCTION_ARGS)
{
	int64		value = PG_GETARG_PHONE(0);
	char		digits[32];
	char		out[34];
	int			nd;
	int			nhidden;
	int			head;
	int			tail;
	int			i;

	nd = snprintf(digits, sizeof(digits), INT64_FORMAT, value);

	nhidden = Min(Max(nd - 8, 3), nd);
	tail = Min(4, (nd - nhidden) / 2);
	head = nd - nhidden - tail;

	out[0] = '+';
	for (i = 0; i < nd; i++)
		out[1 + i] = (i < head || i >= nd - tail) ? digits[i] : '*';
	out[1 + nd] = '\0';

	PG_RETURN_TEXT_P(cstring_to_text(out));
}
