/*-------------------------------------------------------------------------
 *
 * money.h
 *	  Exact money arithmetic for the loyalty extension (SPEC section 2).
 *
 * Units inside C, never floating point:
 *	  money		int64 minor units (kopecks): 199.90 = 19990
 *	  quantity	int64 thousandths of a unit: 2 = 2000, 0.750 kg = 750
 *	  percent	int32 hundredths of a percent: 12.5% = 1250
 *	  points	int64 hundredths of a point: 27 points = 2700
 *
 * Rounding is half up (amounts are never negative where it is used).  A
 * check-level amount is spread over lines by the largest-remainder method so
 * that the parts always add up to the whole.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_MONEY_H
#define LOYALTY_MONEY_H

#include "utils/numeric.h"

#define MONEY_SCALE		2		/* decimals of money */
#define QTY_SCALE		3		/* decimals of quantities */
#define POINTS_SCALE	2		/* decimals of points held in C */

#define QTY_ONE			1000	/* one unit in thousandths */
#define PERCENT_ONE		100		/* one percent in hundredths */
#define PERCENT_100		10000	/* a hundred percent in hundredths */

/*
 * One part of a line on a fiscal receipt: qty units at price, so that
 * round(qty * price) over the parts of a line gives the line's total.
 */
typedef struct MoneyPart
{
	int64		qty;			/* thousandths */
	int64		price;			/* minor units */
} MoneyPart;

/* numeric <-> int64 with a fixed number of decimals */
typedef enum NumToScaled
{
	NUM_TO_SCALED_OK,
	NUM_TO_SCALED_DECIMALS,		/* a non-zero digit beyond the scale */
	NUM_TO_SCALED_RANGE,		/* does not fit int64 */
	NUM_TO_SCALED_SPECIAL		/* NaN or an infinity */
} NumToScaled;

extern NumToScaled numeric_to_scaled_status(Numeric num, int scale,
											int64 *result, int *dscale);
extern bool numeric_to_scaled(Numeric num, int scale, int64 *result);
extern Numeric scaled_to_numeric(int64 value, int scale);
extern char *scaled_to_cstring(int64 value, int scale);

/* arithmetic, rounded half up */
extern int64 round_div_half_up(int64 numerator, int64 denominator);
extern int64 money_times_qty(int64 price, int64 qty);
extern int64 money_percent(int64 amount, int32 percent);

/* spreading a whole over weighted parts */
extern void allocate_largest_remainder(int64 total, const int64 *weights,
									   int n, int64 *result);

/* fiscal parts of a line: returns the number of parts written (1 or 2) */
extern int money_split_parts(int64 total, int64 qty, MoneyPart *parts);

#endif							/* LOYALTY_MONEY_H */
