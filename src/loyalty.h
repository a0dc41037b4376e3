/*-------------------------------------------------------------------------
 *
 * loyalty.h
 *	  Declarations shared by every part of the loyalty extension: the
 *	  extension's own SQLSTATEs and its settings (GUCs).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_H
#define LOYALTY_H

#include "postgres.h"

/*
 * The extension's SQLSTATEs (SPEC section 12).  Class "LY" is ours; the
 * standard codes (22P02, 22023, 23514) come from utils/errcodes.h.
 */
#define ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND		MAKE_SQLSTATE('L','Y','0','0','1')
#define ERRCODE_LOYALTY_OPERATION_NOT_FOUND		MAKE_SQLSTATE('L','Y','0','0','2')
#define ERRCODE_LOYALTY_OPERATION_CONFLICT		MAKE_SQLSTATE('L','Y','0','0','3')
#define ERRCODE_LOYALTY_INSUFFICIENT_POINTS		MAKE_SQLSTATE('L','Y','0','0','4')
#define ERRCODE_LOYALTY_REFUND_EXCEEDS			MAKE_SQLSTATE('L','Y','0','0','5')
#define ERRCODE_LOYALTY_INVALID_CONFIGURATION	MAKE_SQLSTATE('L','Y','0','0','6')
#define ERRCODE_LOYALTY_PRICE_CHANGED			MAKE_SQLSTATE('L','Y','0','0','7')
#define ERRCODE_LOYALTY_ORDER_STATE				MAKE_SQLSTATE('L','Y','0','0','8')

/* settings, defined in loyalty.c */
extern int	loyalty_default_country;
extern bool loyalty_notify;
extern char *loyalty_debug_coupon_codes;
extern char *loyalty_test_now;

#endif							/* LOYALTY_H */
