/*-------------------------------------------------------------------------
 *
 * experiments.c
 *	  A/B assignment (SPEC section 10).  The bucket of a customer in an
 *	  experiment is hashtextextended(code || ':' || customer_id, 0) mod
 *	  10000, made non-negative: hash_any_extended over the bytes, as
 *	  hashtextextended does for a deterministic collation.  The holdout
 *	  takes the first holdout buckets, the variants the rest in proportion
 *	  to their weights (loyalty.experiment_variant says the same in SQL).
 *	  Pure functions: no SPI, no error a request can cause.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "common/hashfn.h"

#include "experiments.h"

/* experiment_bucket returns the customer's bucket 0..9999 in experiment code. */
int
experiment_bucket(const char *code, int64 customer_id)
{
	char	   *key = psprintf("%s:" INT64_FORMAT, code, customer_id);
	int64		h = (int64) DatumGetUInt64(hash_any_extended((const unsigned char *) key,
															 strlen(key), 0));

	pfree(key);
	return (int) (((h % 10000) + 10000) % 10000);
}

/*
 * experiment_variant_of returns the index of the customer's variant in e,
 * or EXPERIMENT_HOLDOUT.
 */
int
experiment_variant_of(const CachedExperiment *e, int64 customer_id)
{
	int64		b = experiment_bucket(e->code, customer_id);
	int			i;

	if (b < e->holdout)
		return EXPERIMENT_HOLDOUT;
	b -= e->holdout;
	/* b < upto * (10000 - holdout) / total, without a division */
	for (i = 0; i < e->nvariants; i++)
		if (b * e->total < e->upto[i] * (10000 - e->holdout))
			return i;
	return e->nvariants - 1;	/* can't happen: the last bound is 10000 */
}
