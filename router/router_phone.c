/*-------------------------------------------------------------------------
 *
 * router_phone.c
 *	  The loyalty extension's phone parser (src/phone.c), compiled into the
 *	  router's own module, so that the router normalizes a phone exactly as
 *	  a shard does without needing the loyalty extension.
 *
 * phone_parse completes a national number with loyalty_default_country;
 * in the router that variable is not a setting but is set from the
 * router's fixed configuration before each parse (loyalty_router.c).
 *
 *-------------------------------------------------------------------------
 */
#include "../src/phone.c"
