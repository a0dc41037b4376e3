/*-------------------------------------------------------------------------
 *
 * config_cache.c
 *	  Loading, caching and invalidating the program configuration for the
 *	  check engine (see config_cache.h), and the trigger function
 *	  loyalty.config_changed() that tells every backend to reload it.
 *
 * A rebuild reads each configuration table with one query, in the caller's
 * SPI connection, into a fresh memory context that only becomes the cache
 * (re-parented under CacheMemoryContext) when the whole build succeeded; an
 * error during the build leaves nothing behind.
 *
 * Invalidation rides on the relcache invalidation machinery, as pg_cron and
 * Citus do: config_changed() calls CacheInvalidateRelcacheByRelid on the oid
 * of loyalty.promotion.  The message is transactional: it reaches the
 * changing backend at its next command and every other backend when the
 * change commits; an aborted change is replayed locally on abort, so a
 * cache built from uncommitted rows is thrown away too.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "config_cache.h"
#include "money.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(config_changed);

static ConfigCache *cache = NULL;
static bool cache_stale = true;
static bool callback_registered = false;
static Oid	promotion_relid = InvalidOid;

/* An entry of the store and product hash tables: the key is a C string. */
typedef struct NameEntry
{
	const char *key;			/* points into the cache context */
	void	   *value;
} NameEntry;


/* ---------------------------------------------------------------------
 * Invalidation
 * ---------------------------------------------------------------------
 */

/*
 * promotion_oid returns the oid of loyalty.promotion (InvalidOid if none),
 * remembered until the callback sees that relation invalidated (so that a
 * dropped and re-created extension is looked up again).
 */
static Oid
promotion_oid(void)
{
	config_cache_register_callback();
	if (!OidIsValid(promotion_relid))
	{
		Oid			nsp = get_namespace_oid("loyalty", true);

		if (OidIsValid(nsp))
			promotion_relid = get_relname_relid("promotion", nsp);
	}
	return promotion_relid;
}

/*
 * config_relcache_callback marks the cache stale when loyalty.promotion's
 * relcache entry is invalidated (a configuration change, or the table being
 * dropped) or when every entry is (relid InvalidOid: a cache reset).
 */
static void
config_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == promotion_relid)
	{
		cache_stale = true;
		promotion_relid = InvalidOid;
	}
}

/* config_cache_register_callback registers the callback once per backend. */
void
config_cache_register_callback(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(config_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
}

/*
 * config_changed is the statement-level AFTER trigger on every
 * configuration table: it invalidates the engine's cache in every backend
 * (transactionally, see the file header).
 */
Datum
config_changed(PG_FUNCTION_ARGS)
{
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "config_changed: not called by trigger manager");
	relid = promotion_oid();
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	cache_stale = true;
	PG_RETURN_POINTER(NULL);
}


/* ---------------------------------------------------------------------
 * Hash tables keyed by C strings
 * ---------------------------------------------------------------------
 */

/* name_hash hashes the string a key points to. */
static uint32
name_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, strlen(s));
}

/* name_match compares the strings two keys point to (0 when equal). */
static int
name_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(const char *const *) key1, *(const char *const *) key2);
}

/* name_table creates a hash table of NameEntry in the cache context. */
static HTAB *
name_table(MemoryContext cxt, const char *what, long size)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(const char *);
	ctl.entrysize = sizeof(NameEntry);
	ctl.hash = name_hash;
	ctl.match = name_match;
	ctl.hcxt = cxt;
	return hash_create(what, Max(size, 16), &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* name_put adds key -> value (the key must live in the cache context). */
static void
name_put(HTAB *table, const char *key, void *value)
{
	bool		found;
	NameEntry  *e = hash_search(table, &key, HASH_ENTER, &found);

	e->value = value;
}

/* name_get returns the value of key, or NULL. */
static void *
name_get(HTAB *table, const char *key)
{
	NameEntry  *e;

	if (table == NULL || key == NULL)
		return NULL;
	e = hash_search(table, &key, HASH_FIND, NULL);
	return e ? e->value : NULL;
}


/* ---------------------------------------------------------------------
 * Column access
 * ---------------------------------------------------------------------
 */

/* numeric_scaled converts a numeric to 10^-scale units, rounding half up. */
static int64
numeric_scaled(Datum num, int scale)
{
	Datum		rounded = DirectFunctionCall2(numeric_round, num, Int32GetDatum(scale));
	int64		result;

	if (!numeric_to_scaled(DatumGetNumeric(rounded), scale, &result))
		elog(ERROR, "configuration value out of range");
	return result;
}

/* cstring_cmp orders C string pointers by strcmp, for qsort. */
static int
cstring_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * namelist_datum reads a text[] value taken out of its row (the loads
 * deform each row once) as a sorted NameList without its NULL elements
 * (NULL when the array is NULL).
 */
static NameList *
namelist_datum(Datum d, bool isnull)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				k;
	NameList   *list;

	if (isnull)
		return NULL;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	list = palloc(sizeof(NameList));
	list->items = palloc(sizeof(char *) * Max(n, 1));
	list->count = 0;
	for (k = 0; k < n; k++)
		if (!nulls[k])
			list->items[list->count++] = TextDatumGetCString(elems[k]);
	qsort(list->items, list->count, sizeof(char *), cstring_cmp);
	return list;
}

/* namelist_has tells whether name is in the list. */
bool
namelist_has(const NameList *list, const char *name)
{
	if (list == NULL || name == NULL || list->count == 0)
		return false;
	return bsearch(&name, list->items, list->count, sizeof(char *),
				   cstring_cmp) != NULL;
}

/* namelist_intersects tells whether any of names[0 .. n-1] is in the list. */
bool
namelist_intersects(const NameList *list, char *const *names, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (namelist_has(list, names[i]))
			return true;
	return false;
}


/* ---------------------------------------------------------------------
 * Loading
 * ---------------------------------------------------------------------
 */

/* load_settings reads the effective program settings. */
static void
load_settings(ConfigCache *c)
{
	uint64		nrows;
	uint64		r;

	nrows = spi_query("SELECT key, value FROM loyalty.settings");
	c->program_tz_name = "Europe/Moscow";
	c->points_precision = 0;
	c->point_value = 100;
	c->certificate_max_value = INT64CONST(5000000);
	c->accrual_percent = 0;
	c->currency = "RUB";
	c->tier_previous_month = false;
	memset(&c->tier_window, 0, sizeof(Interval));
	c->tier_window.day = 365;
	c->max_backdate_text = "72 hours";
	c->max_clock_skew_text = "5 minutes";
	for (r = 0; r < nrows; r++)
	{
		char	   *key = spi_text(r, 1, CurrentMemoryContext);
		char	   *value = spi_text(r, 2, CurrentMemoryContext);

		CHECK_FOR_INTERRUPTS();
		if (value == NULL)
			continue;
		if (strcmp(key, "timezone") == 0)
			c->program_tz_name = value;
		else if (strcmp(key, "points_precision") == 0)
			c->points_precision = atoi(value) == 2 ? 2 : 0;
		else if (strcmp(key, "point_value") == 0)
			c->point_value = numeric_scaled(DirectFunctionCall3(numeric_in, CStringGetDatum(value),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)), 2);
		else if (strcmp(key, "certificate_max_value") == 0)
			c->certificate_max_value = numeric_scaled(DirectFunctionCall3(numeric_in, CStringGetDatum(value),
																		  ObjectIdGetDatum(InvalidOid),
																		  Int32GetDatum(-1)), 2);
		else if (strcmp(key, "accrual_percent") == 0)
			c->accrual_percent = (int32) numeric_scaled(DirectFunctionCall3(numeric_in, CStringGetDatum(value),
																			ObjectIdGetDatum(InvalidOid),
																			Int32GetDatum(-1)), 2);
		else if (strcmp(key, "currency") == 0)
			c->currency = value;
		else if (strcmp(key, "tier_window") == 0 && strcmp(value, "previous_month") == 0)
			c->tier_previous_month = true;
		else if (strcmp(key, "tier_window") == 0)
			c->tier_window = *DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(value),
																	ObjectIdGetDatum(InvalidOid),
																	Int32GetDatum(-1)));
		else if (strcmp(key, "max_backdate") == 0)
			c->max_backdate_text = value;
		else if (strcmp(key, "max_clock_skew") == 0)
			c->max_clock_skew_text = value;
	}
	c->max_backdate = *DatumGetIntervalP(DirectFunctionCall3(interval_in,
															 CStringGetDatum(c->max_backdate_text),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)));
	c->max_clock_skew = *DatumGetIntervalP(DirectFunctionCall3(interval_in,
															   CStringGetDatum(c->max_clock_skew_text),
															   ObjectIdGetDatum(InvalidOid),
															   Int32GetDatum(-1)));
	c->program_tz = pg_tzset(c->program_tz_name);
	if (c->program_tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LOYALTY_INVALID_CONFIGURATION),
				 errmsg("invalid program time zone \"%s\"", c->program_tz_name)));
	if (c->point_value <= 0)
		c->point_value = 100;
}

/* load_stores reads the stores with their time zones. */
static void
load_stores(ConfigCache *c)
{
	uint64		nrows;
	uint64		r;

	nrows = spi_query("SELECT code, region, timezone, channel FROM loyalty.store");
	c->stores = name_table(c->cxt, "loyalty stores", (long) nrows);
	for (r = 0; r < nrows; r++)
	{
		CachedStore *s = palloc0(sizeof(CachedStore));
		char	   *tzname = spi_text(r, 3, CurrentMemoryContext);

		CHECK_FOR_INTERRUPTS();
		s->code = spi_text(r, 1, CurrentMemoryContext);
		s->region = spi_text(r, 2, CurrentMemoryContext);
		s->channel = spi_text(r, 4, CurrentMemoryContext);
		s->tz = tzname ? pg_tzset(tzname) : NULL;
		if (s->tz == NULL)
			s->tz = c->program_tz;
		name_put(c->stores, s->code, s);
	}
}

/* A category while the tree is being resolved. */
typedef struct CatNode
{
	char	   *code;
	char	   *parent;
	const char **path;			/* itself, then ancestors */
	int			npath;
} CatNode;

/*
 * resolve_category fills node->path with the category and its ancestors
 * (the tree has no cycles: a trigger refuses them; depth is bounded anyway).
 */
static void
resolve_category(HTAB *cats, CatNode *node, int ncats)
{
	CatNode    *p = node;
	int			n = 0;

	if (node->path != NULL)
		return;
	node->path = palloc(sizeof(char *) * (ncats + 1));
	while (p != NULL && n <= ncats)
	{
		node->path[n++] = p->code;
		p = p->parent ? name_get(cats, p->parent) : NULL;
	}
	node->npath = n;
}

/* the columns of load_products' product query */
#define PRODUCT_NCOLUMNS 11

/*
 * column_scaled_round is spi_scaled_round for a numeric value taken out of
 * its row: rounded to scale decimals, in units of 10^-scale (if_null when
 * NULL).
 */
static int64
column_scaled_round(Datum d, bool isnull, int scale, int64 if_null)
{
	int64		v;

	if (isnull)
		return if_null;
	d = DirectFunctionCall2(numeric_round, d, Int32GetDatum(scale));
	if (!numeric_to_scaled(DatumGetNumeric(d), scale, &v))
		elog(ERROR, "configuration value out of range");
	return v;
}

/* load_products reads the category tree and every product. */
static void
load_products(ConfigCache *c)
{
	HTAB	   *cats;
	uint64		nrows;
	uint64		r;
	int			ncats;

	nrows = spi_query("SELECT code, parent FROM loyalty.category");
	ncats = (int) nrows;
	cats = name_table(c->cxt, "loyalty categories", ncats);
	for (r = 0; r < nrows; r++)
	{
		CatNode    *n = palloc0(sizeof(CatNode));

		CHECK_FOR_INTERRUPTS();
		n->code = spi_text(r, 1, CurrentMemoryContext);
		n->parent = spi_text(r, 2, CurrentMemoryContext);
		name_put(cats, n->code, n);
	}

	nrows = spi_query("SELECT sku, name, category, brand, tags, price, min_price, "
					  "no_discount, no_points, no_redeem, gift_certificate FROM loyalty.product");
	c->nproducts = (int) nrows;
	c->products = name_table(c->cxt, "loyalty products", (long) nrows);
	if (SPI_tuptable->tupdesc->natts != PRODUCT_NCOLUMNS)
		elog(ERROR, "loyalty.product query has %d columns", SPI_tuptable->tupdesc->natts);
	for (r = 0; r < nrows; r++)
	{
		CachedProduct *p = palloc0(sizeof(CachedProduct));
		Datum		col[PRODUCT_NCOLUMNS];
		bool		null[PRODUCT_NCOLUMNS];
		char	   *cat;
		NameList   *tags;

		CHECK_FOR_INTERRUPTS();
		/* deformed once: one SPI_getbinval per column walks the row each time */
		heap_deform_tuple(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, col, null);
		cat = null[2] ? NULL : TextDatumGetCString(col[2]);
		tags = namelist_datum(col[4], null[4]);
		p->sku = TextDatumGetCString(col[0]);	/* the key: never NULL */
		p->name = null[1] ? NULL : TextDatumGetCString(col[1]);
		p->brand = null[3] ? NULL : TextDatumGetCString(col[3]);
		if (cat != NULL)
		{
			CatNode    *node = name_get(cats, cat);

			if (node != NULL)
			{
				resolve_category(cats, node, ncats);
				p->categories = node->path;
				p->ncategories = node->npath;
			}
		}
		if (tags != NULL)
		{
			p->tags = tags->items;
			p->ntags = tags->count;
		}
		p->price = column_scaled_round(col[5], null[5], MONEY_SCALE, -1);
		p->min_price = column_scaled_round(col[6], null[6], MONEY_SCALE, -1);
		p->no_discount = null[7] ? false : DatumGetBool(col[7]);
		p->no_points = null[8] ? false : DatumGetBool(col[8]);
		p->no_redeem = null[9] ? false : DatumGetBool(col[9]);
		p->gift_certificate = null[10] ? false : DatumGetBool(col[10]);
		p->npromos = -1;
		name_put(c->products, p->sku, p);
	}
}

/* interval_col copies an interval column (false when NULL). */
static bool
interval_col(int r, int i, Interval *result)
{
	bool		isnull;
	Datum		d = spi_datum(r, i, &isnull);

	if (isnull)
		return false;
	*result = *DatumGetIntervalP(d);
	return true;
}

/* load_accounts_and_tiers reads account types and tiers. */
static void
load_accounts_and_tiers(ConfigCache *c)
{
	uint64		nrows;
	uint64		r;

	nrows = spi_query("SELECT code, redeem_share, min_check, lifetime, activation_delay, "
					  "redeem_order FROM loyalty.account_type "
					  "ORDER BY redeem_order, code COLLATE \"C\"");
	c->naccounts = (int) nrows;
	c->accounts = palloc0(sizeof(CachedAccountType) * Max(c->naccounts, 1));
	c->main_account = -1;
	for (r = 0; r < nrows; r++)
	{
		CachedAccountType *a = &c->accounts[r];

		CHECK_FOR_INTERRUPTS();
		a->code = spi_text(r, 1, CurrentMemoryContext);
		a->share = (int32) spi_scaled_round(r, 2, 4, 0);
		a->min_check = spi_scaled_round(r, 3, MONEY_SCALE, 0);
		a->has_lifetime = interval_col(r, 4, &a->lifetime);
		if (!interval_col(r, 5, &a->activation_delay))
			memset(&a->activation_delay, 0, sizeof(Interval));
		a->redeem_order = spi_int4(r, 6, 100);
		if (strcmp(a->code, "main") == 0)
			c->main_account = (int) r;
	}

	nrows = spi_query("SELECT code, rank, threshold, accrual_percent, discount_percent "
					  "FROM loyalty.tier ORDER BY rank");
	c->ntiers = (int) nrows;
	c->tiers = palloc0(sizeof(CachedTier) * Max(c->ntiers, 1));
	for (r = 0; r < nrows; r++)
	{
		CachedTier *t = &c->tiers[r];

		CHECK_FOR_INTERRUPTS();
		t->code = spi_text(r, 1, CurrentMemoryContext);
		t->rank = spi_int4(r, 2, 0);
		t->threshold = spi_scaled_round(r, 3, MONEY_SCALE, 0);
		t->accrual_percent = (int32) spi_scaled_round(r, 4, 2, 0);
		t->discount_percent = (int32) spi_scaled_round(r, 5, 2, 0);
	}
}

/* add_selector gives a selector its index (-1 for NULL). */
static int
add_selector(ConfigCache *c, const ProductSelector *sel, int *capacity)
{
	if (sel == NULL)
		return -1;
	if (c->nselectors == *capacity)
	{
		*capacity *= 2;
		c->selectors = repalloc(c->selectors, sizeof(ProductSelector *) * *capacity);
	}
	c->selectors[c->nselectors] = sel;
	return c->nselectors++;
}

/* A group name while groups are being numbered. */
typedef struct GroupEntry
{
	const char *key;
	int			id;
} GroupEntry;

/*
 * The promotions of a candidate configuration (config_cache_build_candidate):
 * the enabled ones less those disabled ($2) or replaced by a candidate of
 * the same code, plus the enabled candidates ($1, rows as JSON, already
 * validated by the caller), with the table's defaults.
 */
#define CANDIDATE_PROMOTIONS \
	"SELECT code, name, mechanic, rule, priority, grp, exclusive, " \
	"starts_at, ends_at, schedule, channels, stores, regions, tiers, " \
	"segments, identified_only, requires_coupon, usage_limit, " \
	"per_customer_limit, budget, segments_exclude, experiment, variant, points_budget FROM (" \
	"SELECT p.code, p.name, p.mechanic, p.rule, p.priority, p.grp, p.exclusive, " \
	"p.starts_at, p.ends_at, p.schedule, p.channels, p.stores, p.regions, p.tiers, " \
	"p.segments, p.identified_only, p.requires_coupon, p.usage_limit, " \
	"p.per_customer_limit, p.budget, p.segments_exclude, p.experiment, p.variant, p.points_budget " \
	"FROM loyalty.promotion p WHERE p.enabled " \
	"AND p.code <> ALL ($2) AND NOT EXISTS (SELECT FROM " \
	"pg_catalog.jsonb_array_elements($1) e WHERE e OPERATOR(pg_catalog.->>) 'code' " \
	"OPERATOR(pg_catalog.=) p.code) " \
	"UNION ALL SELECT c.code, c.name, c.mechanic, coalesce(c.rule, '{}'), " \
	"coalesce(c.priority, 100), c.grp, coalesce(c.exclusive, false), " \
	"c.starts_at, c.ends_at, c.schedule, c.channels, c.stores, c.regions, c.tiers, " \
	"c.segments, coalesce(c.identified_only, false), " \
	"coalesce(c.requires_coupon, false), c.usage_limit, c.per_customer_limit, c.budget, " \
	"c.segments_exclude, c.experiment, c.variant, c.points_budget " \
	"FROM pg_catalog.jsonb_populate_recordset(NULL::loyalty.promotion, $1) c " \
	"WHERE coalesce(c.enabled, true)) x " \
	"ORDER BY priority, code COLLATE \"C\""

/*
 * column_scaled is spi_scaled for a numeric value taken out of its row, in
 * hundredths (0 when NULL).
 */
static int64
column_scaled(Datum d, bool isnull)
{
	int64		v;

	if (isnull)
		return 0;
	if (!numeric_to_scaled(DatumGetNumeric(d), 2, &v))
		elog(ERROR, "stored amount out of range in a promotion");
	return v;
}

/* A promotion row's place in (priority, code) order (load_promotions). */
typedef struct PromoOrder
{
	int32		priority;
	const char *code;
	uint64		row;
} PromoOrder;

/* promo_order_cmp orders by priority, then code bytewise, for qsort. */
static int
promo_order_cmp(const void *a, const void *b)
{
	const PromoOrder *x = a;
	const PromoOrder *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	return strcmp(x->code, y->code);
}

/*
 * The columns load_promotions reads, by their 1-based place in a row
 * (the order of CANDIDATE_PROMOTIONS' select list).
 */
static const char *const PROMOTION_COLUMNS[] = {
	"code", "name", "mechanic", "rule", "priority", "grp", "exclusive",
	"starts_at", "ends_at", "schedule", "channels", "stores", "regions",
	"tiers", "segments", "identified_only", "requires_coupon", "usage_limit",
	"per_customer_limit", "budget", "segments_exclude", "experiment",
	"variant", "points_budget", NULL
};
#define PROMOTION_NCOLUMNS 24

/*
 * scan_promotions reads the enabled rows of loyalty.promotion straight from
 * the table (a heap scan with the active snapshot, as the read-only SPI
 * query it replaces did, after the same SELECT privilege check): the
 * executor's projection and copy of every wide row cost more than the rest
 * of the load at thousands of promotions (issue 21).  *cols and *nulls get
 * each row's columns in PROMOTION_COLUMNS order (row k at k * width, column
 * i at + i); everything is allocated in CurrentMemoryContext, which the
 * caller deletes once the values are copied out.
 */
static uint64
scan_promotions(Datum **cols, bool **nulls, int width)
{
	Relation	rel;
	TupleDesc	desc;
	TableScanDesc scan;
	HeapTuple	tup;
	AclResult	aclresult;
	AttrNumber	attnum[PROMOTION_NCOLUMNS + 1];
	AttrNumber	enabled;
	Datum	   *values;
	bool	   *isnull;
	uint64		n = 0;
	uint64		cap = 64;
	int			i;

	rel = table_open(promotion_oid(), AccessShareLock);
	aclresult = pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_TABLE, RelationGetRelationName(rel));
	desc = RelationGetDescr(rel);
	for (i = 0; i < PROMOTION_NCOLUMNS; i++)
	{
		attnum[i + 1] = SPI_fnumber(desc, PROMOTION_COLUMNS[i]);
		if (attnum[i + 1] <= 0)
			elog(ERROR, "loyalty.promotion has no column %s", PROMOTION_COLUMNS[i]);
	}
	enabled = SPI_fnumber(desc, "enabled");
	if (enabled <= 0)
		elog(ERROR, "loyalty.promotion has no column enabled");
	values = palloc(sizeof(Datum) * desc->natts);
	isnull = palloc(sizeof(bool) * desc->natts);
	*cols = palloc(sizeof(Datum) * width * cap);
	*nulls = palloc(sizeof(bool) * width * cap);

	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		HeapTuple	copy;

		CHECK_FOR_INTERRUPTS();
		/* the values must outlive the buffer: deform a copy, once */
		copy = heap_copytuple(tup);
		heap_deform_tuple(copy, desc, values, isnull);
		/* enabled is NOT NULL; a NULL would not pass "WHERE enabled" */
		if (isnull[enabled - 1] || !DatumGetBool(values[enabled - 1]))
		{
			heap_freetuple(copy);
			continue;
		}
		if (n == cap)
		{
			cap *= 2;
			*cols = repalloc(*cols, sizeof(Datum) * width * cap);
			*nulls = repalloc(*nulls, sizeof(bool) * width * cap);
		}
		for (i = 1; i <= PROMOTION_NCOLUMNS; i++)
		{
			(*cols)[n * width + i] = values[attnum[i] - 1];
			(*nulls)[n * width + i] = isnull[attnum[i] - 1];
		}
		n++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return n;
}

/*
 * load_promotions reads and parses the enabled promotions, in order; with
 * candidates (not NULL), those of a candidate configuration instead.
 *
 * The order (priority, then code bytewise) is made here, not by the query:
 * sorting the wide rows (rules, scopes) in the executor cost more than the
 * rest of the read at thousands of promotions.  Each row is deformed once
 * (heap_deform_tuple) and its columns read from that, not one
 * SPI_getbinval each: past the first variable-width column every such call
 * walks the row from its start.
 */
static void
load_promotions(ConfigCache *c, Jsonb *candidates, Datum disable)
{
	uint64		nrows;
	uint64		k;
	int			capacity = 16;
	HTAB	   *groups;
	HASHCTL		ctl;
	PromoOrder *order;
	int			width;
	Datum	   *cols;
	bool	   *nulls;
	Datum	   *col;
	bool	   *null;
	MemoryContext rows_cxt;

	/* the rows and their deformed columns, until the values are copied out */
	rows_cxt = AllocSetContextCreate(CurrentMemoryContext,
									 "loyalty promotion rows",
									 ALLOCSET_DEFAULT_SIZES);
	width = PROMOTION_NCOLUMNS + 1;
	if (candidates == NULL)
	{
		MemoryContext cxt = MemoryContextSwitchTo(rows_cxt);

		nrows = scan_promotions(&cols, &nulls, width);
		MemoryContextSwitchTo(cxt);
	}
	else
	{
		static SPIPlanPtr plan = NULL;
		Oid			types[2] = {JSONBOID, TEXTARRAYOID};
		Datum		values[2];

		MemoryContext cxt = CurrentMemoryContext;

		values[0] = JsonbPGetDatum(candidates);
		values[1] = disable;
		nrows = spi_exec(saved_plan(&plan, CANDIDATE_PROMOTIONS, 2, types),
						 values, NULL, true, 0);

		/*
		 * SPI returns in its procedure context: back to the cache's, or the
		 * rest of the candidate configuration would be freed by SPI_finish
		 * (a candidate kept across calls, as the parallel backtest does)
		 */
		MemoryContextSwitchTo(cxt);
		if (SPI_tuptable->tupdesc->natts != PROMOTION_NCOLUMNS)
			elog(ERROR, "candidate promotions have %d columns", SPI_tuptable->tupdesc->natts);
		/* every row deformed once (columns by their 1-based numbers) */
		cols = MemoryContextAlloc(rows_cxt, sizeof(Datum) * width * Max(nrows, 1));
		nulls = MemoryContextAlloc(rows_cxt, sizeof(bool) * width * Max(nrows, 1));
		for (k = 0; k < nrows; k++)
		{
			CHECK_FOR_INTERRUPTS();
			heap_deform_tuple(SPI_tuptable->vals[k], SPI_tuptable->tupdesc,
							  cols + k * width + 1, nulls + k * width + 1);
		}
	}
	c->npromotions = (int) nrows;
	c->promotions = palloc0(sizeof(CachedPromotion) * Max(c->npromotions, 1));
	order = palloc(sizeof(PromoOrder) * Max(nrows, 1));
	for (k = 0; k < nrows; k++)
	{
		col = cols + k * width;
		null = nulls + k * width;
		order[k].row = k;
		order[k].code = TextDatumGetCString(col[1]);	/* the key: never NULL */
		order[k].priority = null[5] ? 100 : DatumGetInt32(col[5]);
	}
	if (nrows > 1)
		qsort(order, nrows, sizeof(PromoOrder), promo_order_cmp);
	c->check_level = palloc0(sizeof(bool) * Max(c->npromotions, 1));
	c->selectors = palloc(sizeof(ProductSelector *) * capacity);
	c->nselectors = 0;
	c->ngroups = 0;

	ctl.keysize = sizeof(const char *);
	ctl.entrysize = sizeof(GroupEntry);
	ctl.hash = name_hash;
	ctl.match = name_match;
	ctl.hcxt = CurrentMemoryContext;
	groups = hash_create("loyalty promotion groups", 16, &ctl,
						 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);

	for (k = 0; k < nrows; k++)
	{
		CachedPromotion *p = &c->promotions[k];
		MechanicSelectors sel;

		CHECK_FOR_INTERRUPTS();
		col = cols + order[k].row * width;
		null = nulls + order[k].row * width;
		p->index = (int) k;
		p->code = (char *) order[k].code;
		p->name = null[2] ? NULL : TextDatumGetCString(col[2]);
		p->mechanic = mechanic_parse(p->code, null[3] ? NULL : TextDatumGetCString(col[3]));
		/* the rest of the rule when first a candidate: config_promotion_rule */
		p->rule_jsonb = null[4] ? NULL : DatumGetJsonbPCopy(col[4]);
		p->rule = NULL;
		p->rule_parsed = false;
		p->priority = order[k].priority;
		p->grp = null[6] ? NULL : TextDatumGetCString(col[6]);
		p->grp_id = -1;
		if (p->grp != NULL)
		{
			bool		found;
			GroupEntry *g = hash_search(groups, &p->grp, HASH_ENTER, &found);

			if (!found)
				g->id = c->ngroups++;
			p->grp_id = g->id;
		}
		p->exclusive = null[7] ? false : DatumGetBool(col[7]);
		p->has_start = !null[8];
		p->starts_at = null[8] ? 0 : DatumGetTimestampTz(col[8]);
		p->has_end = !null[9];
		p->ends_at = null[9] ? 0 : DatumGetTimestampTz(col[9]);
		p->schedule = null[10] ? NULL : schedule_parse(p->code, DatumGetJsonbP(col[10]));
		p->channels = namelist_datum(col[11], null[11]);
		p->stores = namelist_datum(col[12], null[12]);
		p->regions = namelist_datum(col[13], null[13]);
		p->tiers = namelist_datum(col[14], null[14]);
		p->segments = namelist_datum(col[15], null[15]);
		p->identified_only = null[16] ? false : DatumGetBool(col[16]);
		p->requires_coupon = null[17] ? false : DatumGetBool(col[17]);
		p->usage_limit = null[18] ? 0 : DatumGetInt32(col[18]);
		p->per_customer_limit = null[19] ? 0 : DatumGetInt32(col[19]);
		p->segments_exclude = namelist_datum(col[21], null[21]);
		/* resolved by load_experiments */
		p->experiment_code = null[22] ? NULL : TextDatumGetCString(col[22]);
		p->variant_code = null[23] ? NULL : TextDatumGetCString(col[23]);
		p->experiment = NULL;
		p->variant = EXPERIMENT_ANY_VARIANT;
		if (p->usage_limit > 0 || p->per_customer_limit > 0)
			c->any_usage_limit = true;
		if (p->per_customer_limit > 0)
			c->any_customer_limit = true;
		if (p->segments != NULL || p->segments_exclude != NULL)
			c->any_segments = true;
		p->budget = column_scaled(col[20], null[20]);
		p->points_budget = column_scaled(col[24], null[24]);
		if (p->budget > 0 || p->points_budget > 0)
			c->any_budget = true;

		/* the selectors of the rule (mechanics.h), indexed in this order */
		rule_parse_selectors(p->code, p->mechanic, p->rule_jsonb, &sel);
		p->sel_products = add_selector(c, sel.products, &capacity);
		p->sel_trigger = add_selector(c, sel.trigger, &capacity);
		p->sel_target = add_selector(c, sel.target, &capacity);
		/* what a line must match for the promotion to matter */
		p->key_sel = p->sel_trigger >= 0 ? p->sel_trigger : p->sel_products;
		c->check_level[k] = p->key_sel < 0;
	}
	hash_destroy(groups);
	MemoryContextDelete(rows_cxt);
	pfree(order);
}

/* ---------------------------------------------------------------------
 * The promotion index (issue 21)
 * ---------------------------------------------------------------------
 */

/* promolist_add appends promotion index i to list (in the current context). */
static void
promolist_add(PromoList *list, int i)
{
	if (list->count > 0 && list->items[list->count - 1] == i)
		return;					/* a name listed twice in one selector */
	if (list->count == list->capacity)
	{
		list->capacity = list->capacity ? list->capacity * 2 : 4;
		list->items = list->items ?
			repalloc(list->items, sizeof(int) * list->capacity) :
			palloc(sizeof(int) * list->capacity);
	}
	list->items[list->count++] = i;
}

/* index_names files promotion i under each of names in table. */
static void
index_names(HTAB *table, const StringList *names, int i)
{
	int			k;

	for (k = 0; k < names->count; k++)
	{
		const char *key = names->items[k];
		bool		found;
		NameEntry  *e = hash_search(table, &key, HASH_ENTER, &found);

		if (!found)
			e->value = palloc0(sizeof(PromoList));
		promolist_add(e->value, i);
	}
}

/*
 * build_promotion_index builds the promotion index of the cache (see
 * config_cache.h) from the promotions' key selectors: once per
 * configuration, in the order of the promotions, so every list is
 * ascending.
 */
static void
build_promotion_index(ConfigCache *c)
{
	PromoList	any = {0, 0, NULL};
	PromoList	check = {0, 0, NULL};
	PromoList	limited = {0, 0, NULL};
	int			i;

	c->idx_skus = name_table(c->cxt, "loyalty promotions by sku", 64);
	c->idx_categories = name_table(c->cxt, "loyalty promotions by category", 64);
	c->idx_brands = name_table(c->cxt, "loyalty promotions by brand", 64);
	c->idx_tags = name_table(c->cxt, "loyalty promotions by tag", 16);
	for (i = 0; i < c->npromotions; i++)
	{
		const CachedPromotion *p = &c->promotions[i];
		const ProductSelector *sel;

		CHECK_FOR_INTERRUPTS();
		if (p->usage_limit > 0)
			promolist_add(&limited, i);
		if (p->key_sel < 0)
		{
			promolist_add(&check, i);
			continue;
		}
		sel = c->selectors[p->key_sel];
		if (sel->all)
		{
			promolist_add(&any, i);
			continue;
		}
		index_names(c->idx_skus, &sel->skus, i);
		index_names(c->idx_categories, &sel->categories, i);
		index_names(c->idx_brands, &sel->brands, i);
		index_names(c->idx_tags, &sel->tags, i);
	}
	c->any_product = any.items;
	c->nany_product = any.count;
	c->check_level_list = check.items;
	c->ncheck_level = check.count;
	c->usage_limited = limited.items;
	c->nusage_limited = limited.count;
}

/*
 * load_experiments reads the experiments when an enabled promotion belongs
 * to one, and resolves each such promotion's experiment and variant.
 */
static void
load_experiments(ConfigCache *c)
{
	int			i,
				k;
	bool		any = false;
	uint64		nrows;
	uint64		r;
	CachedExperiment *exps;

	for (i = 0; i < c->npromotions; i++)
		any |= (c->promotions[i].experiment_code != NULL);
	if (!any)
		return;					/* read only when a promotion needs it */
	nrows = spi_query("SELECT e.code, (e.holdout_percent * 100)::int,"
					  "       array_agg(v.value ->> 'code' ORDER BY v.n),"
					  "       array_agg((sum_w)::int8 ORDER BY v.n),"
					  "       max(sum_w)::int8"
					  "  FROM loyalty.experiment e,"
					  "       LATERAL (SELECT o.value, o.ordinality AS n,"
					  "                       sum((o.value ->> 'weight')::int8) OVER (ORDER BY o.ordinality) AS sum_w"
					  "                  FROM jsonb_array_elements(e.variants) WITH ORDINALITY o) v"
					  " GROUP BY e.code, e.holdout_percent");
	exps = palloc0(sizeof(CachedExperiment) * Max(nrows, 1));
	for (r = 0; r < nrows; r++)
	{
		CachedExperiment *e = &exps[r];
		bool		isnull;
		Datum		d;
		ArrayType  *arr;
		Datum	   *elems;
		int			n;

		e->code = spi_text(r, 1, CurrentMemoryContext);
		e->holdout = spi_int4(r, 2, 0);
		e->variants = spi_text_array(r, 3, CurrentMemoryContext, &e->nvariants);
		d = spi_datum(r, 4, &isnull);
		arr = DatumGetArrayTypeP(d);
		deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &elems, NULL, &n);
		e->upto = palloc(sizeof(int64) * Max(n, 1));
		for (k = 0; k < n; k++)
			e->upto[k] = DatumGetInt64(elems[k]);
		e->total = spi_int8(r, 5, 1);
	}
	for (i = 0; i < c->npromotions; i++)
	{
		CachedPromotion *p = &c->promotions[i];

		if (p->experiment_code == NULL)
			continue;
		for (r = 0; r < nrows; r++)
			if (strcmp(exps[r].code, p->experiment_code) == 0)
				p->experiment = &exps[r];
		/* a promotion of an experiment that is gone applies to nobody */
		p->variant = EXPERIMENT_HOLDOUT;
		if (p->experiment == NULL)
			continue;
		if (p->variant_code == NULL)
			p->variant = EXPERIMENT_ANY_VARIANT;
		else
			for (k = 0; k < p->experiment->nvariants; k++)
				if (strcmp(p->experiment->variants[k], p->variant_code) == 0)
					p->variant = k;
	}
}

/*
 * load_plans reads the subscription plans; their product selectors join the
 * promotions' (parsed by the same parser, matched through the same cache).
 */
static void
load_plans(ConfigCache *c)
{
	uint64		nrows;
	uint64		r;

	nrows = spi_query("SELECT code, sku, products, duration FROM loyalty.subscription_plan"
					  " ORDER BY code COLLATE \"C\"");
	c->nplans = (int) nrows;
	c->plans = palloc0(sizeof(CachedSubscriptionPlan) * Max(c->nplans, 1));
	c->selectors = repalloc(c->selectors,
							sizeof(ProductSelector *) * (c->nselectors + c->nplans + 1));
	for (r = 0; r < nrows; r++)
	{
		CachedSubscriptionPlan *plan = &c->plans[r];
		bool		isnull;

		CHECK_FOR_INTERRUPTS();
		plan->code = spi_text(r, 1, CurrentMemoryContext);
		plan->sku = spi_text(r, 2, CurrentMemoryContext);
		c->selectors[c->nselectors] =
			selector_parse("subscription plan", plan->code, "products",
						   DatumGetJsonbP(spi_datum(r, 3, &isnull)));
		plan->sel = c->nselectors++;
		plan->duration = *DatumGetIntervalP(spi_datum(r, 4, &isnull));
	}
}

/*
 * load_points_events notes whether first-purchase points are configured, so
 * that a purchase looks for them only then (event_points.c).
 */
static void
load_points_events(ConfigCache *c)
{
	c->first_purchase_points =
		spi_query("SELECT 1 FROM loyalty.points_event"
				  " WHERE event = 'first_purchase' AND enabled") > 0;
}

/* config_cache_build builds a new cache (in a new context) and returns it. */
static ConfigCache *
config_cache_build(Jsonb *candidates, Datum disable)
{
	MemoryContext cxt;
	MemoryContext old;
	ConfigCache *c;

	/* a child of the caller's context until complete: an error frees it */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "loyalty config cache",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	c = palloc0(sizeof(ConfigCache));
	c->cxt = cxt;
	c->memo_cxt = AllocSetContextCreate(cxt, "loyalty product memo",
										0, 8 * 1024, 64 * 1024);
	load_settings(c);
	load_stores(c);
	load_products(c);
	load_accounts_and_tiers(c);
	load_promotions(c, candidates, disable);
	build_promotion_index(c);
	load_experiments(c);
	load_plans(c);
	load_points_events(c);
	MemoryContextSwitchTo(old);
	/* SPI result tuples live in the SPI context; everything we keep is copied */
	return c;
}

/*
 * config_cache_get returns the configuration cache, rebuilding it first
 * when a configuration change (or none loaded yet) made it stale.  Must be
 * called inside an SPI connection.
 */
ConfigCache *
config_cache_get(void)
{
	ConfigCache *fresh;

	config_cache_register_callback();
	if (cache != NULL && !cache_stale)
		return cache;

	/*
	 * Drop the old cache first: if the build fails, "cache" stays NULL and
	 * the next call tries again.  The relid is looked up before the build so
	 * that an invalidation arriving during it marks the new cache stale.
	 */
	if (cache != NULL)
	{
		MemoryContextDelete(cache->cxt);
		cache = NULL;
	}
	promotion_relid = InvalidOid;
	(void) promotion_oid();
	cache_stale = false;
	fresh = config_cache_build(NULL, (Datum) 0);
	MemoryContextSetParent(fresh->cxt, CacheMemoryContext);
	cache = fresh;
	return cache;
}

/*
 * config_cache_build_candidate builds, in a new child of the current
 * memory context, the configuration as it is now with the promotions of
 * candidates (a jsonb array of loyalty.promotion rows the caller has
 * validated) added or replacing those of the same code, and the codes in
 * disable (a text[]) left out.  The shared cache is not touched.
 */
ConfigCache *
config_cache_build_candidate(Jsonb *candidates, Datum disable)
{
	return config_cache_build(candidates, disable);
}

/* ---------------------------------------------------------------------
 * Look-ups
 * ---------------------------------------------------------------------
 */

/* config_store returns the store with this code, or NULL. */
CachedStore *
config_store(ConfigCache *cfg, const char *code)
{
	return name_get(cfg->stores, code);
}

/* config_product returns the product with this SKU, or NULL. */
CachedProduct *
config_product(ConfigCache *cfg, const char *sku)
{
	return name_get(cfg->products, sku);
}

/* config_tier returns the tier with this code, or NULL. */
const CachedTier *
config_tier(ConfigCache *cfg, const char *code)
{
	int			i;

	if (code == NULL)
		return NULL;
	for (i = 0; i < cfg->ntiers; i++)
		if (strcmp(cfg->tiers[i].code, code) == 0)
			return &cfg->tiers[i];
	return NULL;
}

/* config_account_index returns the index of an account type, or -1. */
int
config_account_index(ConfigCache *cfg, const char *code)
{
	int			i;

	for (i = 0; i < cfg->naccounts; i++)
		if (strcmp(cfg->accounts[i].code, code) == 0)
			return i;
	return -1;
}

/*
 * config_product_matches tells whether product p matches selector
 * sel_index, computing it with selector_matches the first time and
 * remembering the answer on the product.
 */
bool
config_product_matches(ConfigCache *cfg, CachedProduct *p, int sel_index)
{
	int			byte = sel_index >> 3;
	uint8		bit = (uint8) (1 << (sel_index & 7));

	if (sel_index < 0)
		return false;
	if (p->sel_known == NULL)
	{
		Size		n = (cfg->nselectors + 7) / 8;

		p->sel_known = MemoryContextAllocZero(cfg->memo_cxt, n * 2);
		p->sel_match = p->sel_known + n;
	}
	if (!(p->sel_known[byte] & bit))
	{
		if (selector_matches(cfg->selectors[sel_index], p->sku, p->brand,
							 p->categories, p->ncategories,
							 (const char *const *) p->tags, p->ntags))
			p->sel_match[byte] |= bit;
		p->sel_known[byte] |= bit;
	}
	return (p->sel_match[byte] & bit) != 0;
}

/* config_plan returns the subscription plan with this code, or NULL. */
const CachedSubscriptionPlan *
config_plan(ConfigCache *cfg, const char *code)
{
	for (int i = 0; i < cfg->nplans; i++)
		if (strcmp(cfg->plans[i].code, code) == 0)
			return &cfg->plans[i];
	return NULL;
}

/* int_cmp orders ints ascending, for qsort. */
static int
int_cmp(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/* gather_list appends the entries of table[key] to out (when any). */
static void
gather_list(HTAB *table, const char *key, int **out, int *n, int *cap)
{
	PromoList  *list = name_get(table, key);

	if (list == NULL)
		return;
	if (*n + list->count > *cap)
	{
		*cap = Max(*cap * 2, *n + list->count);
		*out = repalloc(*out, sizeof(int) * *cap);
	}
	memcpy(*out + *n, list->items, sizeof(int) * list->count);
	*n += list->count;
}

/*
 * config_promotion_rule parses promotion p's rule into the cache's context
 * the first time a check needs it (mech_apply).  The rule was validated when
 * it was written (the promotion's trigger, LY006) or by the backtest's
 * caller, so this raises no error in practice; should it, p stays unparsed
 * and the next call tries again.  The cache entry is memo, hence the cast.
 */
void
config_promotion_rule(ConfigCache *cfg, const CachedPromotion *p)
{
	CachedPromotion *mp = (CachedPromotion *) p;
	MemoryContext old;

	if (p->rule_parsed)
		return;
	old = MemoryContextSwitchTo(cfg->cxt);
	mp->rule = rule_parse_stored(p->code, p->mechanic, p->rule_jsonb, &mp->common);
	MemoryContextSwitchTo(old);
	mp->rule_parsed = true;
}

/*
 * config_product_promotions returns the indexes of the promotions whose key
 * selector (products, or trigger) product p matches, computing the list
 * the first time from the promotion index: the lists of its SKU, brand,
 * categories (its own and the ancestors), tags and the "all" list, each
 * candidate confirmed by the exact selector match (its "exclude" too).  A
 * check then only evaluates the promotions some line can trigger, plus the
 * check-level ones, whatever the number of promotions; and a promotion
 * naming none of the product's keys is never looked at.
 */
const int *
config_product_promotions(ConfigCache *cfg, CachedProduct *p, int *n)
{
	if (p->npromos < 0)
	{
		int			cap = 16;
		int		   *cand = palloc(sizeof(int) * cap);
		int			ncand = 0;
		int			count = 0;
		int			i;

		gather_list(cfg->idx_skus, p->sku, &cand, &ncand, &cap);
		gather_list(cfg->idx_brands, p->brand, &cand, &ncand, &cap);
		for (i = 0; i < p->ncategories; i++)
			gather_list(cfg->idx_categories, p->categories[i], &cand, &ncand, &cap);
		for (i = 0; i < p->ntags; i++)
			gather_list(cfg->idx_tags, p->tags[i], &cand, &ncand, &cap);
		if (cfg->nany_product > 0)
		{
			if (ncand + cfg->nany_product > cap)
			{
				cap = ncand + cfg->nany_product;
				cand = repalloc(cand, sizeof(int) * cap);
			}
			memcpy(cand + ncand, cfg->any_product, sizeof(int) * cfg->nany_product);
			ncand += cfg->nany_product;
		}
		if (ncand > 1)
			qsort(cand, ncand, sizeof(int), int_cmp);
		/* kept for the cache's life: exactly as long as needed */
		p->promos = MemoryContextAlloc(cfg->memo_cxt, sizeof(int) * Max(ncand, 1));
		for (i = 0; i < ncand; i++)
		{
			int			k = cand[i];

			CHECK_FOR_INTERRUPTS();
			if (i > 0 && cand[i - 1] == k)
				continue;		/* named by two of the product's keys */
			if (config_product_matches(cfg, p, cfg->promotions[k].key_sel))
				p->promos[count++] = k;
		}
		pfree(cand);
		p->npromos = count;
	}
	*n = p->npromos;
	return p->promos;
}
