/*-------------------------------------------------------------------------
 *
 * timezones.c
 *	  Time zone names: loyalty.is_valid_timezone, the check behind the
 *	  store and setting time zones.
 *
 * Asking PostgreSQL's own zone loader (pg_tzset) takes microseconds; the
 * pg_timezone_names view it replaces reads the whole zone directory, tens
 * of milliseconds per row written.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(loyalty_is_valid_timezone);

/*
 * loyalty_is_valid_timezone tells whether PostgreSQL knows the zone (a name
 * of the tz database such as Europe/Moscow, or UTC); at most TZ_STRLEN_MAX
 * characters.
 */
Datum
loyalty_is_valid_timezone(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (name[0] == '\0' || strlen(name) > TZ_STRLEN_MAX)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(pg_tzset(name) != NULL);
}
