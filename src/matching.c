/*-------------------------------------------------------------------------
 *
 * matching.c
 *	  Matching a product against a selector and a moment against a schedule:
 *	  the pure functions the engine calls on parsed rules (rules.h), and the
 *	  comparators the parser sorts with so that matching can bsearch.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "rules.h"

#include "utils/datetime.h"

/* cstring_ptr_cmp orders pointers to C strings by strcmp, for qsort/bsearch. */
int
cstring_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* dateadt_qsort_cmp orders DateADTs, for qsort and bsearch. */
int
dateadt_qsort_cmp(const void *a, const void *b)
{
	DateADT		x = *(const DateADT *) a;
	DateADT		y = *(const DateADT *) b;

	return (x > y) - (x < y);
}

/*
 * schedule_matches tells whether a schedule (NULL = none) allows a moment
 * given in the store's local time.
 */
bool
schedule_matches(const Schedule *s, DateADT local_date, int iso_weekday,
				 int minute_of_day)
{
	int			i;

	if (s == NULL)
		return true;
	if (s->weekdays != 0 &&
		(iso_weekday < 1 || iso_weekday > 7 || !(s->weekdays & (1 << iso_weekday))))
		return false;
	if (s->days_of_month != 0)
	{
		int			y,
					m,
					d;

		j2date(local_date + POSTGRES_EPOCH_JDATE, &y, &m, &d);
		if (!(s->days_of_month & (((uint32) 1) << d)))
			return false;
	}
	if (s->ndates > 0 &&
		bsearch(&local_date, s->dates, s->ndates, sizeof(DateADT), dateadt_qsort_cmp) == NULL)
		return false;
	if (s->nhours > 0)
	{
		for (i = 0; i < s->nhours; i++)
			if (minute_of_day >= s->hours[i].from && minute_of_day < s->hours[i].to)
				return true;
		return false;
	}
	return true;
}

/* list_has tells whether s is in the sorted list. */
static bool
list_has(const StringList *list, const char *s)
{
	if (s == NULL || list->count == 0)
		return false;
	return bsearch(&s, list->items, list->count, sizeof(char *),
				   cstring_ptr_cmp) != NULL;
}

/* list_has_any tells whether any of values[0 .. n-1] is in the sorted list. */
static bool
list_has_any(const StringList *list, const char *const *values, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (list_has(list, values[i]))
			return true;
	return false;
}

/*
 * selector_matches tells whether a product matches a selector: "all" or
 * any list, and not the exclude selector.
 */
bool
selector_matches(const ProductSelector *sel, const char *sku, const char *brand,
				 const char *const *categories, int ncategories,
				 const char *const *tags, int ntags)
{
	bool		hit;

	hit = sel->all ||
		list_has(&sel->skus, sku) ||
		list_has(&sel->brands, brand) ||
		list_has_any(&sel->categories, categories, ncategories) ||
		list_has_any(&sel->tags, tags, ntags);
	if (!hit)
		return false;
	return sel->exclude == NULL ||
		!selector_matches(sel->exclude, sku, brand, categories, ncategories,
						  tags, ntags);
}
