/*-------------------------------------------------------------------------
 *
 * check_db.c
 *	  The check API's reads and writes besides the ledger, coupons and
 *	  balances (see check_db.h): customer resolution, usage counters (read
 *	  for the loader, check_load.c; claimed and released), purchase facts.
 *
 * Customer identifiers are read as loyalty.find_customer reads them
 * (customers.h: "id:N", a card number, or a phone in any spelling); a
 * merged customer resolves to the survivor.  The identifier is resolved
 * and the customer loaded in a single query, with their balances and only
 * the parts the configuration uses (segments, per-customer uses,
 * subscriptions); a purchase locks the row, reading it as it locks it, and
 * reads the parts in one query after the lock.
 *
 * Usage limits hold under concurrency: a use is counted by
 * INSERT ... ON CONFLICT DO UPDATE ... WHERE uses < limit, which locks the
 * counter row and re-checks the limit on its latest version, so of two
 * concurrent purchases only one can take the last use; the other sees no
 * row come back and the purchase is priced again without that promotion.
 * Per-customer counters are written under the customer's row lock, so a
 * purchase knows which exist and inserts or increments them directly.
 * Only promotions with a limit are counted (an unlimited promotion's uses
 * are in the purchase facts), so popular promotions are no hot rows.  The
 * purchase records which counters it incremented (usage_counted,
 * customer_usage_counted), and the full refund of the purchase takes
 * exactly those uses back (check_release_uses), so the limits count only
 * purchases that stand.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/jsonb.h"

#include "check_db.h"
#include "customers.h"
#include "jsonb_builder.h"
#include "ledger.h"
#include "clock.h"
#include "lib/stringinfo.h"
#include "spi_util.h"

static SPIPlanPtr usage_plan = NULL;
static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr claim_fresh_plan = NULL;
static SPIPlanPtr claim_known_plan = NULL;
static SPIPlanPtr unclaim_plan = NULL;
static SPIPlanPtr unclaim_customer_plan = NULL;
static SPIPlanPtr release_plan = NULL;
static SPIPlanPtr release_customer_plan = NULL;
static SPIPlanPtr purchase_plan = NULL;

/*
 * The customer's read is one statement built from parts: the customer row
 * (resolved from the request's key; or, for a purchase, the id of the row
 * it locked), then, each only when the configuration has something that
 * uses it (check_customer_reads), the customer's segments, their uses of
 * promotions with a per-customer limit, their subscriptions and their
 * balances.  The balances join last, one row per account holding open lots
 * (LEDGER_BALANCE_ROWS), so the statement returns one row or a few; the
 * other parts are one lateral row each, evaluated once.  A plan per
 * combination, built when first used.
 */
#define CUST_FROM_ID		0	/* $1: a customer id */
#define CUST_FROM_KEY		1	/* $1, $2: CUSTOMER_KEY_WHERE's */
#define CUST_FROM_LOCKED	2	/* $1: the id of the row locked, read anew */
#define CUST_NFROM			3

static SPIPlanPtr customer_plans[CUST_NFROM][CUST_READ_ALL + 1];

/*
 * check_customer_reads is what a customer's read of cfg must include (see
 * check_db.h).
 */
int
check_customer_reads(ConfigCache *cfg)
{
	int			reads = 0;

	if (cfg->any_segments)
		reads |= CUST_READ_SEGMENTS;
	if (cfg->any_customer_limit)
		reads |= CUST_READ_USAGE;
	if (cfg->nplans > 0)
		reads |= CUST_READ_SUBSCRIPTIONS;
	if (cfg->naccounts > 0)
		reads |= CUST_READ_BALANCES;
	return reads;
}

/*
 * customer_plan returns the saved plan of the customer's read from the
 * given source with the given parts.  Columns: id, tier, status (NULL
 * from CUST_FROM_LOCKED: the lock read them), then segments (text[]),
 * usage promotions and uses (text[], int8[]), subscription plans, starts
 * and ends (text[], timestamptz[] x 2), each when read, then account,
 * available, pending, in_debt when the balances are read.  The moment of
 * the balances is the last parameter.
 */
static SPIPlanPtr
customer_plan(int from, int reads)
{
	StringInfoData sql;
	Oid			types[3] = {INT8OID, InvalidOid, InvalidOid};
	int			nargs = 1;
	const char *at;

	if (customer_plans[from][reads] != NULL)
		return customer_plans[from][reads];
	if (from == CUST_FROM_KEY)
	{
		types[0] = types[1] = TEXTOID;
		nargs = 2;
	}
	types[nargs] = TIMESTAMPTZOID;
	at = nargs == 1 ? "$2" : "$3";
	initStringInfo(&sql);
	if (from == CUST_FROM_LOCKED)
		appendStringInfoString(&sql, "SELECT s.id, NULL::text, NULL::text");
	else
		appendStringInfoString(&sql, "SELECT s.id, s.tier, s.status");
	if (reads & CUST_READ_SEGMENTS)
		appendStringInfoString(&sql, ", g.segments");
	if (reads & CUST_READ_USAGE)
		appendStringInfoString(&sql, ", u.promotions, u.uses");
	if (reads & CUST_READ_SUBSCRIPTIONS)
		appendStringInfoString(&sql, ", v.plans, v.starts, v.ends");
	if (reads & CUST_READ_BALANCES)
		appendStringInfoString(&sql, ", b.account, b.available, b.pending, b.in_debt");
	if (from == CUST_FROM_LOCKED)
		appendStringInfoString(&sql, " FROM (SELECT $1::int8 AS id) s");
	else
		appendStringInfoString(&sql,
							   " FROM loyalty.customer c"
							   " JOIN loyalty.customer s ON s.id = coalesce(c.merged_into, c.id)");
	if (reads & CUST_READ_SEGMENTS)
		appendStringInfoString(&sql,
							   " CROSS JOIN LATERAL (SELECT ARRAY(SELECT m.segment"
							   " FROM loyalty.segment_member m WHERE m.customer_id = s.id)"
							   " AS segments) g");
	if (reads & CUST_READ_USAGE)
		appendStringInfoString(&sql,
							   " CROSS JOIN LATERAL (SELECT array_agg(x.promotion ORDER BY x.promotion)"
							   " AS promotions, array_agg(x.uses ORDER BY x.promotion) AS uses"
							   " FROM loyalty.promotion_customer_usage x"
							   " WHERE x.customer_id = s.id) u");
	if (reads & CUST_READ_SUBSCRIPTIONS)
		appendStringInfoString(&sql,
							   " CROSS JOIN LATERAL (SELECT array_agg(y.plan) AS plans,"
							   " array_agg(y.starts_at) AS starts, array_agg(y.ends_at) AS ends"
							   " FROM loyalty.subscription y WHERE y.customer_id = s.id) v");
	if (reads & CUST_READ_BALANCES)
		appendStringInfo(&sql, " LEFT JOIN LATERAL (%s) b ON true",
						 psprintf(LEDGER_BALANCE_ROWS("s.id", "%s"), at, at, at));
	if (from == CUST_FROM_KEY)
		appendStringInfoString(&sql, CUSTOMER_KEY_WHERE);
	else if (from == CUST_FROM_ID)
		appendStringInfoString(&sql, " WHERE c.id = $1");
	return saved_plan(&customer_plans[from][reads], sql.data, nargs + 1, types);
}

/* ---------------------------------------------------------------------
 * Customers
 * ---------------------------------------------------------------------
 */

/* text_array_col returns a text[] column's elements as C strings. */
static int
text_array_col(int col, char ***result)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	*result = NULL;
	if (isnull)
		return 0;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	*result = palloc(sizeof(char *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		(*result)[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	}
	return n;
}

/* timestamp_array_col reads a timestamptz[] column of n elements (0 when NULL). */
static TimestampTz *
timestamp_array_col(int col, int n)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
	TimestampTz *result = palloc0(sizeof(TimestampTz) * Max(n, 1));
	Datum	   *elems;
	bool	   *nulls;
	int			m;

	if (isnull)
		return result;
	deconstruct_array(DatumGetArrayTypeP(d), TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &nulls, &m);
	if (m != n)
		elog(ERROR, "customer subscription arrays differ in length");
	for (int i = 0; i < m; i++)
		result[i] = DatumGetTimestampTz(elems[i]);
	return result;
}

/*
 * fill_row sets the customer's id, tier and status: blocked customers are
 * priced as anonymous; no tier yet is the lowest rank (SPEC section 3),
 * none when the program has no tiers.
 */
static void
fill_row(ConfigCache *cfg, CustomerInfo *cust, int64 id, const char *tier,
		 const char *status)
{
	cust->id = id;
	cust->blocked = status != NULL && strcmp(status, "blocked") == 0;
	cust->identified = !cust->blocked;
	cust->tier = config_tier(cfg, tier);
	if (cust->tier == NULL && cfg->ntiers > 0)
		cust->tier = &cfg->tiers[0];
}

/*
 * fill_parts reads the customer read's optional parts (customer_plan's
 * columns from 4 on) into cust, from a result of nrows rows.
 */
static void
fill_parts(ConfigCache *cfg, CustomerInfo *cust, int reads, uint64 nrows)
{
	int			col = 4;

	if (reads & CUST_READ_SEGMENTS)
		cust->nsegments = text_array_col(col++, &cust->segments);
	if (reads & CUST_READ_USAGE)
	{
		bool		isnull;
		Datum		d;
		int			n = 0;

		cust->nusage = text_array_col(col++, &cust->usage_promotion);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col++, &isnull);
		if (!isnull)
		{
			Datum	   *elems;
			bool	   *nulls;

			deconstruct_array(DatumGetArrayTypeP(d), INT8OID, 8, FLOAT8PASSBYVAL,
							  TYPALIGN_DOUBLE, &elems, &nulls, &n);
			cust->usage_count = palloc(sizeof(int64) * Max(n, 1));
			for (int i = 0; i < n; i++)
				cust->usage_count[i] = nulls[i] ? 0 : DatumGetInt64(elems[i]);
		}
		if (n != cust->nusage)
			elog(ERROR, "customer usage arrays differ in length");
	}
	if (reads & CUST_READ_SUBSCRIPTIONS)
	{
		cust->nsubs = text_array_col(col++, &cust->sub_plan);
		cust->sub_starts = timestamp_array_col(col++, cust->nsubs);
		cust->sub_ends = timestamp_array_col(col++, cust->nsubs);
	}
	if (reads & CUST_READ_BALANCES)
	{
		const char **codes = palloc(sizeof(char *) * cfg->naccounts);

		for (int a = 0; a < cfg->naccounts; a++)
			codes[a] = cfg->accounts[a].code;
		cust->balances = palloc0(sizeof(LedgerBalance) * cfg->naccounts);
		ledger_balances_result(nrows, col, cfg->naccounts, codes, cust->balances);
		cust->has_balances = true;
	}
}

/*
 * customer_now is the moment a request's balances are read as of: the
 * server's time, not the check's (what may be spent is judged now), or
 * the moment of the hold a captured order is judged as of (check_bind's
 * server_now).
 */
static TimestampTz
customer_now(CheckRequest *req)
{
	return req->at_held ? req->held_now : clock_server_now(req->has_at, req->at);
}

/* customer_not_found raises LY001 for the request's customer. */
static void
customer_not_found(CheckRequest *req)
{
	ereport(ERROR,
			(errcode(ERRCODE_LOYALTY_CUSTOMER_NOT_FOUND),
			 errmsg("customer not found"),
			 req->customer_kind == CUSTOMER_ID ?
			 errdetail("No customer has id " INT64_FORMAT ".", req->customer_id) :
			 errdetail("No customer has the phone, card or id \"%s\".",
					   req->customer_text)));
}

/*
 * request_key reads the request's customer (a number, or an identifier
 * read by the one rule of customers.h).
 */
static void
request_key(CheckRequest *req, CustomerKey *key)
{
	if (req->customer_kind == CUSTOMER_ID)
	{
		key->by_id = true;
		key->id = req->customer_id;
	}
	else
		customer_key_parse(req->customer_text, key);
}

/*
 * check_customer resolves and loads the request's customer (see
 * check_db.h).
 */
CustomerInfo *
check_customer(ConfigCache *cfg, CheckRequest *req)
{
	return check_customer_reading(cfg, req, check_customer_reads(cfg));
}

/*
 * check_customer_reading is check_customer reading the given parts (see
 * check_db.h): one statement.
 */
CustomerInfo *
check_customer_reading(ConfigCache *cfg, CheckRequest *req, int reads)
{
	CustomerInfo *cust = palloc0(sizeof(CustomerInfo));
	CustomerKey key;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	uint64		nrows;

	if (req->customer_kind == CUSTOMER_NONE)
		return cust;
	request_key(req, &key);
	/* balances as of the server's time: a new snapshot, as ledger_balances */
	if (key.by_id)
	{
		values[0] = Int64GetDatum(key.id);
		values[1] = TimestampTzGetDatum(customer_now(req));
		nrows = spi_exec(customer_plan(CUST_FROM_ID, reads), values, NULL,
						 (reads & CUST_READ_BALANCES) == 0, 0);
	}
	else
	{
		customer_key_args(&key, values, nulls);
		values[2] = TimestampTzGetDatum(customer_now(req));
		nrows = spi_exec(customer_plan(CUST_FROM_KEY, reads), values, nulls,
						 (reads & CUST_READ_BALANCES) == 0, 0);
	}
	if (nrows == 0)
		customer_not_found(req);
	fill_row(cfg, cust, spi_int8(0, 1, 0), spi_isnull(0, 2) ? NULL : spi_text(0, 2, CurrentMemoryContext),
			 spi_isnull(0, 3) ? NULL : spi_text(0, 3, CurrentMemoryContext));
	fill_parts(cfg, cust, reads, nrows);
	return cust;
}

/*
 * what the locking queries return: the locked row's id, whom it was merged
 * into meanwhile, its tier and status, read from its latest version once
 * locked
 */
#define LOCK_SELECT \
	"SELECT s.id, s.merged_into, s.tier, s.status FROM loyalty.customer c" \
	"  JOIN loyalty.customer s ON s.id = coalesce(c.merged_into, c.id)"
#define LOCK_END " FOR NO KEY UPDATE OF s"

/*
 * check_customer_locked is check_customer for a purchase: it resolves the
 * customer and locks the row that holds their points (the survivor of a
 * merge) until the end of the transaction, reading the row's latest
 * version (tier, status) as it locks it.  The other parts, when the
 * configuration reads any, come after the lock in one statement with a new
 * snapshot, so that it sees what a concurrent purchase of the same
 * customer committed (uses of limited promotions, subscriptions, lots); a
 * locking query sees only the locked row anew.  The customer row itself is
 * read once.
 *
 * A merge (loyalty.merge_customers) locks both customers the same way, in
 * id order.  A purchase of the absorbed customer that waited for the merge
 * finds the row it locked merged: it then locks the survivor and prices
 * them, under their lock as every purchase of theirs (before 0.9 it priced
 * the survivor under the absorbed row's lock, racing the survivor's own
 * purchases into 23505 on promotion_customer_usage or a spurious LY004).
 */
CustomerInfo *
check_customer_locked(ConfigCache *cfg, CheckRequest *req)
{
	static SPIPlanPtr lock_by_id_plan = NULL;
	static SPIPlanPtr lock_by_text_plan = NULL;
	CustomerInfo *cust = palloc0(sizeof(CustomerInfo));
	CustomerKey key;
	Datum		values[2];
	char		nulls[2];
	int64		id;
	char	   *tier;
	char	   *status;
	int			reads = check_customer_reads(cfg);
	bool		isnull;

	if (req->customer_kind == CUSTOMER_NONE)
		return cust;
	request_key(req, &key);
	if (key.by_id)
	{
		Oid			types[1] = {INT8OID};

		values[0] = Int64GetDatum(key.id);
		(void) spi_exec(saved_plan(&lock_by_id_plan, LOCK_SELECT " WHERE c.id = $1" LOCK_END,
						   1, types),
				values, NULL, false, 0);
	}
	else
	{
		Oid			types[2] = {TEXTOID, TEXTOID};

		customer_key_args(&key, values, nulls);
		(void) spi_exec(saved_plan(&lock_by_text_plan, LOCK_SELECT CUSTOMER_KEY_WHERE LOCK_END,
						   2, types),
				values, nulls, false, 0);
	}
	if (SPI_processed == 0)
		customer_not_found(req);
	/* merged while this waited for the lock: the survivor, under their lock */
	for (;;)
	{
		Oid			types[1] = {INT8OID};
		Datum		survivor = SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull);

		if (isnull)
			break;
		CHECK_FOR_INTERRUPTS();
		values[0] = survivor;
		(void) spi_exec(saved_plan(&lock_by_id_plan, LOCK_SELECT " WHERE c.id = $1" LOCK_END,
						   1, types),
				values, NULL, false, 0);
		if (SPI_processed == 0)
			customer_not_found(req);
	}
	id = spi_int8(0, 1, 0);
	tier = spi_isnull(0, 3) ? NULL : spi_text(0, 3, CurrentMemoryContext);
	status = spi_isnull(0, 4) ? NULL : spi_text(0, 4, CurrentMemoryContext);
	fill_row(cfg, cust, id, tier, status);
	if (reads != 0)
	{
		Datum		pvalues[2];
		uint64		nrows;

		pvalues[0] = Int64GetDatum(id);
		pvalues[1] = TimestampTzGetDatum(customer_now(req));
		/* not read-only: a new snapshot, taken after the lock */
		nrows = spi_exec(customer_plan(CUST_FROM_LOCKED, reads), pvalues, NULL, false, 0);
		fill_parts(cfg, cust, reads, nrows);
	}
	return cust;
}

/* ---------------------------------------------------------------------
 * Usage limits
 * ---------------------------------------------------------------------
 */

/*
 * check_usage reads the global uses of limited promotions (see header).
 * Only the promotions on the cache's list of limited ones are visited, so
 * a check costs nothing per promotion without a usage limit.
 */
int64 *
check_usage(ConfigCache *cfg)
{
	Oid			types[1] = {TEXTARRAYOID};
	Datum	   *codes;
	Datum		values[1];
	int64	   *usage;
	int			n = cfg->nusage_limited;
	int			i;
	uint64		r;

	if (!cfg->any_usage_limit)
		return NULL;
	/* -1 (all bits set): no limit; the limited ones start at 0 */
	usage = palloc(sizeof(int64) * cfg->npromotions);
	memset(usage, 0xFF, sizeof(int64) * cfg->npromotions);
	if (n == 0)
		return usage;
	codes = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
	{
		usage[cfg->usage_limited[i]] = 0;
		codes[i] = CStringGetTextDatum(cfg->promotions[cfg->usage_limited[i]].code);
	}
	values[0] = PointerGetDatum(construct_array(codes, n, TEXTOID, -1, false, TYPALIGN_INT));
	spi_exec(saved_plan(&usage_plan,
					 "SELECT u.promotion, u.uses, q.quota FROM loyalty.promotion_usage u"
					 " LEFT JOIN loyalty.promotion_quota q ON q.promotion = u.promotion"
					 " WHERE u.promotion = ANY ($1)", 1, types),
			 values, NULL, true, 0);
	for (r = 0; r < SPI_processed; r++)
	{
		char	   *code = spi_text(r, 1, CurrentMemoryContext);
		int64		uses = spi_int8(r, 2, 0);
		int64		quota = spi_int4(r, 3, -1);

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < n; i++)
		{
			int			k = cfg->usage_limited[i];

			if (strcmp(cfg->promotions[k].code, code) == 0)
			{
				int64		limit = cfg->promotions[k].usage_limit;

				/*
				 * This node's quota of a sharded limit (issue 20): the engine
				 * compares uses with the limit, so the part of the limit that
				 * is other nodes' counts as used here.
				 */
				usage[k] = uses;
				if (quota >= 0 && quota < limit)
					usage[k] += limit - quota;
			}
		}
	}
	return usage;
}

/*
 * counts_global says whether a purchase that applied promotion p counts a
 * use of it on the promotion's own counter (p has a usage limit).
 */
static bool
counts_global(const CachedPromotion *p)
{
	return p->usage_limit > 0;
}

/*
 * counts_customer says whether a purchase of customer cust that applied
 * promotion p counts a use of it on the customer's counter (p has a
 * per-customer limit and the customer is identified).
 */
static bool
counts_customer(const CachedPromotion *p, const CustomerInfo *cust)
{
	return p->per_customer_limit > 0 && cust->identified;
}

/*
 * claim_global counts a use of promotion p unless that reaches past its
 * usage limit, or past this node's quota of it when the limit is split
 * over shards (loyalty.promotion_quota); false when refused.  These
 * counters are shared by every purchase, so each is one short statement
 * taking its row lock last.
 */
static bool
claim_global(const CachedPromotion *p)
{
	Oid			types[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(p->code), Int32GetDatum(p->usage_limit)};

	spi_exec(saved_plan(&claim_plan,
					 "INSERT INTO loyalty.promotion_usage AS u (promotion, uses)"
					 " VALUES ($1, 1) ON CONFLICT (promotion)"
					 " DO UPDATE SET uses = u.uses + 1"
					 " WHERE u.uses < least(coalesce((SELECT q.quota"
					 " FROM loyalty.promotion_quota q WHERE q.promotion = $1), $2), $2)"
					 " RETURNING u.uses", 2, types),
			 values, NULL, false, 0);
	return SPI_processed == 1;
}

/* unclaim_global takes back a use counted by claim_global. */
static void
unclaim_global(const CachedPromotion *p)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(p->code)};

	spi_exec(saved_plan(&unclaim_plan,
					 "UPDATE loyalty.promotion_usage SET uses = uses - 1"
					 " WHERE promotion = $1", 1, types),
			 values, NULL, false, 0);
}

/*
 * claim_customer counts a use by the customer of each of the n promotions
 * (codes, with their per-customer limits).  The purchase holds the
 * customer's row lock and priced the check with the counters read under
 * it, so it knows which counters exist: the new ones are inserted and the
 * others incremented, each kind by one plain statement (an upsert would
 * pay for a speculative insertion on every use).  No limit can be passed
 * here; should one be (a bug, or a writer that does not lock the
 * customer), every count is taken back and the index of that promotion
 * returned, else -1.  A counter that vanished meanwhile (an administrator
 * deleting it) fails the purchase with 40001, to be sent again.
 */
static int
claim_customer(CheckResult *r, Datum *codes, Datum *limits, int *index, int n)
{
	Oid			types[2] = {TEXTARRAYOID, INT8OID};
	Datum		values[2];
	Datum	   *fresh = palloc(sizeof(Datum) * n);
	Datum	   *known = palloc(sizeof(Datum) * n);
	char	  **names = palloc(sizeof(char *) * n);
	int			nfresh = 0;
	int			nknown = 0;
	char	   *over = NULL;
	int			i,
				k;

	for (i = 0; i < n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		names[i] = TextDatumGetCString(codes[i]);
		for (k = 0; k < r->cust->nusage; k++)
			if (strcmp(r->cust->usage_promotion[k], names[i]) == 0)
				break;
		if (k < r->cust->nusage)
			known[nknown++] = codes[i];
		else
			fresh[nfresh++] = codes[i];
	}
	values[1] = Int64GetDatum(r->cust->id);

	if (nfresh > 0)
	{
		values[0] = PointerGetDatum(construct_array(fresh, nfresh, TEXTOID, -1, false,
													TYPALIGN_INT));
		spi_exec(saved_plan(&claim_fresh_plan,
						 "INSERT INTO loyalty.promotion_customer_usage (promotion, customer_id, uses)"
						 " SELECT c, $2, 1 FROM pg_catalog.unnest($1) AS c", 2, types),
				 values, NULL, false, 0);
	}
	if (nknown > 0)
	{
		uint64		row;

		values[0] = PointerGetDatum(construct_array(known, nknown, TEXTOID, -1, false,
													TYPALIGN_INT));
		spi_exec(saved_plan(&claim_known_plan,
						 "UPDATE loyalty.promotion_customer_usage u SET uses = u.uses + 1"
						 " WHERE u.customer_id = $2 AND u.promotion = ANY ($1)"
						 " RETURNING u.promotion, u.uses", 2, types),
				 values, NULL, false, 0);
		if (SPI_processed != (uint64) nknown)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("a promotion usage counter of customer " INT64_FORMAT " changed during the purchase",
							r->cust->id),
					 errhint("Send the purchase again.")));
		for (row = 0; row < SPI_processed && over == NULL; row++)
		{
			char	   *code = spi_text(row, 1, CurrentMemoryContext);
			int64		uses = spi_int8(row, 2, 0);

			CHECK_FOR_INTERRUPTS();
			for (i = 0; i < n; i++)
				if (strcmp(names[i], code) == 0 && uses > DatumGetInt32(limits[i]))
					over = code;
		}
	}
	if (over == NULL)
		return -1;

	values[0] = PointerGetDatum(construct_array(codes, n, TEXTOID, -1, false, TYPALIGN_INT));
	spi_exec(saved_plan(&unclaim_customer_plan,
					 "UPDATE loyalty.promotion_customer_usage SET uses = uses - 1"
					 " WHERE promotion = ANY ($1) AND customer_id = $2", 2, types),
			 values, NULL, false, 0);
	for (i = 0; i < n; i++)
		if (strcmp(names[i], over) == 0)
			return index[i];
	elog(ERROR, "promotion \"%s\" was not claimed", over);
	return -1;					/* keep compiler quiet */
}

/*
 * check_claim_uses counts the uses of the limited promotions the check
 * applied: the global counters one by one in cache order (so concurrent
 * purchases lock them in one order), then the customer's in one
 * statement; see check_db.h.
 */
int
check_claim_uses(CheckResult *r)
{
	ConfigCache *cfg = r->cfg;
	const CachedPromotion **applied;
	Datum	   *codes;
	Datum	   *limits;
	int		   *index;
	int			nclaimed = 0;
	int			n = 0;
	int			i;
	int			failed = -1;
	ListCell   *ac;

	if (!cfg->any_usage_limit || r->applied == NIL)
		return -1;

	/* the applied promotions by cache index */
	applied = palloc0(sizeof(CachedPromotion *) * cfg->npromotions);
	foreach(ac, r->applied)
	{
		AppliedPromotion *ap = lfirst(ac);

		applied[ap->promo->index] = ap->promo;
	}

	for (i = 0; i < cfg->npromotions; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (applied[i] == NULL || !counts_global(applied[i]))
			continue;
		if (!claim_global(applied[i]))
		{
			failed = i;
			break;
		}
		nclaimed++;
	}

	if (failed < 0 && r->cust->identified)
	{
		codes = palloc(sizeof(Datum) * cfg->npromotions);
		limits = palloc(sizeof(Datum) * cfg->npromotions);
		index = palloc(sizeof(int) * cfg->npromotions);
		for (i = 0; i < cfg->npromotions; i++)
		{
			if (applied[i] == NULL || !counts_customer(applied[i], r->cust))
				continue;
			codes[n] = CStringGetTextDatum(applied[i]->code);
			limits[n] = Int32GetDatum(applied[i]->per_customer_limit);
			index[n++] = i;
		}
		if (n > 0)
			failed = claim_customer(r, codes, limits, index, n);
	}

	/* a refused claim: take back the global uses counted before it */
	if (failed >= 0)
		for (i = 0; i < cfg->npromotions && nclaimed > 0; i++)
			if (applied[i] != NULL && counts_global(applied[i]))
			{
				CHECK_FOR_INTERRUPTS();
				unclaim_global(applied[i]);
				nclaimed--;
			}
	return failed;
}


/*
 * release_global takes back a use of promotion code counted by a purchase
 * now refunded in full; a counter at zero (reset, or renamed since) is
 * left alone.
 */
static void
release_global(const char *code)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(code)};

	spi_exec(saved_plan(&release_plan,
					 "UPDATE loyalty.promotion_usage SET uses = uses - 1"
					 " WHERE promotion = $1 AND uses > 0", 1, types),
			 values, NULL, false, 0);
}

/*
 * check_release_uses gives back the uses a purchase counted, on its full
 * refund (see check_db.h).  The global counters are taken in the
 * configuration cache's order, the order purchases claim them in (codes
 * the cache does not know, of promotions disabled since, after them), so a
 * refund and a purchase never wait for each other crosswise.  The
 * customer's counters are guarded by the customer's row lock.  A counter
 * never goes below zero.
 */
void
check_release_uses(ConfigCache *cfg, int64 customer_id,
				   char **global, int nglobal, char **customer, int ncustomer)
{
	bool	   *done = palloc0(sizeof(bool) * Max(nglobal, 1));
	Oid			types[2] = {TEXTARRAYOID, INT8OID};
	Datum		values[2];
	Datum	   *codes;
	int			i,
				k;

	/* i == npromotions: the codes the cache does not know */
	for (i = 0; i <= cfg->npromotions; i++)
		for (k = 0; k < nglobal; k++)
		{
			if (done[k] ||
				(i < cfg->npromotions && strcmp(cfg->promotions[i].code, global[k]) != 0))
				continue;
			done[k] = true;
			release_global(global[k]);
		}

	if (ncustomer == 0 || customer_id <= 0)
		return;
	codes = palloc(sizeof(Datum) * ncustomer);
	for (k = 0; k < ncustomer; k++)
		codes[k] = CStringGetTextDatum(customer[k]);
	values[0] = PointerGetDatum(construct_array(codes, ncustomer, TEXTOID, -1, false,
												TYPALIGN_INT));
	values[1] = Int64GetDatum(customer_id);
	spi_exec(saved_plan(&release_customer_plan,
					 "UPDATE loyalty.promotion_customer_usage SET uses = uses - 1"
					 " WHERE customer_id = $2 AND promotion = ANY ($1) AND uses > 0", 2, types),
			 values, NULL, false, 0);
}

/* ---------------------------------------------------------------------
 * Purchase facts
 * ---------------------------------------------------------------------
 */

/* points_numeric is hundredths of a point as a numeric datum. */
static Datum
points_numeric(int64 points)
{
	return NumericGetDatum(scaled_to_numeric(points, POINTS_SCALE));
}

/* money_datum is money as a numeric datum with two decimals. */
static Datum
money_datum(int64 money)
{
	return NumericGetDatum(scaled_to_numeric(money, MONEY_SCALE));
}

/*
 * line_points builds one line's points: {"account": {"earned": e, "spent":
 * s}} for the accounts the line earned or spent on (points as decimals,
 * trailing zeros dropped), adding them to the check's totals in hundredths.
 */
static Jsonb *
line_points(CheckResult *r, CheckLine *l, int64 *earned, int64 *spent)
{
	JsonBuilder b = {0};

	jb_begin_object(&b);
	for (int a = 0; a < r->cfg->naccounts; a++)
	{
		if (l->accrual[a] == 0 && l->redeem_points[a] == 0)
			continue;
		jb_key(&b, r->cfg->accounts[a].code);
		jb_begin_object(&b);
		jb_key(&b, "earned");
		jb_trimmed(&b, false, l->accrual[a], POINTS_SCALE);
		jb_key(&b, "spent");
		jb_trimmed(&b, false, l->redeem_points[a], POINTS_SCALE);
		jb_end_object(&b);
		*earned += l->accrual[a];
		*spent += l->redeem_points[a];
	}
	jb_end_object(&b);
	return jb_finish(&b);
}

/*
 * line_promotions builds one line's promotions as the response shows them:
 * [{"code": c, "discount": d}] in the order they applied.
 */
static Jsonb *
line_promotions(CheckLine *l)
{
	JsonBuilder b = {0};

	jb_begin_array(&b);
	for (int k = 0; k < l->npromos; k++)
	{
		jb_begin_object(&b);
		jb_key(&b, "code");
		jb_string(&b, false, l->promos[k].promo->code);
		jb_key(&b, "discount");
		jb_money(&b, false, l->promos[k].discount);
		jb_end_object(&b);
	}
	jb_end_array(&b);
	return jb_finish(&b);
}

/* LINE_COLUMNS: the typed arrays check_write_purchase passes per line */
#define LINE_COLUMNS	11

/*
 * check_write_purchase writes the purchase and its lines, each with its
 * points per account, in one statement.  The lines go as typed arrays, one
 * per column, straight from the priced check (not back through the
 * response, which is not read).  The purchase records which usage counters check_claim_uses
 * incremented for it, for its full refund to take back.
 */
void
check_write_purchase(CheckResult *r, const char *operation_id, Jsonb *response)
{
	Oid			types[16 + LINE_COLUMNS] = {TEXTOID, INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID,
		NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID, NUMERICOID,
		INT4OID, TEXTARRAYOID, NUMERICOID, TEXTARRAYOID, TEXTARRAYOID,
		INT4ARRAYOID, TEXTARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID,
	NUMERICARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID, JSONBARRAYOID,
	JSONBARRAYOID};
	Datum		values[16 + LINE_COLUMNS];
	char		nulls[16 + LINE_COLUMNS];
	int64		earned = 0,
				spent = 0;
	Datum	   *codes;
	Datum	   *counted;
	Datum	   *customer_counted;
	Datum	   *cols[LINE_COLUMNS];
	int			n = Max(r->nlines, 1);
	int			ncodes = 0;
	int			ncounted = 0;
	int			ncustomer_counted = 0;
	ListCell   *lc;

	memset(nulls, ' ', sizeof(nulls));
	codes = palloc(sizeof(Datum) * Max(list_length(r->applied), 1));
	counted = palloc(sizeof(Datum) * Max(list_length(r->applied), 1));
	customer_counted = palloc(sizeof(Datum) * Max(list_length(r->applied), 1));
	foreach(lc, r->applied)
	{
		const CachedPromotion *p = ((AppliedPromotion *) lfirst(lc))->promo;
		Datum		code = CStringGetTextDatum(p->code);

		codes[ncodes++] = code;
		if (counts_global(p))
			counted[ncounted++] = code;
		if (counts_customer(p, r->cust))
			customer_counted[ncustomer_counted++] = code;
	}

	/* the lines, one array per column: index, sku, qty, the money, promotions, points */
	for (int c = 0; c < LINE_COLUMNS; c++)
		cols[c] = palloc(sizeof(Datum) * n);
	for (int i = 0; i < r->nlines; i++)
	{
		CheckLine  *l = &r->lines[i];

		CHECK_FOR_INTERRUPTS();
		cols[0][i] = Int32GetDatum(l->index);
		cols[1][i] = CStringGetTextDatum(l->sku);
		cols[2][i] = NumericGetDatum(scaled_to_numeric(l->qty, QTY_SCALE));
		cols[3][i] = money_datum(l->price);
		cols[4][i] = money_datum(l->amount);
		cols[5][i] = money_datum(l->discount);
		cols[6][i] = money_datum(l->certificate);
		cols[7][i] = money_datum(l->redeemed);
		cols[8][i] = money_datum(l->total);
		cols[9][i] = JsonbPGetDatum(line_promotions(l));
		cols[10][i] = JsonbPGetDatum(line_points(r, l, &earned, &spent));
	}

	values[0] = CStringGetTextDatum(operation_id);
	values[1] = Int64GetDatum(r->cust->id);
	if (!r->cust->identified)
		nulls[1] = 'n';
	if (r->store)
		values[2] = CStringGetTextDatum(r->store->code);
	else
		nulls[2] = 'n';
	values[3] = CStringGetTextDatum(r->channel);
	values[4] = TimestampTzGetDatum(r->at);
	values[5] = money_datum(r->amount);
	values[6] = money_datum(r->discount);
	values[7] = money_datum(r->redeemed);
	values[8] = money_datum(r->total);
	values[9] = points_numeric(earned);
	values[10] = points_numeric(spent);
	values[11] = Int32GetDatum(r->nlines);
	values[12] = PointerGetDatum(construct_array(codes, ncodes, TEXTOID, -1, false, TYPALIGN_INT));
	values[13] = money_datum(r->certificate);
	values[14] = PointerGetDatum(construct_array(counted, ncounted, TEXTOID, -1, false,
												 TYPALIGN_INT));
	values[15] = PointerGetDatum(construct_array(customer_counted, ncustomer_counted, TEXTOID,
												 -1, false, TYPALIGN_INT));
	values[16] = PointerGetDatum(construct_array(cols[0], r->nlines, INT4OID, 4, true,
												 TYPALIGN_INT));
	values[17] = PointerGetDatum(construct_array(cols[1], r->nlines, TEXTOID, -1, false,
												 TYPALIGN_INT));
	for (int c = 2; c <= 8; c++)
		values[16 + c] = PointerGetDatum(construct_array(cols[c], r->nlines, NUMERICOID, -1,
														 false, TYPALIGN_INT));
	values[25] = PointerGetDatum(construct_array(cols[9], r->nlines, JSONBOID, -1, false,
												 TYPALIGN_INT));
	values[26] = PointerGetDatum(construct_array(cols[10], r->nlines, JSONBOID, -1, false,
												 TYPALIGN_INT));
	spi_exec(saved_plan(&purchase_plan,
					 "WITH p AS ("
					 " INSERT INTO loyalty.purchase (operation_id, customer_id, store,"
					 " channel, at, amount, discount, redeemed, total, points_earned,"
					 " points_spent, lines, promotions, certificate, usage_counted,"
					 " customer_usage_counted)"
					 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
					 " pg_catalog.trim_scale($10), pg_catalog.trim_scale($11), $12, $13, $14,"
					 " $15, $16))"
					 " INSERT INTO loyalty.purchase_line (operation_id, line_index, sku,"
					 " qty, price, amount, discount, certificate, redeemed, total, promotions,"
					 " points)"
					 " SELECT $1, x.index, x.sku, x.qty, x.price, x.amount, x.discount,"
					 "        x.certificate, x.redeemed, x.total, x.promotions, x.points"
					 "   FROM ROWS FROM (pg_catalog.unnest($17), pg_catalog.unnest($18),"
					 "        pg_catalog.unnest($19), pg_catalog.unnest($20),"
					 "        pg_catalog.unnest($21), pg_catalog.unnest($22),"
					 "        pg_catalog.unnest($23), pg_catalog.unnest($24),"
					 "        pg_catalog.unnest($25), pg_catalog.unnest($26),"
					 "        pg_catalog.unnest($27)) AS x(index, sku, qty, price, amount, discount,"
					 "        certificate, redeemed, total, promotions, points)",
					 27, types),
			 values, nulls, false, 0);
}
