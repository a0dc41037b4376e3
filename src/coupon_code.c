/*-------------------------------------------------------------------------
 *
 * coupon_code.c
 *	  Coupon and certificate codes: generated from a strong random source in
 *	  an unambiguous alphabet, with a check symbol so typos are caught.
 *
 * A code is 12 symbols of Crockford's base32 alphabet (digits and capital
 * letters without I, L, O and U), printed in groups of four:
 * K7QX-9M2P-4RTZ.  The first 11 symbols come from pg_strong_random (55 bits);
 * the 12th is a Luhn mod 32 check symbol, which catches every single
 * mistyped symbol and most swaps of neighbours.  Reading a code forgives
 * case, spaces and dashes, and the look-alikes I and L (read as 1) and O
 * (read as 0).
 *
 * The developer option loyalty.debug_coupon_codes hands out given codes,
 * in order, before random ones, so tests can make an issued code collide.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "coupon_code.h"

#include "utils/builtins.h"
#include "utils/guc.h"

PG_FUNCTION_INFO_V1(loyalty_new_coupon_code);
PG_FUNCTION_INFO_V1(loyalty_coupon_code);

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define CODE_BASE		32

/* how many codes of loyalty.debug_coupon_codes were handed out */
static int	debug_codes_used = 0;

/*
 * symbol_value returns the value (0..31) of a code symbol, reading look-alikes
 * leniently, or -1 for a character that is not a symbol.
 */
static int
symbol_value(char c)
{
	const char *p;

	if (c >= 'a' && c <= 'z')
		c = c - 'a' + 'A';
	if (c == 'I' || c == 'L')
		c = '1';
	else if (c == 'O')
		c = '0';
	p = strchr(alphabet, c);
	if (c == '\0' || p == NULL)
		return -1;
	return (int) (p - alphabet);
}

/*
 * luhn_sum is the Luhn mod 32 sum of values[0..n-1], doubling every second
 * symbol counted from the right starting with the rightmost when
 * double_last, as the check symbol computation wants.
 */
static int
luhn_sum(const int *values, int n, bool double_last)
{
	int			sum = 0;
	bool		dbl = double_last;

	for (int i = n - 1; i >= 0; i--)
	{
		int			addend = values[i] * (dbl ? 2 : 1);

		sum += addend / CODE_BASE + addend % CODE_BASE;
		dbl = !dbl;
	}
	return sum % CODE_BASE;
}

/*
 * coupon_code_format writes the 12 symbol values as XXXX-XXXX-XXXX into out
 * (COUPON_CODE_LEN + 1 bytes).
 */
static void
coupon_code_format(const int *values, char *out)
{
	int			j = 0;

	for (int i = 0; i < COUPON_CODE_SYMBOLS; i++)
	{
		if (i > 0 && i % 4 == 0)
			out[j++] = '-';
		out[j++] = alphabet[values[i]];
	}
	out[j] = '\0';
}

/*
 * list_item finds the n-th comma-separated item of list: its start and
 * length; false when the list has fewer items.
 */
static bool
list_item(const char *list, int n, const char **start, size_t *len)
{
	const char *p = list;

	for (;;)
	{
		const char *end = strchr(p, ',');

		if (n-- == 0)
		{
			*start = p;
			*len = end ? (size_t) (end - p) : strlen(p);
			return true;
		}
		if (end == NULL)
			return false;
		p = end + 1;
	}
}

/*
 * debug_code writes the n-th code of loyalty.debug_coupon_codes (checked
 * well-formed by its check hook) into out; false when there are fewer.
 */
static bool
debug_code(int n, char *out)
{
	const char *start;
	size_t		len;
	char	   *item;
	const char *why;

	if (!list_item(loyalty_debug_coupon_codes, n, &start, &len))
		return false;
	item = pnstrdup(start, len);
	if (!coupon_code_normalize(item, out, &why))
		elog(ERROR, "loyalty.debug_coupon_codes holds a malformed code");
	pfree(item);
	return true;
}

/* coupon_code_debug_check: every item of the list is a well-formed code. */
bool
coupon_code_debug_check(char **newval, void **extra, GucSource source)
{
	const char *start;
	size_t		len;

	if (*newval == NULL || **newval == '\0')
		return true;
	for (int n = 0; list_item(*newval, n, &start, &len); n++)
	{
		char		item[64];
		char		code[COUPON_CODE_LEN + 1];
		const char *why = NULL;

		if (len >= sizeof(item))
		{
			GUC_check_errdetail("A code has 12 symbols.");
			return false;
		}
		memcpy(item, start, len);
		item[len] = '\0';
		if (!coupon_code_normalize(item, code, &why))
		{
			GUC_check_errdetail("\"%s\" is not a coupon code: %s.", item, why);
			return false;
		}
	}
	return true;
}

/* coupon_code_debug_assign: a new list is handed out from its start. */
void
coupon_code_debug_assign(const char *newval, void *extra)
{
	debug_codes_used = 0;
}

/*
 * coupon_code_generate writes a new random code into out
 * (COUPON_CODE_LEN + 1 bytes); the next of loyalty.debug_coupon_codes
 * first, while it has any left.
 */
void
coupon_code_generate(char *out)
{
	uint8		bytes[COUPON_CODE_SYMBOLS - 1];
	int			values[COUPON_CODE_SYMBOLS];

	if (loyalty_debug_coupon_codes != NULL && loyalty_debug_coupon_codes[0] != '\0' &&
		debug_code(debug_codes_used, out))
	{
		debug_codes_used++;
		return;
	}

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random coupon code")));
	/* 256 is a multiple of 32: the low 5 bits are uniform */
	for (int i = 0; i < COUPON_CODE_SYMBOLS - 1; i++)
		values[i] = bytes[i] & (CODE_BASE - 1);
	values[COUPON_CODE_SYMBOLS - 1] =
		(CODE_BASE - luhn_sum(values, COUPON_CODE_SYMBOLS - 1, true)) % CODE_BASE;
	coupon_code_format(values, out);
}

/*
 * coupon_code_normalize reads a generated code as a person may type it and
 * writes its canonical form into out (COUPON_CODE_LEN + 1 bytes).  Returns
 * false, with *why set, when it is not a well-formed code or its check symbol
 * does not match.
 */
bool
coupon_code_normalize(const char *input, char *out, const char **why)
{
	int			values[COUPON_CODE_SYMBOLS];
	int			n = 0;

	for (const char *p = input; *p; p++)
	{
		int			v;

		if (*p == '-' || *p == ' ')
			continue;
		v = symbol_value(*p);
		if (v < 0)
		{
			*why = "it holds a character that is not a code symbol";
			return false;
		}
		if (n == COUPON_CODE_SYMBOLS)
		{
			*why = "it is longer than 12 symbols";
			return false;
		}
		values[n++] = v;
	}
	if (n != COUPON_CODE_SYMBOLS)
	{
		*why = "a code has 12 symbols";
		return false;
	}
	if (luhn_sum(values, COUPON_CODE_SYMBOLS, false) != 0)
	{
		*why = "its check symbol does not match: a symbol is mistyped";
		return false;
	}
	coupon_code_format(values, out);
	return true;
}

/*
 * loyalty_new_coupon_code returns a new random code.
 */
Datum
loyalty_new_coupon_code(PG_FUNCTION_ARGS)
{
	char		code[COUPON_CODE_LEN + 1];

	coupon_code_generate(code);
	PG_RETURN_TEXT_P(cstring_to_text(code));
}

/*
 * loyalty_coupon_code returns the canonical form of a generated code typed
 * in any case, with or without dashes; a malformed code or a wrong check
 * symbol is 22P02.
 */
Datum
loyalty_coupon_code(PG_FUNCTION_ARGS)
{
	char	   *input = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		code[COUPON_CODE_LEN + 1];
	const char *why = NULL;

	if (!coupon_code_normalize(input, code, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid coupon code: \"%s\"", input),
				 errdetail("The code is not valid: %s.", why)));
	PG_RETURN_TEXT_P(cstring_to_text(code));
}
