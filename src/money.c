/*-------------------------------------------------------------------------
 *
 * money.c
 *	  Exact money arithmetic: numeric <-> scaled int64, half-up rounding,
 *	  percents, largest-remainder allocation and fiscal line parts.
 *
 * See money.h for the units.  Products that could overflow int64 are
 * computed in int128.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "money.h"

#include "common/int.h"
#include "utils/builtins.h"


/*
 * The numeric storage format, read and written here without going through
 * numeric.c's NumericVar arithmetic or its text form.  It is PostgreSQL's
 * on-disk format (numeric.c: "NumericShort" and "NumericLong"), stable
 * across releases since pg_upgrade keeps numeric columns as they are: a
 * uint16 header, an int16 weight in the long form, then base-10000 digits
 * with leading and trailing zero digits stripped; the value is
 * sum(digit[i] * 10000^(weight - i)).
 */
#define NUM_SIGN_MASK			0xC000
#define NUM_NEG					0x4000
#define NUM_SHORT				0x8000
#define NUM_SPECIAL				0xC000
#define NUM_SHORT_SIGN_MASK		0x2000
#define NUM_SHORT_DSCALE_MASK	0x1F80
#define NUM_SHORT_DSCALE_SHIFT	7
#define NUM_SHORT_WEIGHT_SIGN	0x0040
#define NUM_SHORT_WEIGHT_MASK	0x003F
#define NUM_DSCALE_MASK			0x3FFF
#define NUM_BASE				10000

/* 10^i for i in 0..18 */
static const int64 pow10_18[] = {
	INT64CONST(1), INT64CONST(10), INT64CONST(100), INT64CONST(1000),
	INT64CONST(10000), INT64CONST(100000), INT64CONST(1000000),
	INT64CONST(10000000), INT64CONST(100000000), INT64CONST(1000000000),
	INT64CONST(10000000000), INT64CONST(100000000000),
	INT64CONST(1000000000000), INT64CONST(10000000000000),
	INT64CONST(100000000000000), INT64CONST(1000000000000000),
	INT64CONST(10000000000000000), INT64CONST(100000000000000000),
	INT64CONST(1000000000000000000)
};

/*
 * numeric_decode reads num's sign, weight, display scale and digits from its
 * storage (see above); false for NaN and the infinities.
 */
static bool
numeric_decode(Numeric num, bool *negative, int *weight, int *dscale,
			   const uint16 **digits, int *ndigits)
{
	const char *data = VARDATA_ANY(num);
	int			size = VARSIZE_ANY_EXHDR(num);
	uint16		header;

	memcpy(&header, data, sizeof(uint16));
	if ((header & NUM_SIGN_MASK) == NUM_SPECIAL)
		return false;
	if ((header & NUM_SIGN_MASK) == NUM_SHORT)
	{
		*negative = (header & NUM_SHORT_SIGN_MASK) != 0;
		*dscale = (header & NUM_SHORT_DSCALE_MASK) >> NUM_SHORT_DSCALE_SHIFT;
		*weight = (header & NUM_SHORT_WEIGHT_MASK) |
			((header & NUM_SHORT_WEIGHT_SIGN) ? ~NUM_SHORT_WEIGHT_MASK : 0);
		data += sizeof(uint16);
		size -= sizeof(uint16);
	}
	else
	{
		int16		w;

		*negative = (header & NUM_SIGN_MASK) == NUM_NEG;
		*dscale = header & NUM_DSCALE_MASK;
		memcpy(&w, data + sizeof(uint16), sizeof(int16));
		*weight = w;
		data += 2 * sizeof(uint16);
		size -= 2 * sizeof(uint16);
	}
	*digits = (const uint16 *) data;
	*ndigits = size / (int) sizeof(uint16);
	return true;
}

/*
 * numeric_to_scaled_status converts num to an int64 count of 10^-scale
 * units (scale at most 18), telling why it cannot: NUM_TO_SCALED_DECIMALS
 * when a non-zero digit lies beyond "scale" decimals, NUM_TO_SCALED_RANGE
 * when the count does not fit int64, NUM_TO_SCALED_SPECIAL for NaN and the
 * infinities.  *dscale gets the decimals as written (its display scale).
 * Arithmetic on the stored digits: no text form, no NumericVar.
 */
NumToScaled
numeric_to_scaled_status(Numeric num, int scale, int64 *result, int *dscale)
{
	bool		negative;
	int			weight;
	int			ndigits;
	const uint16 *digits;
	int128		acc = 0;
	int			i;

	if (scale < 0 || scale >= lengthof(pow10_18))
		elog(ERROR, "numeric_to_scaled: scale %d out of range", scale);
	if (!numeric_decode(num, &negative, &weight, dscale, &digits, &ndigits))
		return NUM_TO_SCALED_SPECIAL;

	for (i = 0; i < ndigits; i++)
	{
		/* digit i is worth 10^(4 * (weight - i) + scale) units */
		int			exp10 = 4 * (weight - i) + scale;
		int64		d = digits[i];

		if (d == 0)
			continue;
		if (exp10 < 0)
		{
			/* only the digit's trailing zeros may lie beyond the scale */
			if (exp10 < -3 || d % pow10_18[-exp10] != 0)
				return NUM_TO_SCALED_DECIMALS;
			acc += d / pow10_18[-exp10];
		}
		else if (exp10 > 18)
			return NUM_TO_SCALED_RANGE;
		else
		{
			acc += (int128) d * pow10_18[exp10];
			if (acc > (int128) PG_INT64_MAX + 1)
				return NUM_TO_SCALED_RANGE;
		}
	}
	if (negative)
		acc = -acc;
	if (acc > PG_INT64_MAX || acc < PG_INT64_MIN)
		return NUM_TO_SCALED_RANGE;
	*result = (int64) acc;
	return NUM_TO_SCALED_OK;
}

/*
 * numeric_to_scaled converts num to an int64 count of 10^-scale units.
 *
 * Returns false (and leaves *result alone) when num is NaN or infinite, has
 * a non-zero digit beyond "scale" decimals, or does not fit in int64.
 * Trailing zeros do not count: 199.900 is 19990 at scale 2.
 */
bool
numeric_to_scaled(Numeric num, int scale, int64 *result)
{
	int			dscale;

	return numeric_to_scaled_status(num, scale, result, &dscale) == NUM_TO_SCALED_OK;
}

/*
 * scaled_to_numeric makes a numeric with exactly "scale" decimals from a
 * count of 10^-scale units: (19990, 2) is 199.90.  It writes the
 * short storage form (see above) directly, as numeric.c's make_result would:
 * a response has a hundred numbers or more, and going through NumericVar
 * arithmetic for each was a measurable share of a calculate (issue 21).
 * Scales above 8 (none of the extension's) take numeric.c's way.
 */
Numeric
scaled_to_numeric(int64 value, int scale)
{
	uint64		mag = value < 0 ? -(uint64) value : (uint64) value;
	uint64		ip;
	uint64		fp;
	int			fgroups = (scale + 3) / 4;
	uint16		tmp[5];
	uint16		digits[8];
	int			ni = 0;
	int			n = 0;
	int			first = 0;
	int			weight;
	bool		negative = value < 0;
	int			len;
	uint16		header;
	Numeric		result;
	int			g;

	if (scale < 0 || scale > 8)
		return int64_div_fast_to_numeric(value, scale);
	ip = mag / (uint64) pow10_18[scale];
	fp = (mag % (uint64) pow10_18[scale]) * (uint64) pow10_18[fgroups * 4 - scale];
	while (ip > 0)
	{
		tmp[ni++] = (uint16) (ip % NUM_BASE);
		ip /= NUM_BASE;
	}
	while (ni > 0)
		digits[n++] = tmp[--ni];
	weight = n - 1;
	for (g = fgroups - 1; g >= 0; g--)
		digits[n++] = (uint16) ((fp / (uint64) pow10_18[4 * g]) % NUM_BASE);

	/* strip zero digits as make_result does; zero is positive of weight 0 */
	while (first < n && digits[first] == 0)
	{
		first++;
		weight--;
	}
	while (n > first && digits[n - 1] == 0)
		n--;
	if (n == first)
	{
		weight = 0;
		negative = false;
	}

	len = VARHDRSZ + sizeof(uint16) + (n - first) * sizeof(uint16);
	result = (Numeric) palloc(len);
	SET_VARSIZE(result, len);
	header = NUM_SHORT | (negative ? NUM_SHORT_SIGN_MASK : 0) |
		(scale << NUM_SHORT_DSCALE_SHIFT) |
		(weight < 0 ? NUM_SHORT_WEIGHT_SIGN : 0) |
		(weight & NUM_SHORT_WEIGHT_MASK);
	memcpy(VARDATA(result), &header, sizeof(uint16));
	if (n > first)
		memcpy(VARDATA(result) + sizeof(uint16), digits + first,
			   (n - first) * sizeof(uint16));
	return result;
}

/*
 * scaled_to_cstring prints a count of 10^-scale units with exactly "scale"
 * decimals, as JSON and SQL want it: (19990, 2) is "199.90".
 */
char *
scaled_to_cstring(int64 value, int scale)
{
	uint64		mag;
	int64		unit;

	Assert(scale >= 0 && scale < lengthof(pow10_18));
	if (scale == 0)
		return psprintf(INT64_FORMAT, value);

	unit = pow10_18[scale];
	mag = value < 0 ? -(uint64) value : (uint64) value;
	return psprintf("%s" UINT64_FORMAT ".%0*" INT64_MODIFIER "u",
					value < 0 ? "-" : "", mag / (uint64) unit, scale,
					mag % (uint64) unit);
}

/*
 * round_div_half_up returns numerator / denominator rounded half away from
 * zero; denominator must be positive.
 */
int64
round_div_half_up(int64 numerator, int64 denominator)
{
	Assert(denominator > 0);
	if (numerator >= 0)
		return (numerator + denominator / 2) / denominator;
	return -((-numerator + denominator / 2) / denominator);
}

/*
 * money_times_qty is round_half_up(price * qty, 2): the amount of a line of
 * qty thousandths at price minor units.  Errors out on overflow.
 */
int64
money_times_qty(int64 price, int64 qty)
{
	int128		product = (int128) price * qty;
	int128		rounded;

	rounded = product >= 0 ? (product + QTY_ONE / 2) / QTY_ONE
		: -((-product + QTY_ONE / 2) / QTY_ONE);
	if (rounded > PG_INT64_MAX || rounded < PG_INT64_MIN)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("line amount out of range")));
	return (int64) rounded;
}

/*
 * money_percent is round_half_up(amount * percent / 100, 2), with percent
 * in hundredths of a percent.
 */
int64
money_percent(int64 amount, int32 percent)
{
	int128		product = (int128) amount * percent;

	if (product >= 0)
		return (int64) ((product + PERCENT_100 / 2) / PERCENT_100);
	return (int64) -((-product + PERCENT_100 / 2) / PERCENT_100);
}

/* A part's rank for the units left over: its remainder, then its index. */
typedef struct RemainderRank
{
	int64		remainder;
	int			index;
} RemainderRank;

/* parts allocate_largest_remainder ranks on the stack, by insertion sort */
#define ALLOCATE_SMALL	16

/* remainder_rank_cmp orders parts by remainder descending, then index. */
static int
remainder_rank_cmp(const void *a, const void *b)
{
	const RemainderRank *x = a;
	const RemainderRank *y = b;

	if (x->remainder != y->remainder)
		return x->remainder > y->remainder ? -1 : 1;
	return (x->index > y->index) - (x->index < y->index);
}

/*
 * allocate_largest_remainder spreads total over n parts in proportion to
 * weights (each >= 0) and writes the parts to result.
 *
 * Every part gets floor(total * weight / sum); the units left over go one
 * each to the parts with the largest remainders, ties to the lower index.
 * The parts always add up to total exactly; a part whose weight is 0 gets 0
 * unless every weight is 0, in which case everything goes to part 0 (the
 * caller should not ask for that).  total must be >= 0.
 *
 * O(n log n): the parts are sorted by remainder once (0.8 looked for the
 * largest remainder once per unit left over, O(n^2), and check_spread
 * calls this once per line that reaches its cap: O(n^3) for a check of
 * many lines, issue 14).
 */
void
allocate_largest_remainder(int64 total, const int64 *weights, int n,
						   int64 *result)
{
	int128		sum = 0;
	int64		given = 0;
	RemainderRank small[ALLOCATE_SMALL];
	RemainderRank *rank;
	int			nrank = 0;
	int			i;

	Assert(total >= 0 && n > 0);
	for (i = 0; i < n; i++)
	{
		Assert(weights[i] >= 0);
		sum += weights[i];
	}
	if (sum == 0)
	{
		result[0] = total;
		for (i = 1; i < n; i++)
			result[i] = 0;
		return;
	}

	rank = n <= ALLOCATE_SMALL ? small : palloc(sizeof(RemainderRank) * n);
	if (total < (INT64CONST(1) << 30) && sum < ((int128) 1 << 32))
	{
		/*
		 * The usual sizes (a check's amounts and weights): the same
		 * quotients in int64, as share < 2^62 and remainder * 10^9 < 2^62
		 * (int128 division is a library call, several per part).
		 */
		int64		sum64 = (int64) sum;

		for (i = 0; i < n; i++)
		{
			int64		share = total * weights[i];

			result[i] = share / sum64;
			given += result[i];
			if (weights[i] == 0)
				continue;
			rank[nrank].remainder = (share % sum64) * INT64CONST(1000000000) / sum64;
			rank[nrank++].index = i;
		}
	}
	else
		for (i = 0; i < n; i++)
		{
			int128		share = (int128) total * weights[i];

			result[i] = (int64) (share / sum);
			given += result[i];
			if (weights[i] == 0)
				continue;
			/* the remainder is below sum, which fits int128; keep it as int64 rank */
			rank[nrank].remainder = (int64) ((share % sum) * INT64CONST(1000000000) / sum);
			rank[nrank++].index = i;
		}

	/*
	 * total - given < nrank: one unit each to the largest remainders; exact
	 * ties in the scaled remainder fall back to the lower index, as the spec
	 * wants.
	 */
	if (given < total)
	{
		if (nrank <= ALLOCATE_SMALL)
		{
			/* insertion sort: the order is total, so the same as qsort's */
			for (i = 1; i < nrank; i++)
			{
				RemainderRank x = rank[i];
				int			j = i;

				while (j > 0 && remainder_rank_cmp(&rank[j - 1], &x) > 0)
				{
					rank[j] = rank[j - 1];
					j--;
				}
				rank[j] = x;
			}
		}
		else
			qsort(rank, nrank, sizeof(RemainderRank), remainder_rank_cmp);
		Assert(total - given <= nrank);
		for (i = 0; given < total; i++, given++)
			result[rank[i].index]++;
	}
	if (rank != small)
		pfree(rank);
}

/*
 * money_split_parts writes the fiscal parts of a line whose total (minor
 * units) covers qty (thousandths): one part when a single price works, two
 * otherwise, so that round(qty * price) summed over the parts is total.
 *
 * Whole units: the r minor units left over by total / units go one each to
 * r of the units (7 packs for 2502.00: 1 at 357.42 and 6 at 357.43).  A weighed
 * quantity takes the price that gives total when one exists; otherwise the
 * last 0.001 of the quantity carries the difference.
 */
int
money_split_parts(int64 total, int64 qty, MoneyPart *parts)
{
	Assert(total >= 0 && qty > 0);

	if (qty % QTY_ONE == 0)
	{
		int64		units = qty / QTY_ONE;
		int64		price = total / units;
		int64		rest = total % units;

		if (rest == 0)
		{
			parts[0].qty = qty;
			parts[0].price = price;
			return 1;
		}
		parts[0].qty = (units - rest) * QTY_ONE;
		parts[0].price = price;
		parts[1].qty = rest * QTY_ONE;
		parts[1].price = price + 1;
		return 2;
	}
	else
	{
		/* the largest price whose amount does not pass total, and the next */
		int64		price = (int64) (((int128) total * QTY_ONE) / qty);
		int			k;

		for (k = 0; k <= 1; k++)
		{
			if (money_times_qty(price + k, qty) == total)
			{
				parts[0].qty = qty;
				parts[0].price = price + k;
				return 1;
			}
		}
		if (qty == 1)
		{
			/* 0.001 of a unit: the price is the total times a thousand */
			parts[0].qty = 1;
			parts[0].price = total * QTY_ONE;
			return 1;
		}
		parts[0].qty = qty - 1;
		parts[0].price = price;
		parts[1].qty = 1;
		parts[1].price = (total - money_times_qty(price, qty - 1)) * QTY_ONE;
		return 2;
	}
}
