/*-------------------------------------------------------------------------
 *
 * customers.c
 *	  Customer identifiers (SPEC section 4): the one place that reads
 *	  "id:N", a card number or a phone in any spelling, and
 *	  loyalty.find_customer, which resolves one to a customer id.
 *
 * The rule was written twice before 0.9, in PL/pgSQL (find_customer) and
 * in C (the check API's loader), and the two disagreed at the edges.  Now
 * customer_key_parse reads the identifier and CUSTOMER_KEY_WHERE finds the
 * row; find_customer runs them in one query, and check_db.c joins the same
 * condition into its customer load, so a check still resolves and loads
 * its customer in a single query.  Nothing here writes.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include <ctype.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"

#include "customers.h"
#include "phone.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(loyalty_find_customer);

/* the characters a phone-like identifier consists of, after "+" or "00" */
#define PHONE_LIKE_CHARS	"0123456789 ()-."

/*
 * parse_id_form reads "id:N": "id:" in any case, blanks, then 1 to 18
 * digits and nothing else.
 */
static bool
parse_id_form(const char *s, int64 *id)
{
	const char *p;
	int64		v = 0;
	int			digits = 0;

	if (pg_strncasecmp(s, "id:", 3) != 0)
		return false;
	for (p = s + 3; isspace((unsigned char) *p); p++)
		;
	for (; *p >= '0' && *p <= '9'; p++)
	{
		if (++digits > 18)
			return false;
		v = v * 10 + (*p - '0');
	}
	if (*p != '\0' || digits == 0)
		return false;
	*id = v;
	return true;
}

/*
 * looks_like_phone tells whether s is worth parsing as a phone: an
 * optional "+" or "00", then 5 to 30 digits, blanks, parentheses, dashes
 * or dots.
 */
static bool
looks_like_phone(const char *s)
{
	const char *p = (*s == '+') ? s + 1 : s;
	size_t		n = strspn(p, PHONE_LIKE_CHARS);

	if (p[n] != '\0')
		return false;
	if (n >= 5 && n <= 30)
		return true;
	/* "00" and 5 to 30 more */
	return p == s && n >= 7 && n <= 32 && p[0] == '0' && p[1] == '0';
}

/* customer_key_parse reads an identifier (see customers.h). */
void
customer_key_parse(const char *identifier, CustomerKey *key)
{
	const char *start = identifier;
	const char *end;
	int64		phone;

	/* blanks around it do not count (find_customer's btrim) */
	while (*start == ' ')
		start++;
	end = start + strlen(start);
	while (end > start && end[-1] == ' ')
		end--;
	key->card = *end == '\0' ? start : pnstrdup(start, end - start);
	key->phone = NULL;
	key->by_id = parse_id_form(key->card, &key->id);
	if (!key->by_id && looks_like_phone(key->card) &&
		phone_parse(key->card, true, &phone))
		key->phone = psprintf("+" INT64_FORMAT, phone);
}

/* customer_key_args fills CUSTOMER_KEY_WHERE's parameters. */
void
customer_key_args(const CustomerKey *key, Datum *values, char *nulls)
{
	values[0] = CStringGetTextDatum(key->card);
	nulls[0] = ' ';
	if (key->phone != NULL)
	{
		values[1] = CStringGetTextDatum(key->phone);
		nulls[1] = ' ';
	}
	else
	{
		values[1] = (Datum) 0;
		nulls[1] = 'n';
	}
}

/*
 * customer_resolve returns the customer an identifier names (see
 * customers.h).  It reads with the caller's snapshot, as a STABLE
 * function does.
 */
int64
customer_resolve(const char *identifier)
{
	static SPIPlanPtr by_id_plan = NULL;
	static SPIPlanPtr by_text_plan = NULL;
	CustomerKey key;
	Datum		values[2];
	char		nulls[2];
	uint64		n;

	customer_key_parse(identifier, &key);
	if (key.by_id)
	{
		Oid			types[1] = {INT8OID};

		values[0] = Int64GetDatum(key.id);
		n = spi_exec(saved_plan(&by_id_plan,
								"SELECT coalesce(c.merged_into, c.id)"
								"  FROM loyalty.customer c WHERE c.id = $1",
								1, types),
					 values, NULL, true, 1);
	}
	else
	{
		Oid			types[2] = {TEXTOID, TEXTOID};

		customer_key_args(&key, values, nulls);
		n = spi_exec(saved_plan(&by_text_plan,
								"SELECT coalesce(c.merged_into, c.id)"
								"  FROM loyalty.customer c" CUSTOMER_KEY_WHERE,
								2, types),
					 values, nulls, true, 1);
	}
	return n == 0 ? 0 : spi_int8(0, 1, 0);
}

/*
 * loyalty_find_customer implements loyalty.find_customer(identifier text):
 * the customer's id, the survivor's for a merged one, NULL when nobody
 * matches.
 */
Datum
loyalty_find_customer(PG_FUNCTION_ARGS)
{
	char	   *identifier = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		id;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	id = customer_resolve(identifier);
	SPI_finish();
	if (id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}
