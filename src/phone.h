/*-------------------------------------------------------------------------
 *
 * phone.h
 *	  The parser of the loyalty.phone type (phone.c), for C callers that
 *	  must tell a phone number from other text without catching an error.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_PHONE_H
#define LOYALTY_PHONE_H

/*
 * phone_parse reads a phone number in any usual spelling (completed with
 * loyalty.default_country) into its E.164 digits.  When str is no phone
 * number it raises the type's 22P02 error, or with errorOK returns false
 * (as contrib/isn's string2ean does).  Runs no SQL, holds no resources.
 */
extern bool phone_parse(const char *str, bool errorOK, int64 *result);

#endif							/* LOYALTY_PHONE_H */
