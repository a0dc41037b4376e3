/*-------------------------------------------------------------------------
 *
 * redeem.h
 *	  How many points a check may spend, from which accounts, on which lines
 *	  (SPEC sections 2 and 8).  Pure computation, no database access.
 *
 * Accounts are taken in redeem_order (the caller passes them sorted).  On
 * each line an account may pay up to floor(amount * redeem_share) minus what
 * earlier accounts already pay on that line, so the shares are cumulative
 * caps: with promo (0.3, order 10) and main (0.9, order 100) a line is paid
 * at most 30% by promo and 90% by both together.  Lines flagged no_redeem
 * take nothing; an account whose min_check the check does not reach takes
 * nothing.  An account's maximum is the smaller of its balance and its caps
 * converted to points (rounded down to the points precision).  The money
 * value of the points applied is spread over lines by largest remainder in
 * proportion to the caps, so no line passes its cap.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_REDEEM_H
#define LOYALTY_REDEEM_H

/* A line as redemption sees it. */
typedef struct RedeemLine
{
	int64		amount;			/* money still to pay, minor units */
	bool		no_redeem;
} RedeemLine;

/* An account of the customer, in redeem_order. */
typedef struct RedeemAccount
{
	int64		available;		/* points (hundredths) the customer holds */
	int32		share;			/* redeem_share in hundredths of a percent */
	int64		min_check;		/* minor units */
} RedeemAccount;

/* What one account gives. */
typedef struct RedeemResult
{
	int64		max_points;		/* the most this account could pay */
	int64		points;			/* applied, hundredths */
	int64		money;			/* their value, minor units */
	int64	   *line_money;		/* per line, minor units (palloc'd, nlines) */
} RedeemResult;

/*
 * redeem_plan fills results[naccounts].  requested is the points asked for
 * (hundredths), or -1 for "max".  point_value is the money one point pays
 * (minor units); precision is the points precision (0 or 2 decimals).
 * check_total is the check's money before redemption (for min_check).
 * Returns the total points applied.
 */
extern int64 redeem_plan(const RedeemLine *lines, int nlines,
						 const RedeemAccount *accounts, int naccounts,
						 int64 check_total, int64 requested,
						 int64 point_value, int precision,
						 RedeemResult *results);

#endif							/* LOYALTY_REDEEM_H */
