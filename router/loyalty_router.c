/*-------------------------------------------------------------------------
 *
 * loyalty_router.c
 *	  The C part of the loyalty_router extension: the canonical customer
 *	  key of a phone, the routing value of any customer identifier, and
 *	  the re-raising of a shard's error returned as JSON by loyalty.api.
 *
 * A customer lives on logical partition hashtext(E.164 phone) & (P - 1);
 * ids are seq * P + partition and virtual card numbers carry the same
 * value in their 10-digit middle (docs/scale-out.md).  The functions here
 * return the value PL/Proxy's RUN ON masks with P - 1, so the router never
 * needs to know P.  A national phone number is completed with the
 * router's configured country (loyalty_router.config), which cannot change
 * once set: hence the key is IMMUTABLE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "../src/phone.h"

PG_MODULE_MAGIC;

/* what src/phone.c completes national numbers with; set from the config */
int			loyalty_default_country = 0;

/* the router's country, read once per backend (it never changes) */
static int	router_country = 0;

PG_FUNCTION_INFO_V1(loyalty_router_phone_key);
PG_FUNCTION_INFO_V1(loyalty_router_customer_key);
PG_FUNCTION_INFO_V1(loyalty_router_route_key);
PG_FUNCTION_INFO_V1(loyalty_router_unwrap);

/*
 * canonical_phone returns the E.164 text of a phone written in any
 * spelling, national numbers completed with country; NULL (with errorOK)
 * when str is no phone number, else the type's 22P02 error.
 */
static char *
canonical_phone(const char *str, int country, bool errorOK)
{
	int64		value;

	loyalty_default_country = country;
	if (!phone_parse(str, errorOK, &value))
		return NULL;
	return psprintf("+" INT64_FORMAT, value);
}

/*
 * configured_country returns the country of loyalty_router.config, read
 * once per backend; the table refuses to change it once set.
 */
static int
configured_country(void)
{
	if (router_country == 0)
	{
		bool		isnull;
		Datum		d;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("SELECT country FROM loyalty_router.config", true, 1) != SPI_OK_SELECT)
			elog(ERROR, "reading loyalty_router.config failed");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the loyalty router is not set up"),
					 errhint("Call loyalty_router.setup(country, nodes, partitions) once.")));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		router_country = DatumGetInt32(d);
		SPI_finish();
	}
	return router_country;
}

/*
 * loyalty_router_phone_key implements loyalty_router.phone_key(phone
 * text, country int): the E.164 text of a phone in any spelling, national
 * numbers completed with country; 22P02 when it is no phone number.
 */
Datum
loyalty_router_phone_key(PG_FUNCTION_ARGS)
{
	char	   *str = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		country = PG_GETARG_INT32(1);

	if (country < 1 || country > 999)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("country calling code %d is out of range", country),
				 errdetail("A country calling code has 1 to 3 digits.")));
	PG_RETURN_TEXT_P(cstring_to_text(canonical_phone(str, country, false)));
}

/*
 * loyalty_router_customer_key implements loyalty_router.customer_key(phone
 * text): phone_key with the router's configured country.
 */
Datum
loyalty_router_customer_key(PG_FUNCTION_ARGS)
{
	char	   *str = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text(canonical_phone(str, configured_country(), false)));
}

/*
 * hash_of_text is hashtext() of a C string, as a shard computes it.
 */
static int32
hash_of_text(const char *s)
{
	return DatumGetInt32(hash_any((const unsigned char *) s, strlen(s)));
}

/*
 * parse_id_form reads "id:N" as src/customers.c does: "id:" in any case,
 * blanks, then 1 to 18 digits and nothing else.
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
 * looks_like_phone is src/customers.c's test of an identifier worth
 * parsing as a phone: an optional "+" or "00", then 5 to 30 digits,
 * blanks, parentheses, dashes or dots.
 */
static bool
looks_like_phone(const char *s)
{
	const char *p = (*s == '+') ? s + 1 : s;
	size_t		n = strspn(p, "0123456789 ()-.");

	if (p[n] != '\0')
		return false;
	if (n >= 5 && n <= 30)
		return true;
	return p == s && n >= 7 && n <= 32 && p[0] == '0' && p[1] == '0';
}

/*
 * virtual_card_value tells whether s is a virtual card number ('27', ten
 * digits, an EAN-13 check digit as loyalty.card_check_digit computes it)
 * and returns its ten-digit middle, which carries the partition.
 */
static bool
virtual_card_value(const char *s, int64 *value)
{
	int			sum = 0;
	int			i;
	int64		v = 0;

	if (strlen(s) != 13 || s[0] != '2' || s[1] != '7' ||
		strspn(s, "0123456789") != 13)
		return false;
	for (i = 0; i < 12; i++)
		sum += (s[i] - '0') * ((12 - (i + 1)) % 2 == 0 ? 3 : 1);
	if ((10 - sum % 10) % 10 != s[12] - '0')
		return false;
	for (i = 2; i < 12; i++)
		v = v * 10 + (s[i] - '0');
	*value = v;
	return true;
}

/*
 * loyalty_router_route_key implements loyalty_router.route_key(identifier
 * text): the value whose low bits are the identifier's partition, read as
 * the shard's find_customer reads it (blanks around it ignored): "id:N"
 * gives N, a phone hashtext of its E.164 text, a virtual card the middle
 * of its number.  NULL for anything else (a plastic card, routed through
 * its directory row by loyalty_router.partition_of).
 */
Datum
loyalty_router_route_key(PG_FUNCTION_ARGS)
{
	char	   *start = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *end;
	int64		v;
	char	   *phone;

	while (*start == ' ')
		start++;
	end = start + strlen(start);
	while (end > start && end[-1] == ' ')
		*--end = '\0';

	if (parse_id_form(start, &v))
		PG_RETURN_INT32((int32) (v & PG_INT32_MAX));
	if (looks_like_phone(start) &&
		(phone = canonical_phone(start, configured_country(), true)) != NULL)
		PG_RETURN_INT32(hash_of_text(phone));
	if (virtual_card_value(start, &v))
		PG_RETURN_INT32((int32) (v & PG_INT32_MAX));
	PG_RETURN_NULL();
}

/*
 * error_field returns a string field of loyalty.api's error object, or
 * NULL when it is absent or not a string.
 */
static char *
error_field(Jsonb *error, const char *key)
{
	JsonbValue	k;
	JsonbValue *v;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	v = findJsonbValueFromContainer(&error->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * loyalty_router_unwrap implements loyalty_router.unwrap(response jsonb):
 * loyalty.api's {"result": R} gives R (SQL NULL for JSON null); its
 * {"error": {...}} is raised here with the shard's SQLSTATE, message,
 * detail and hint, as if the shard's function had been called directly.
 */
Datum
loyalty_router_unwrap(PG_FUNCTION_ARGS)
{
	Jsonb	   *response = PG_GETARG_JSONB_P(0);
	JsonbValue	k;
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(response))
		elog(ERROR, "loyalty.api returned no object");

	k.type = jbvString;
	k.val.string.val = "error";
	k.val.string.len = 5;
	v = findJsonbValueFromContainer(&response->root, JB_FOBJECT, &k);
	if (v != NULL)
	{
		Jsonb	   *error = JsonbValueToJsonb(v);
		char	   *sqlstate = error_field(error, "sqlstate");
		char	   *message = error_field(error, "message");
		char	   *detail = error_field(error, "detail");
		char	   *hint = error_field(error, "hint");
		int			code = ERRCODE_INTERNAL_ERROR;

		if (sqlstate != NULL && strlen(sqlstate) == 5)
			code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
								 sqlstate[3], sqlstate[4]);
		ereport(ERROR,
				(errcode(code),
				 errmsg_internal("%s", message ? message : "error on a shard"),
				 detail ? errdetail_internal("%s", detail) : 0,
				 hint ? errhint("%s", hint) : 0));
	}

	k.val.string.val = "result";
	k.val.string.len = 6;
	v = findJsonbValueFromContainer(&response->root, JB_FOBJECT, &k);
	if (v == NULL || v->type == jbvNull)
		PG_RETURN_NULL();
	PG_RETURN_JSONB_P(JsonbValueToJsonb(v));
}
