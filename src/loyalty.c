/*-------------------------------------------------------------------------
 *
 * loyalty.c
 *	  Module entry point of the loyalty extension: PG_MODULE_MAGIC and the
 *	  settings (GUCs) under the reserved prefix "loyalty".
 *
 * Program-wide business settings (currency, points precision, ...) live in
 * the table loyalty.setting so that they travel with pg_dump; the GUCs here
 * are only what a session or server needs before it reads any table.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "clock.h"
#include "coupon_code.h"

PG_MODULE_MAGIC;

/* country calling code used when a phone number is written nationally */
int			loyalty_default_country = 7;

/* whether new events send NOTIFY loyalty_event */
bool		loyalty_notify = true;

/* developer option: codes handed out before random ones (coupon_code.c) */
char	   *loyalty_debug_coupon_codes = NULL;

/* tests and replays: the server's time the rules see (clock.c) */
char	   *loyalty_test_now = NULL;

void		_PG_init(void);

/*
 * _PG_init registers the extension's settings when the library is loaded.
 */
void
_PG_init(void)
{
	DefineCustomIntVariable("loyalty.default_country",
							"Country calling code assumed for phone numbers written without one.",
							"A leading national trunk prefix (8 for code 7, otherwise 0) "
							"is replaced by this code.",
							&loyalty_default_country,
							7, 1, 999,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("loyalty.notify",
							 "Sends NOTIFY loyalty_event when events are written.",
							 "NOTIFY makes the commits of notifying transactions take turns "
							 "(PostgreSQL keeps notifications in commit order); turn it off "
							 "when consumers poll loyalty.take_events instead.",
							 &loyalty_notify,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("loyalty.debug_coupon_codes",
							   "Developer option: coupon codes to hand out, in order, before random ones.",
							   "A comma-separated list of well-formed codes.  Tests use it to make an "
							   "issued code collide with an existing one; never set it in production.",
							   &loyalty_debug_coupon_codes,
							   "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE | GUC_LIST_INPUT,
							   coupon_code_debug_check, coupon_code_debug_assign, NULL);

	DefineCustomStringVariable("loyalty.test_now",
							   "For tests and replays only: the server's time the loyalty rules see.",
							   "Empty (the default) is the server's clock, now().  A timestamp with a "
							   "UTC offset fixes it; 'at' takes each request's own \"at\" as the "
							   "server's time, which turns off the window of max_backdate and "
							   "max_clock_skew.  Never set it in production.",
							   &loyalty_test_now,
							   "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE,
							   clock_test_now_check, clock_test_now_assign, NULL);

	MarkGUCPrefixReserved("loyalty");
}
