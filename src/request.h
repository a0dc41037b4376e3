/*-------------------------------------------------------------------------
 *
 * request.h
 *	  Strict parsing of check and refund requests (SPEC section 7) into C
 *	  structs.
 *
 * Every malformed field raises SQLSTATE 22023 with an errdetail naming its
 * JSON path ("Field "lines[2].price" must have at most 2 decimals."): a
 * value of the wrong JSON type, a missing required field, an unknown field
 * (typos are caught, the hint lists the known ones), money with more than
 * two decimals, quantities with more than three, negative or absurd
 * values.  Names (SKU, store, customer) are only checked for form here;
 * the engine looks them up.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REQUEST_H
#define LOYALTY_REQUEST_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

/* limits of a request; anything beyond is refused as absurd */
#define REQUEST_MAX_LINES		1000
#define REQUEST_MAX_COUPONS		20
#define REQUEST_MAX_NAME		100		/* characters of a SKU, code, id */
#define REQUEST_MAX_QTY			INT64CONST(100000000)	/* 100000 units, excl. */
#define REQUEST_MAX_PRICE		INT64CONST(100000000000)	/* 10^9 money, excl. */
#define REQUEST_MAX_CHECK		INT64CONST(1000000000000)	/* 10^10 money, excl. */

typedef enum CustomerRefKind
{
	CUSTOMER_NONE,				/* anonymous check */
	CUSTOMER_ID,				/* a number: the customer id */
	CUSTOMER_TEXT				/* phone, card number or "id:N" */
} CustomerRefKind;

typedef enum RedeemMode
{
	REDEEM_NONE,				/* absent, null or 0 */
	REDEEM_MAX,					/* "max" */
	REDEEM_POINTS				/* a number of points */
} RedeemMode;

typedef struct RequestLine
{
	char	   *sku;
	int64		qty;			/* thousandths, > 0 */
	int64		price;			/* minor units; -1 when not sent */
} RequestLine;

typedef struct CheckRequest
{
	Jsonb	   *raw;			/* the request as received */
	char	   *operation_id;	/* NULL when absent */
	CustomerRefKind customer_kind;
	int64		customer_id;	/* CUSTOMER_ID */
	char	   *customer_text;	/* CUSTOMER_TEXT, trimmed */
	char	   *store;			/* NULL when absent */
	char	   *channel;		/* NULL when absent: the store's */
	bool		has_at;
	TimestampTz at;
	int			nlines;
	RequestLine *lines;
	int			ncoupons;
	char	  **coupons;
	RedeemMode	redeem;
	int64		redeem_points;	/* hundredths, REDEEM_POINTS */
	bool		for_purchase;	/* set by purchase: coupons are locked and used */
	bool		at_held;		/* "at" is a held order's: no window check */
	TimestampTz held_now;		/* at_held: the server's time of the hold */
	const bool *held_out;		/* at_held, by promotion index (or NULL): the
								 * limited promotions whose use the hold did
								 * not count, left out (orders.c) */
	const int64 *held_given;	/* at_held, by promotion index (or NULL): the
								 * money the hold took from each budget, what
								 * the capture may take at most */
	const int64 *held_points;	/* the same for points budgets */
} CheckRequest;

typedef struct RefundLineRequest
{
	int			index;			/* line index in the purchase */
	int64		qty;			/* thousandths, > 0 */
} RefundLineRequest;

typedef struct RefundRequest
{
	Jsonb	   *raw;
	char	   *operation_id;
	char	   *purchase;		/* operation_id of the purchase */
	CustomerRefKind customer_kind;	/* "customer": whose purchase it is */
	int64		customer_id;	/* CUSTOMER_ID */
	char	   *customer_text;	/* CUSTOMER_TEXT, trimmed */
	bool		has_at;
	TimestampTz at;
	bool		all;			/* no "lines": everything that is left */
	int			nlines;
	RefundLineRequest *lines;
} RefundRequest;

/*
 * request_parse_check parses a calculate/purchase request.  operation_id is
 * required when need_operation_id; a number of points to redeem must have
 * at most points_precision decimals.
 */
extern CheckRequest *request_parse_check(Jsonb *jb, bool need_operation_id,
										 int points_precision);
extern RefundRequest *request_parse_refund(Jsonb *jb);

/* request_error raises 22023 naming a field of the request. */
extern void request_error(const char *path, const char *fmt,...)
			pg_attribute_printf(2, 3) pg_attribute_noreturn();

/* what request_timestamp_parse found */
typedef enum TimestampProblem
{
	TIMESTAMP_OK,
	TIMESTAMP_MALFORMED,		/* not ISO 8601 with an explicit UTC offset */
	TIMESTAMP_OUT_OF_RANGE		/* before 2000 or after 2200 */
} TimestampProblem;

/*
 * request_timestamp_parse parses an ISO timestamp with an explicit offset,
 * the one rule for every timestamp of every request, without raising.
 */
extern TimestampProblem request_timestamp_parse(const char *s, TimestampTz *result);

/* request_parse_at is request_timestamp_parse raising 22023 for path. */
extern TimestampTz request_parse_at(const char *path, const char *s);

#endif							/* LOYALTY_REQUEST_H */
