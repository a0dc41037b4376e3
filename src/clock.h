/*-------------------------------------------------------------------------
 *
 * clock.h
 *	  The server's time as the loyalty rules see it, the window a
 *	  request's "at" must lie in, and calendar arithmetic in a given time
 *	  zone (see clock.c).  Includes nothing of the project.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_CLOCK_H
#define LOYALTY_CLOCK_H

#include "pgtime.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

struct ConfigCache;				/* config_cache.h */

/* clock_server_now returns the server's time for a request (see clock.c) */
extern TimestampTz clock_server_now(bool has_at, TimestampTz at);

/* clock_check_at errors (22023) when "at" lies outside the allowed window */
extern void clock_check_at(const struct ConfigCache *cfg, const char *path,
						   TimestampTz at, TimestampTz server_now);

/*
 * clock_add_interval adds an interval the way PostgreSQL does, with the
 * calendar arithmetic in time zone tz (pure computation)
 */
extern TimestampTz clock_add_interval(TimestampTz t, const Interval *iv,
									  pg_tz *tz);

/* the GUC loyalty.test_now */
extern bool clock_test_now_check(char **newval, void **extra, GucSource source);
extern void clock_test_now_assign(const char *newval, void *extra);

#endif							/* LOYALTY_CLOCK_H */
