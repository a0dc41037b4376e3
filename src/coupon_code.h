/*-------------------------------------------------------------------------
 *
 * coupon_code.h
 *	  Generated coupon and certificate codes (see coupon_code.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_COUPON_CODE_H
#define LOYALTY_COUPON_CODE_H

#include "utils/guc.h"

#define COUPON_CODE_SYMBOLS	12			/* 11 random + 1 check */
#define COUPON_CODE_LEN		14			/* with two dashes */

extern void coupon_code_generate(char *out);
extern bool coupon_code_normalize(const char *input, char *out, const char **why);

/* check and assign hooks of loyalty.debug_coupon_codes */
extern bool coupon_code_debug_check(char **newval, void **extra, GucSource source);
extern void coupon_code_debug_assign(const char *newval, void *extra);

#endif							/* LOYALTY_COUPON_CODE_H */
