/*-------------------------------------------------------------------------
 *
 * clock.c
 *	  The server's time as the loyalty rules see it, the window a
 *	  request's "at" must lie in, and calendar arithmetic in a given time
 *	  zone (clock_add_interval).
 *
 * A register sends the moment of its check in "at".  Offline registers send
 * checks late, so "at" may lie in the past, but only by the program setting
 * max_backdate; a register's clock may run a little ahead, by at most
 * max_clock_skew.  Anything further off is refused (22023 naming "at").
 * Within the window promotions are judged at "at"; what a customer spends
 * (available, unexpired lots) and which coupons are valid are judged at the
 * server's time, which a client cannot move.
 *
 * The server's time is the transaction's start, now().  The superuser-only
 * GUC loyalty.test_now replaces it, for tests and replays only: a fixed
 * moment ('2026-12-01T12:00:00+03:00'), or 'at', which takes each
 * request's own "at" as the server's time (the rules of 0.8: history is
 * replayed as it was priced, whatever the calendar says).
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/datetime.h"

#include "clock.h"
#include "config_cache.h"
#include "request.h"

/* what loyalty.test_now says */
typedef enum ClockMode
{
	CLOCK_SERVER,				/* '' : now() */
	CLOCK_AT,					/* 'at': the request's own "at" */
	CLOCK_FIXED					/* a timestamp */
} ClockMode;

typedef struct ClockSetting
{
	ClockMode	mode;
	TimestampTz fixed;
} ClockSetting;

static ClockSetting clock_setting = {CLOCK_SERVER, 0};

/*
 * parse_moment reads a timestamp with an explicit UTC offset, as "at" is
 * written, without raising errors (a GUC check hook must not); false when
 * it is not one.
 */
static bool
parse_moment(const char *s, TimestampTz *result)
{
	return request_timestamp_parse(s, result) == TIMESTAMP_OK;
}

/*
 * clock_test_now_check validates loyalty.test_now: empty, 'at', or a
 * timestamp with a UTC offset.
 */
bool
clock_test_now_check(char **newval, void **extra, GucSource source)
{
	/* the GUC machinery frees extra with free() */
	ClockSetting *setting = malloc(sizeof(ClockSetting));

	if (setting == NULL)
		return false;
	setting->mode = CLOCK_SERVER;
	setting->fixed = 0;
	if (*newval == NULL || (*newval)[0] == '\0')
		;
	else if (strcmp(*newval, "at") == 0)
		setting->mode = CLOCK_AT;
	else if (parse_moment(*newval, &setting->fixed))
		setting->mode = CLOCK_FIXED;
	else
	{
		GUC_check_errdetail("loyalty.test_now must be empty (the server's clock), "
							"\"at\" (each request's own \"at\") or a timestamp with a UTC offset "
							"such as \"2026-12-01T12:00:00+03:00\".");
		free(setting);
		return false;
	}
	*extra = setting;
	return true;
}

/* clock_test_now_assign makes a validated loyalty.test_now current. */
void
clock_test_now_assign(const char *newval, void *extra)
{
	if (extra != NULL)
		clock_setting = *(ClockSetting *) extra;
	else
		clock_setting.mode = CLOCK_SERVER;
}

/*
 * clock_server_now returns the server's time for a request whose "at" is
 * (has_at, at): the transaction's start, unless loyalty.test_now says
 * otherwise.
 */
TimestampTz
clock_server_now(bool has_at, TimestampTz at)
{
	switch (clock_setting.mode)
	{
		case CLOCK_AT:
			if (has_at)
				return at;
			break;
		case CLOCK_FIXED:
			return clock_setting.fixed;
		case CLOCK_SERVER:
			break;
	}
	return GetCurrentTransactionStartTimestamp();
}

/*
 * clock_add_interval adds an interval to a moment the way PostgreSQL does
 * (months, then days, then time), with calendar arithmetic in time zone tz
 * rather than the session's.
 */
TimestampTz
clock_add_interval(TimestampTz t, const Interval *iv, pg_tz *tz)
{
	if (iv->month != 0 || iv->day != 0)
	{
		struct pg_tm tm;
		fsec_t		fsec;
		int			tzoff;
		int			julian;

		if (timestamp2tm(t, &tzoff, &tm, &fsec, NULL, tz) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		if (iv->month != 0)
		{
			int			months = tm.tm_year * 12 + (tm.tm_mon - 1) + iv->month;

			tm.tm_year = months / 12;
			tm.tm_mon = months % 12 + 1;
			if (tm.tm_mday > day_tab[isleap(tm.tm_year)][tm.tm_mon - 1])
				tm.tm_mday = day_tab[isleap(tm.tm_year)][tm.tm_mon - 1];
		}
		julian = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday) + iv->day;
		j2date(julian, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
		tzoff = DetermineTimeZoneOffset(&tm, tz);
		if (tm2timestamp(&tm, fsec, &tzoff, &t) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
	}
	return t + iv->time;
}

/* utc_text prints a moment in ISO 8601, in UTC ("2026-12-01T09:00:00+00:00"). */
static char *
utc_text(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tzoff;
	char		buf[MAXDATELEN + 1];

	if (timestamp2tm(t, &tzoff, &tm, &fsec, NULL, pg_tzset("UTC")) != 0)
		elog(ERROR, "timestamp out of range");
	EncodeDateTime(&tm, fsec, true, 0, NULL, USE_XSD_DATES, buf);
	return pstrdup(buf);
}

/*
 * clock_check_at raises 22023 naming path when "at" lies before server_now
 * - max_backdate or after server_now + max_clock_skew (both ends allowed).
 * The intervals are added in the program's time zone, so a day is a
 * calendar day whatever the session's TimeZone.
 */
void
clock_check_at(const ConfigCache *cfg, const char *path, TimestampTz at,
			   TimestampTz server_now)
{
	Interval	back = cfg->max_backdate;
	TimestampTz earliest;
	TimestampTz latest;

	back.month = -back.month;
	back.day = -back.day;
	back.time = -back.time;
	earliest = clock_add_interval(server_now, &back, cfg->program_tz);
	latest = clock_add_interval(server_now, &cfg->max_clock_skew, cfg->program_tz);
	if (at >= earliest && at <= latest)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("malformed request"),
			 errdetail("Field \"%s\" is %s, %s the window from %s to %s "
					   "(the server's time %s less max_backdate %s, plus max_clock_skew %s).",
					   path, utc_text(at), at < earliest ? "before" : "after",
					   utc_text(earliest), utc_text(latest), utc_text(server_now),
					   cfg->max_backdate_text, cfg->max_clock_skew_text),
			 errhint("Checks may be sent up to max_backdate late and dated up to max_clock_skew "
					 "ahead of the server's clock; the operator sets both in loyalty.setting.")));
}
