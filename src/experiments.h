/*-------------------------------------------------------------------------
 *
 * experiments.h
 *	  A/B experiments for the check engine (SPEC section 10): which variant
 *	  of an experiment a customer is in, with the same hash as the SQL
 *	  function loyalty.ab_bucket, so that SQL and C always agree.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_EXPERIMENTS_H
#define LOYALTY_EXPERIMENTS_H

#include "postgres.h"

/* an experiment as the engine needs it (config_cache.c loads it) */
typedef struct CachedExperiment
{
	char	   *code;
	int			holdout;		/* buckets 0 .. holdout-1 are the holdout */
	int			nvariants;
	char	  **variants;		/* codes, in the order written */
	int64	   *upto;			/* cumulative weights */
	int64		total;			/* sum of the weights */
} CachedExperiment;

/* the variant index "holdout" and "any variant but the holdout" */
#define EXPERIMENT_HOLDOUT		(-1)
#define EXPERIMENT_ANY_VARIANT	(-2)

extern int	experiment_bucket(const char *code, int64 customer_id);
extern int	experiment_variant_of(const CachedExperiment *e, int64 customer_id);

#endif							/* LOYALTY_EXPERIMENTS_H */
