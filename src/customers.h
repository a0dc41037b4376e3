/*-------------------------------------------------------------------------
 *
 * customers.h
 *	  The one rule that turns a customer identifier into a customer
 *	  (SPEC section 4): "id:N", a card number, or a phone in any spelling;
 *	  a merged customer resolves to the survivor.  loyalty.find_customer,
 *	  and through it every SQL function taking an identifier, and the
 *	  check API's customer loader (check_db.c) all resolve through here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_CUSTOMERS_H
#define LOYALTY_CUSTOMERS_H

/* An identifier, read (customer_key_parse); no query has run yet. */
typedef struct CustomerKey
{
	bool		by_id;			/* "id:N": the customer row with id N */
	int64		id;
	const char *card;			/* else: the (trimmed) text as a card number */
	char	   *phone;			/* and as a phone ("+" and E.164 digits), or
								 * NULL when it is no phone number */
} CustomerKey;

/*
 * customer_key_parse reads an identifier (blanks around it ignored): the
 * form "id:N" (any case, blanks after the colon, 1 to 18 digits), or else
 * a card number that is also tried as a phone number when it looks like
 * one (an optional "+" or "00", then 5 to 30 digits, blanks, parentheses,
 * dashes or dots) and parses as one.  Runs no SQL.
 */
extern void customer_key_parse(const char *identifier, CustomerKey *key);

/*
 * CUSTOMER_KEY_WHERE selects, from "loyalty.customer c", the row a
 * non-id key names: the customer of card $1, else the one with phone $2
 * (text, NULL when none).  Append it to a query over that alias, and give
 * it the parameters customer_key_args fills.  The row found may have been
 * merged: its survivor is coalesce(c.merged_into, c.id) (merges keep
 * this one hop).
 */
#define CUSTOMER_KEY_WHERE \
	" WHERE c.id = coalesce(" \
	"   (SELECT k.customer_id FROM loyalty.card k WHERE k.number = $1)," \
	"   (SELECT p.id FROM loyalty.customer p" \
	"     WHERE p.phone OPERATOR(loyalty.=) $2::loyalty.phone))"

/* customer_key_args fills CUSTOMER_KEY_WHERE's $1 and $2 (both text). */
extern void customer_key_args(const CustomerKey *key, Datum *values,
							  char *nulls);

/*
 * customer_resolve returns the id of the customer an identifier names (the
 * survivor, when merged), or 0 when nobody matches: one query.  Call
 * inside SPI_connect.
 */
extern int64 customer_resolve(const char *identifier);

#endif							/* LOYALTY_CUSTOMERS_H */
