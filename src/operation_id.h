/*-------------------------------------------------------------------------
 *
 * operation_id.h
 *	  The one rule for operation ids, shared by every API that takes one
 *	  (purchase, refund, adjust), and the namespace of the extension's own
 *	  operations (merges, expiry).
 *
 * A client operation id is 1 to OPERATION_ID_MAX characters, neither
 * beginning nor ending with white space, without control characters, and
 * not beginning with OPERATION_ID_INTERNAL, which marks the operations the
 * extension writes itself ("~merge-3-4", "~expire-742"): a client can never
 * name an operation that a merge or an expiry later files entries under.
 * Ids are opaque: nothing is trimmed or folded, so " A7 " is refused rather
 * than taken for "A7" (or kept apart from it).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_OPERATION_ID_H
#define LOYALTY_OPERATION_ID_H

/* characters of an operation id (loyalty.operation's operation_id_format) */
#define OPERATION_ID_MAX		200

/* the first character of internal operation ids, refused from clients */
#define OPERATION_ID_INTERNAL	'~'

/*
 * operation_id_problem checks the len bytes at s (a JSON string, in the
 * database encoding) against the rule.  Returns NULL when s is a valid
 * client operation id, else what is wrong as the end of a sentence without
 * its period ("must not be empty"), for the caller's 22023 errdetail
 * "Field "<path>" <problem>.".  A reference to an existing operation (a
 * refund's "purchase") passes reference = true: it may name an internal
 * operation, which then is simply not found.
 */
extern const char *operation_id_problem(const char *s, int len, bool reference);

#endif							/* LOYALTY_OPERATION_ID_H */
