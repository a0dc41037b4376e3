/*-------------------------------------------------------------------------
 *
 * json_path.h
 *	  The path of the JSON field being parsed ("lines[2].sku"), kept in a
 *	  StringInfo so that error details can name it.  Shared by the request
 *	  parser (request.c) and the promotion rule parser (rules.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_JSON_PATH_H
#define LOYALTY_JSON_PATH_H

#include "lib/stringinfo.h"

/* json_path_push_key appends ".key" ("key" at the root); returns the old length */
static inline int
json_path_push_key(StringInfo path, const char *key)
{
	int			saved = path->len;

	appendStringInfo(path, saved == 0 ? "%s" : ".%s", key);
	return saved;
}

/* json_path_push_index appends "[i]"; returns the old length */
static inline int
json_path_push_index(StringInfo path, int i)
{
	int			saved = path->len;

	appendStringInfo(path, "[%d]", i);
	return saved;
}

/* json_path_pop cuts the path back to a length returned by a push */
static inline void
json_path_pop(StringInfo path, int saved)
{
	path->len = saved;
	path->data[saved] = '\0';
}

#endif							/* LOYALTY_JSON_PATH_H */
