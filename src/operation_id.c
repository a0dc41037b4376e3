/*-------------------------------------------------------------------------
 *
 * operation_id.c
 *	  The one rule for client operation ids (see operation_id.h).
 *
 * Before 0.9 each API had its own: purchase and refund trimmed blanks and
 * allowed 100 characters, adjust kept blanks, accepted "   " and let ids
 * over 200 characters reach the table's CHECK (23514).  Internal ids
 * ("merge-3-4") could be sent by a client, and a later merge filed its
 * entries under that client's operation.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "mb/pg_wchar.h"

#include "operation_id.h"

/*
 * is_white_space tells whether character c (see code_point) is white space
 * that a client could send by accident around an id: the blank, and in a
 * UTF-8 database Unicode's other spaces (controls are refused anywhere).
 */
static bool
is_white_space(pg_wchar c, bool utf8)
{
	if (c == ' ')
		return true;
	return utf8 && (c == 0xA0 || c == 0x1680 ||
					(c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
					c == 0x202F || c == 0x205F || c == 0x3000 || c == 0xFEFF);
}

/*
 * code_point returns the character at p: its Unicode code point in a UTF-8
 * database, its first byte otherwise (where only ASCII is told apart).
 */
static pg_wchar
code_point(const unsigned char *p, bool utf8)
{
	if (utf8)
		return utf8_to_unicode(p);
	return *p;
}

/*
 * operation_id_problem checks an operation id against the rule (see
 * operation_id.h).
 */
const char *
operation_id_problem(const char *s, int len, bool reference)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;
	const unsigned char *last = p;
	bool		utf8 = (GetDatabaseEncoding() == PG_UTF8);
	int			chars = 0;

	if (len == 0)
		return "must not be empty";
	/* bounds the walk below: no character is longer than this */
	if (len > OPERATION_ID_MAX * MAX_MULTIBYTE_CHAR_LEN)
		return psprintf("must have at most %d characters", OPERATION_ID_MAX);
	while (p < end)
	{
		pg_wchar	c = code_point(p, utf8);
		int			width = pg_mblen((const char *) p);

		if (c < 0x20 || c == 0x7F || (utf8 && c >= 0x80 && c <= 0x9F))
			return "must not contain control characters";
		last = p;
		p += width;
		chars++;
	}
	if (chars > OPERATION_ID_MAX)
		return psprintf("must have at most %d characters", OPERATION_ID_MAX);
	if (is_white_space(code_point((const unsigned char *) s, utf8), utf8) ||
		is_white_space(code_point(last, utf8), utf8))
		return "must not begin or end with white space";
	if (!reference && s[0] == OPERATION_ID_INTERNAL)
		return psprintf("must not begin with \"%c\", which marks the extension's own operations (merges, expiry)",
						OPERATION_ID_INTERNAL);
	return NULL;
}
