/*-------------------------------------------------------------------------
 *
 * backtest.c
 *	  loyalty.backtest(request jsonb) (SPEC section 16): what candidate
 *	  promotions would have cost on the committed purchases of a period.
 *
 * The request names the period, the candidate promotions (loyalty.promotion
 * rows as JSON, validated as an insert into the table would be: LY006
 * naming the field), the codes to disable, optional stores and a sample
 * fraction.  The configuration as it is now (config_cache_get) and a
 * candidate configuration (config_cache_build_candidate: the same tables,
 * the promotions changed) are both in memory; each stored request of a
 * purchase of the period is bound to each of them and priced by the pure
 * engine (engine_run) twice, at the purchase's moment, for its customer
 * as they are now.  Nothing is written.
 *
 * What is not re-simulated, and the result says so: usage limits (every
 * promotion is priced as if no use had been taken), coupons sent with the
 * check (neither discounts nor the promotions they unlock), and points
 * spent (balances are not reloaded; redemption is left out of both runs).
 * Both runs leave out the same things, so a difference comes from the
 * configuration alone.
 *
 * The history is read through a cursor in batches; each check runs in a
 * memory context reset after it, calls CHECK_FOR_INTERRUPTS, and every
 * progress_every checks a NOTICE gives the rate and the time left.  From
 * BACKTEST_PARALLEL_MIN checks on (or "parallel": "on"), the replay is a
 * parallel query instead: see "The parallel replay" below.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/parallel.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "check.h"
#include "check_db.h"
#include "check_load.h"
#include "config_cache.h"
#include "engine.h"
#include "json_reader.h"
#include "jsonb_builder.h"
#include "request.h"
#include "rules.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(loyalty_backtest);

/* checks fetched from the cursor at a time */
#define BACKTEST_BATCH		500
/* products listed in top_products */
#define BACKTEST_TOP		20
/* default number of checks between two progress notices */
#define BACKTEST_PROGRESS	10000

/* the request: 22023, naming the field */
static const JsonReaderStyle BACKTEST_STYLE = {
	.sqlstate = ERRCODE_INVALID_PARAMETER_VALUE,
	.errmsg = "malformed request",
	.null_is_absent = true,
	.not_object = "The request must be a JSON object.",
	.unknown_key = "is not a known field.",
	.max_key_bytes = 64,
	.not_string = "must be a string.",
	.empty_string = "must not be empty.",
	.not_finite = "must be a finite number.",
	.written_decimals = false,
	.decimals = "must have at most %d decimals.",
};

/* a candidate promotion row: LY006 as an insert into loyalty.promotion */
static const JsonReaderStyle CANDIDATE_STYLE = {
	.sqlstate = ERRCODE_LOYALTY_INVALID_CONFIGURATION,
	.errmsg = "invalid candidate promotion",
	.null_is_absent = true,
	.not_object = NULL,
	.unknown_key = "is not a column of loyalty.promotion.",
	.max_key_bytes = 64,
	.not_string = "must be a string.",
	.empty_string = "must not be an empty string.",
	.not_finite = "must be a number.",
	.written_decimals = false,
	.decimals = "must have at most %d decimal places.",
};

static const char *const REQUEST_KEYS[] =
{"from", "to", "promotions", "disable", "stores", "sample", "progress_every",
"parallel", NULL};

static const char *const PROMOTION_KEYS[] =
{"code", "name", "mechanic", "rule", "priority", "grp", "exclusive",
	"starts_at", "ends_at", "schedule", "channels", "stores", "regions",
	"tiers", "segments", "identified_only", "requires_coupon", "usage_limit",
	"per_customer_limit", "enabled", "budget", "segments_exclude", "experiment",
	"variant", "points_budget", NULL};

static const JsonNumberKind SAMPLE = {6, 1, 1000000,
"must be greater than 0 and at most 1"};
static const JsonNumberKind PROGRESS = {0, 1, 1000000000,
"must be a whole number from 1 to 1000000000"};
static const JsonNumberKind PRIORITY = {0, PG_INT32_MIN, PG_INT32_MAX,
"must be a whole number that fits an integer"};
static const JsonNumberKind LIMIT = {0, 1, PG_INT32_MAX,
"must be a whole number greater than 0 (and fit an integer)"};

/* What the replay adds up under one key (a store, a day, a promotion). */
typedef struct Totals
{
	int64		checks;
	int64		changed;
	int64		discount_before;
	int64		discount_after;
	int64		points_before;	/* hundredths */
	int64		points_after;
} Totals;

/* An entry of a table keyed by a string (store, promotion, SKU). */
typedef struct NamedTotals
{
	const char *key;			/* hash key: the pointer, hashed by content */
	Totals		t;
	bool		candidate;		/* promotions: a candidate's code */
	bool		disabled;		/* promotions: disabled by the request */
} NamedTotals;

/* An entry of the per-day table. */
typedef struct DayTotals
{
	DateADT		day;
	Totals		t;
} DayTotals;

/* name_hash hashes a string key held by pointer. */
static uint32
name_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, (int) strlen(s));
}

/* name_match compares two string keys held by pointer. */
static int
name_match(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(const char *const *) key1, *(const char *const *) key2);
}

/* name_table creates a table of NamedTotals in the current context. */
static HTAB *
name_table(const char *what)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(const char *);
	ctl.entrysize = sizeof(NamedTotals);
	ctl.hash = name_hash;
	ctl.match = name_match;
	ctl.hcxt = CurrentMemoryContext;
	return hash_create(what, 64, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * named returns the entry of key in table, created with a copy of the key
 * (in cxt, which outlives the per-check context) when missing.
 */
static NamedTotals *
named(HTAB *table, const char *key, MemoryContext cxt)
{
	bool		found;
	NamedTotals *e = hash_search(table, &key, HASH_ENTER, &found);

	if (!found)
	{
		e->key = MemoryContextStrdup(cxt, key);
		memset(&e->t, 0, sizeof(Totals));
		e->candidate = e->disabled = false;
	}
	return e;
}

/* The request, read. */
typedef struct BacktestRequest
{
	TimestampTz from;
	TimestampTz to;
	Jsonb	   *promotions;		/* the candidate rows (a jsonb array) */
	int			ncandidates;
	char	  **candidates;		/* their codes */
	int			ndisable;
	char	  **disable;
	int			nstores;
	char	  **stores;			/* NULL: every store */
	int64		sample;			/* millionths; 1000000 = every check */
	int64		progress_every;
	int			parallel;		/* PARALLEL_AUTO, _ON or _OFF */
} BacktestRequest;

/* "parallel": how the history is replayed */
#define PARALLEL_AUTO	0
#define PARALLEL_ON		1
#define PARALLEL_OFF	2
static const char *const PARALLEL_MODES[] = {"auto", "on", "off", NULL};

/* auto: the parallel query from this many checks on */
#define BACKTEST_PARALLEL_MIN	5000

/* timestamp_field reads obj.key as a request timestamp (22023). */
static TimestampTz
timestamp_field(JsonReader *r, JsonbContainer *obj, const char *key,
				bool required, bool *present)
{
	int			saved;
	JsonbValue *v = jr_field(r, obj, key, required, &saved);
	TimestampTz result = 0;
	char	   *s;

	*present = v != NULL;
	if (v == NULL)
		return 0;
	s = jr_string(r, v);
	switch (request_timestamp_parse(s, &result))
	{
		case TIMESTAMP_OK:
			break;
		case TIMESTAMP_MALFORMED:
			jr_error(r, NULL, "must be an ISO 8601 timestamp with a UTC offset, such as \"2026-11-22T10:00:00+03:00\".");
		case TIMESTAMP_OUT_OF_RANGE:
			jr_error(r, NULL, "is out of range (years 2000 to 2200).");
	}
	jr_pop(r, saved);
	return result;
}

/*
 * jsonb_of returns a nested jsonb value (an object or array) as a Jsonb of
 * its own.
 */
static Jsonb *
jsonb_of(JsonbValue *v)
{
	return JsonbValueToJsonb(v);
}

/*
 * candidate_check validates candidate row obj (at path promotions[i]) as an
 * insert into loyalty.promotion would: its columns and their types, NOT
 * NULL and CHECK constraints, then mechanic, rule and schedule through the
 * table's own trigger code (rules.c).  Returns the row's code.
 */
static char *
candidate_check(JsonReader *r, JsonbContainer *obj)
{
	static const char *const NAME_LISTS[] =
	{"channels", "stores", "regions", "tiers", "segments", "segments_exclude", NULL};
	char	   *code;
	char	   *mechanic;
	const MechanicRoutine *m;
	JsonbValue *v;
	int			saved;
	bool		has_start;
	bool		has_end;
	TimestampTz starts_at;
	TimestampTz ends_at;

	jr_check_keys(r, obj, "a promotion row", PROMOTION_KEYS);
	code = jr_string_field(r, obj, "code", JR_REQUIRED, NULL);
	(void) jr_string_field(r, obj, "name", JR_REQUIRED, NULL);
	mechanic = jr_string_field(r, obj, "mechanic", JR_REQUIRED, NULL);
	(void) jr_number_field(r, obj, "priority", &PRIORITY, JR_OPTIONAL, 100);
	v = jr_field(r, obj, "grp", JR_OPTIONAL, &saved);
	if (v != NULL)
	{
		(void) jr_string(r, v);
		jr_pop(r, saved);
	}
	(void) jr_bool_field(r, obj, "exclusive", false);
	(void) jr_bool_field(r, obj, "identified_only", false);
	(void) jr_bool_field(r, obj, "requires_coupon", false);
	(void) jr_bool_field(r, obj, "enabled", true);
	(void) jr_number_field(r, obj, "usage_limit", &LIMIT, JR_OPTIONAL, 0);
	(void) jr_number_field(r, obj, "per_customer_limit", &LIMIT, JR_OPTIONAL, 0);
	/* a campaign budget (issue 18), money or points, is not replayed: no claims are read */
	(void) jr_number_field(r, obj, "budget", &RULE_MONEY_POSITIVE, JR_OPTIONAL, 0);
	(void) jr_number_field(r, obj, "points_budget", &RULE_MONEY_POSITIVE, JR_OPTIONAL, 0);
	/* an experiment's variant (issue 16), as the table's constraint says */
	if (jr_string_field(r, obj, "variant", JR_OPTIONAL, NULL) != NULL &&
		jr_string_field(r, obj, "experiment", JR_OPTIONAL, NULL) == NULL)
	{
		saved = jr_push_key(r, "variant");
		jr_error(r, NULL, "needs \"experiment\".");
	}
	for (int k = 0; NAME_LISTS[k] != NULL; k++)
	{
		int			n;
		char	  **items = jr_string_list_field(r, obj, NAME_LISTS[k], &n);

		if (strcmp(NAME_LISTS[k], "channels") != 0)
			continue;
		for (int j = 0; j < n; j++)
			if (strcmp(items[j], "pos") != 0 && strcmp(items[j], "web") != 0 &&
				strcmp(items[j], "app") != 0)
			{
				saved = jr_push_key(r, "channels");
				jr_error(r, NULL, "must name only \"pos\", \"web\" or \"app\".");
			}
	}
	starts_at = timestamp_field(r, obj, "starts_at", JR_OPTIONAL, &has_start);
	ends_at = timestamp_field(r, obj, "ends_at", JR_OPTIONAL, &has_end);
	if (has_start && has_end && starts_at >= ends_at)
	{
		saved = jr_push_key(r, "ends_at");
		jr_error(r, NULL, "must be later than \"starts_at\".");
	}

	/* mechanic, rule and schedule: the trigger's own parsers */
	m = mechanic_parse(code, mechanic);
	v = jr_field(r, obj, "rule", JR_OPTIONAL, &saved);
	if (v != NULL)
	{
		(void) jr_object(r, v);
		(void) rule_parse(code, m, jsonb_of(v), NULL);
		jr_pop(r, saved);
	}
	else
		(void) rule_parse(code, m, DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																	  CStringGetDatum("{}"))), NULL);
	v = jr_field(r, obj, "schedule", JR_OPTIONAL, &saved);
	if (v != NULL)
	{
		(void) jr_object(r, v);
		(void) schedule_parse(code, jsonb_of(v));
		jr_pop(r, saved);
	}
	return code;
}

/* backtest_parse reads and validates the request. */
static BacktestRequest *
backtest_parse(Jsonb *jb)
{
	BacktestRequest *req = palloc0(sizeof(BacktestRequest));
	JsonReader	r;
	JsonReader	pr;
	JsonbContainer *root;
	JsonbValue *v;
	int			saved;
	bool		present;

	jr_init(&r, &BACKTEST_STYLE, NULL, "");
	root = jr_root_object(&r, jb);
	jr_check_keys(&r, root, "a backtest request", REQUEST_KEYS);
	req->from = timestamp_field(&r, root, "from", JR_REQUIRED, &present);
	req->to = timestamp_field(&r, root, "to", JR_REQUIRED, &present);
	if (req->to <= req->from)
	{
		saved = jr_push_key(&r, "to");
		jr_error(&r, NULL, "must be later than \"from\".");
	}
	req->disable = jr_string_list_field(&r, root, "disable", &req->ndisable);
	req->stores = jr_string_list_field(&r, root, "stores", &req->nstores);
	req->sample = jr_number_field(&r, root, "sample", &SAMPLE, JR_OPTIONAL, 1000000);
	req->progress_every = jr_number_field(&r, root, "progress_every", &PROGRESS,
										  JR_OPTIONAL, BACKTEST_PROGRESS);
	req->parallel = jr_enum_field(&r, root, "parallel", PARALLEL_MODES, PARALLEL_AUTO);

	/* the candidates: an array of objects (22023), each a row (LY006) */
	v = jr_field(&r, root, "promotions", JR_OPTIONAL, &saved);
	if (v == NULL)
		req->promotions = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
															 CStringGetDatum("[]")));
	else
	{
		JsonbContainer *arr = jr_array(&r, v);
		int			n = JsonContainerSize(arr);

		req->promotions = jsonb_of(v);
		req->ncandidates = n;
		req->candidates = palloc0(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			int			esaved;
			JsonbValue *e;
			JsonbContainer *row;

			CHECK_FOR_INTERRUPTS();
			e = jr_element(&r, arr, i, &esaved);
			row = jr_object(&r, e);

			jr_init(&pr, &CANDIDATE_STYLE, NULL, jr_path(&r));
			req->candidates[i] = candidate_check(&pr, row);
			for (int j = 0; j < i; j++)
				if (strcmp(req->candidates[j], req->candidates[i]) == 0)
				{
					(void) jr_push_key(&pr, "code");
					jr_error(&pr, NULL, "repeats the code of promotions[%d].", j);
				}
			jr_free(&pr);
			jr_pop(&r, esaved);
		}
		jr_pop(&r, saved);
	}
	jr_free(&r);
	return req;
}

/* text_array makes a text[] of n strings. */
static Datum
text_array(char **items, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(items[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * replay_bind binds a stored request to cfg at the purchase's moment (the
 * check's time and the server's time both), as check_load would without
 * reading anything: no usage counted, no coupons, no balances.  NULL when
 * the purchase's store is no longer known.
 */
static CheckInput *
replay_bind(ConfigCache *cfg, CheckRequest *req, CustomerInfo *cust,
			TimestampTz at, const char *store)
{
	CheckInput *in = palloc0(sizeof(CheckInput));

	in->req = req;
	in->cust = cust;
	in->mode = ENGINE_CHECK;
	in->server_now = at;
	in->at = at;
	if (store != NULL)
	{
		in->store = config_store(cfg, store);
		if (in->store == NULL)
			return NULL;
	}
	in->lines = palloc0(sizeof(BoundLine) * Max(req->nlines, 1));
	check_bind_lines(cfg, in);
	in->usage = NULL;
	in->coupon_codes = palloc0(sizeof(char *));
	in->ncoupon_rows = 0;
	/* balances are not re-simulated: nothing to spend, so nothing spent */
	if (cust->identified && cfg->naccounts > 0)
	{
		in->balances = palloc0(sizeof(LedgerBalance) * cfg->naccounts);
		in->has_balances = true;
	}
	return in;
}

/*
 * replay_check prices one stored request under now_cfg and cand_cfg, at
 * the purchase's moment, for its customer as they are now (usage, coupons
 * and points spent left out of both).  False when the purchase's store is
 * no longer known (the check is skipped).  Must be called inside an SPI
 * connection (the customer is read).
 */
static bool
replay_check(ConfigCache *now_cfg, ConfigCache *cand_cfg, Jsonb *stored,
			 TimestampTz at, const char *store,
			 CheckResult **rb, CheckResult **ra)
{
	CheckRequest *creq;
	CustomerInfo *cust;
	CustomerInfo *cand_cust;
	CheckInput *in_b;
	CheckInput *in_a;

	creq = request_parse_check(stored, false, now_cfg->points_precision);
	/* not re-simulated: coupons, points spent */
	creq->ncoupons = 0;
	creq->redeem = REDEEM_NONE;
	creq->redeem_points = 0;
	cust = check_customer_reading(now_cfg, creq, (check_customer_reads(now_cfg) |
												 check_customer_reads(cand_cfg)) & ~CUST_READ_BALANCES);
	/* not re-simulated: per-customer usage limits */
	cust->nusage = 0;
	cand_cust = palloc(sizeof(CustomerInfo));
	*cand_cust = *cust;
	if (cust->tier != NULL)
		cand_cust->tier = config_tier(cand_cfg, cust->tier->code);

	in_b = replay_bind(now_cfg, creq, cust, at, store);
	in_a = in_b ? replay_bind(cand_cfg, creq, cand_cust, at, store) : NULL;
	if (in_a == NULL)
		return false;
	*rb = engine_run(now_cfg, in_b, NULL);
	*ra = engine_run(cand_cfg, in_a, NULL);
	return true;
}

/* result_points is the points a priced check earns, all accounts. */
static int64
result_points(const CheckResult *r)
{
	int64		sum = 0;

	if (r->accrual != NULL)
		for (int a = 0; a < r->cfg->naccounts; a++)
			sum += r->accrual[a];
	return sum;
}

/* totals_add adds one check's figures to t. */
static void
totals_add(Totals *t, bool changed, int64 db, int64 da, int64 pb, int64 pa)
{
	t->checks++;
	if (changed)
		t->changed++;
	t->discount_before += db;
	t->discount_after += da;
	t->points_before += pb;
	t->points_after += pa;
}

/* promotions_add adds a priced check's promotions to the per-code table. */
static void
promotions_add(HTAB *table, const CheckResult *r, bool after, MemoryContext cxt)
{
	ListCell   *lc;

	foreach(lc, r->applied)
	{
		AppliedPromotion *ap = lfirst(lc);
		NamedTotals *e = named(table, ap->promo->code, cxt);

		if (after)
		{
			e->t.discount_after += ap->discount;
			e->t.points_after += ap->points;
		}
		else
		{
			e->t.discount_before += ap->discount;
			e->t.points_before += ap->points;
		}
	}
}

/* totals_json writes the fields of t (the caller opened the object). */
static void
totals_json(JsonBuilder *b, const Totals *t, int precision)
{
	jb_key(b, "checks");
	jb_int(b, false, t->checks);
	jb_key(b, "changed");
	jb_int(b, false, t->changed);
	jb_key(b, "discount_before");
	jb_money(b, false, t->discount_before);
	jb_key(b, "discount_after");
	jb_money(b, false, t->discount_after);
	jb_key(b, "difference");
	jb_money(b, false, t->discount_after - t->discount_before);
	jb_key(b, "points_before");
	jb_points(b, false, t->points_before, precision);
	jb_key(b, "points_after");
	jb_points(b, false, t->points_after, precision);
	jb_key(b, "points_difference");
	jb_points(b, false, t->points_after - t->points_before, precision);
}

/* named_cmp orders entries by key. */
static int
named_cmp(const void *a, const void *b)
{
	return strcmp((*(NamedTotals *const *) a)->key, (*(NamedTotals *const *) b)->key);
}

/* added_cmp orders products by added discount, largest first, then SKU. */
static int
added_cmp(const void *a, const void *b)
{
	const NamedTotals *x = *(NamedTotals *const *) a;
	const NamedTotals *y = *(NamedTotals *const *) b;
	int64		dx = x->t.discount_after - x->t.discount_before;
	int64		dy = y->t.discount_after - y->t.discount_before;

	if (dx != dy)
		return dx > dy ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* day_cmp orders days ascending. */
static int
day_cmp(const void *a, const void *b)
{
	DateADT		x = (*(DayTotals *const *) a)->day;
	DateADT		y = (*(DayTotals *const *) b)->day;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* sorted_entries returns the entries of table as a sorted array. */
static void **
sorted_entries(HTAB *table, int *n, int (*cmp) (const void *, const void *))
{
	HASH_SEQ_STATUS seq;
	void	   *e;
	void	  **arr;
	int			i = 0;

	*n = (int) hash_get_num_entries(table);
	arr = palloc(sizeof(void *) * Max(*n, 1));
	hash_seq_init(&seq, table);
	while ((e = hash_seq_search(&seq)) != NULL)
		arr[i++] = e;
	qsort(arr, *n, sizeof(void *), cmp);
	return arr;
}

/* The history's query: purchases of the period, stores, sample. */
/* ---------------------------------------------------------------------
 * The parallel replay
 *
 * loyalty.backtest_check(request, at, store, candidates, disable, run,
 * progress_every, total) is PARALLEL SAFE: it prices one stored check under
 * both configurations and returns its figures as rows (kind, key, sums),
 * which backtest() adds up with GROUP BY kind, key over the period's
 * purchases.  PostgreSQL's parallel query then spreads the purchases over
 * its workers (a Parallel Seq Scan under a Partial Aggregate); each worker
 * builds the candidate configuration once through the very builder the
 * serial path uses (read-only SPI, which a parallel worker may do) and keeps
 * it for the rest of the query.
 * ---------------------------------------------------------------------
 */

/* The candidate configuration of this backend, with what it was built from. */
typedef struct CandidateCache
{
	ConfigCache *cfg;			/* NULL when none */
	ConfigCache *now;			/* the configuration it was built next to */
	uint32		hash;			/* of the arguments below */
	Jsonb	   *candidates;		/* copies, in cfg's context */
	ArrayType  *disable;
	int64		run;			/* the backtest run the counters belong to */
	int64		done;			/* checks this process replayed in that run */
	instr_time	start;
} CandidateCache;

static CandidateCache candidate_cache = {0};

/* candidate_forget clears the candidate cache when its context goes. */
static void
candidate_forget(void *arg)
{
	candidate_cache.cfg = NULL;
	candidate_cache.now = NULL;
}

/*
 * backtest_candidate returns the candidate configuration for candidates and
 * disable (a text[]) next to now_cfg, building it once per backend: the
 * cache is keyed by a hash of the arguments (compared byte for byte on a
 * hit) and lives in a child of now_cfg's context, so that a configuration
 * change, which rebuilds now_cfg, drops it too.
 */
static ConfigCache *
backtest_candidate(ConfigCache *now_cfg, Jsonb *candidates, ArrayType *disable)
{
	uint32		h;
	MemoryContext old;
	MemoryContextCallback *cb;
	ConfigCache *cfg;

	h = hash_bytes((const unsigned char *) candidates, VARSIZE(candidates));
	h = hash_combine(h, hash_bytes((const unsigned char *) disable, VARSIZE(disable)));
	if (candidate_cache.cfg != NULL && candidate_cache.now == now_cfg &&
		candidate_cache.hash == h &&
		VARSIZE(candidate_cache.candidates) == VARSIZE(candidates) &&
		memcmp(candidate_cache.candidates, candidates, VARSIZE(candidates)) == 0 &&
		VARSIZE(candidate_cache.disable) == VARSIZE(disable) &&
		memcmp(candidate_cache.disable, disable, VARSIZE(disable)) == 0)
		return candidate_cache.cfg;

	if (candidate_cache.cfg != NULL)
		MemoryContextDelete(candidate_cache.cfg->cxt);	/* clears the cache */
	cfg = config_cache_build_candidate(candidates, PointerGetDatum(disable));
	MemoryContextSetParent(cfg->cxt, now_cfg->cxt);
	old = MemoryContextSwitchTo(cfg->cxt);
	candidate_cache.candidates = palloc(VARSIZE(candidates));
	memcpy(candidate_cache.candidates, candidates, VARSIZE(candidates));
	candidate_cache.disable = palloc(VARSIZE(disable));
	memcpy(candidate_cache.disable, disable, VARSIZE(disable));
	cb = palloc0(sizeof(MemoryContextCallback));
	cb->func = candidate_forget;
	MemoryContextRegisterResetCallback(cfg->cxt, cb);
	MemoryContextSwitchTo(old);
	candidate_cache.cfg = cfg;
	candidate_cache.now = now_cfg;
	candidate_cache.hash = h;
	candidate_cache.run = 0;
	return cfg;
}

/* emit adds one row of loyalty.backtest_check's result. */
static void
emit(ReturnSetInfo *rsinfo, const char *kind, const char *key, int64 checks,
	 int64 changed, int64 db, int64 da, int64 pb, int64 pa)
{
	Datum		values[8];
	bool		nulls[8] = {0};

	values[0] = CStringGetTextDatum(kind);
	values[1] = CStringGetTextDatum(key);
	values[2] = Int64GetDatum(checks);
	values[3] = Int64GetDatum(changed);
	values[4] = Int64GetDatum(db);
	values[5] = Int64GetDatum(da);
	values[6] = Int64GetDatum(pb);
	values[7] = Int64GetDatum(pa);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(loyalty_backtest_check);

/*
 * loyalty_backtest_check implements loyalty.backtest_check: one stored check
 * priced under the configuration as it is now and under the candidate one,
 * as rows to add up: K (skipped: checks 1), S (by store; '' when none),
 * D (by day: the date's number), P (by promotion code) and R (by SKU, lines
 * whose discount changed).  Every progress_every checks of this process a
 * NOTICE gives its count and rate.
 */
Datum
loyalty_backtest_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Jsonb	   *stored;
	TimestampTz at;
	char	   *store;
	Jsonb	   *candidates;
	ArrayType  *disable;
	int64		run;
	int64		progress_every;
	int64		total;
	ConfigCache *now_cfg;
	ConfigCache *cand_cfg;
	CheckResult *rb;
	CheckResult *ra;
	int64		pb;
	int64		pa;
	bool		changed;
	ListCell   *lc;
	char		daykey[16];

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < 8; i++)
		if (i != 2 && PG_ARGISNULL(i))
			elog(ERROR, "loyalty.backtest_check: argument %d is null", i + 1);
	stored = PG_GETARG_JSONB_P(0);
	at = PG_GETARG_TIMESTAMPTZ(1);
	store = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	candidates = PG_GETARG_JSONB_P(3);
	disable = PG_GETARG_ARRAYTYPE_P(4);
	run = PG_GETARG_INT64(5);
	progress_every = PG_GETARG_INT64(6);
	total = PG_GETARG_INT64(7);

	CHECK_FOR_INTERRUPTS();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	now_cfg = config_cache_get();
	cand_cfg = backtest_candidate(now_cfg, candidates, disable);
	if (candidate_cache.run != run)
	{
		candidate_cache.run = run;
		candidate_cache.done = 0;
		INSTR_TIME_SET_CURRENT(candidate_cache.start);
	}

	if (!replay_check(now_cfg, cand_cfg, stored, at, store, &rb, &ra))
		emit(rsinfo, "K", "", 1, 0, 0, 0, 0, 0);
	else
	{
		pb = result_points(rb);
		pa = result_points(ra);
		changed = rb->discount != ra->discount || pb != pa;
		emit(rsinfo, "S", store ? store : "", 1, changed ? 1 : 0,
			 rb->discount, ra->discount, pb, pa);
		snprintf(daykey, sizeof(daykey), "%d", (int) rb->local_date);
		emit(rsinfo, "D", daykey, 1, changed ? 1 : 0,
			 rb->discount, ra->discount, pb, pa);
		foreach(lc, rb->applied)
		{
			AppliedPromotion *ap = lfirst(lc);

			emit(rsinfo, "P", ap->promo->code, 0, 0, ap->discount, 0, ap->points, 0);
		}
		foreach(lc, ra->applied)
		{
			AppliedPromotion *ap = lfirst(lc);

			emit(rsinfo, "P", ap->promo->code, 0, 0, 0, ap->discount, 0, ap->points);
		}
		if (changed)
			for (int i = 0; i < rb->nlines && i < ra->nlines; i++)
				if (ra->lines[i].discount != rb->lines[i].discount)
					emit(rsinfo, "R", rb->lines[i].sku, 1, 0,
						 rb->lines[i].discount, ra->lines[i].discount, 0, 0);
	}
	SPI_finish();

	candidate_cache.done++;
	if (progress_every > 0 && candidate_cache.done % progress_every == 0)
	{
		instr_time	elapsed;
		double		secs;

		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, candidate_cache.start);
		secs = INSTR_TIME_GET_DOUBLE(elapsed);
		ereport(NOTICE,
				(errmsg("backtest: " INT64_FORMAT " checks replayed by %s %d (of " INT64_FORMAT " in all), %.0f a second",
						candidate_cache.done,
						IsParallelWorker() ? "parallel worker" : "process",
						MyProcPid, total,
						secs > 0 ? candidate_cache.done / secs : 0.0)));
	}
	return (Datum) 0;
}

#define HISTORY_TABLES \
	" FROM loyalty.purchase p JOIN loyalty.operation o USING (operation_id)"
#define HISTORY_FROM HISTORY_TABLES HISTORY_WHERE
#define HISTORY_WHERE \
	" WHERE p.at >= $1 AND p.at < $2" \
	" AND ($3 IS NULL OR p.store = ANY ($3))" \
	" AND ($4 >= 1000000 OR (pg_catalog.hashtext(p.operation_id) & 2147483647)" \
	" < ($4::bigint * 2147483648 / 1000000))"

/*
 * replay_parallel replays the history through loyalty.backtest_check under
 * a GROUP BY (see "The parallel replay") and adds the grouped figures to the
 * same tables the serial replay fills; returns the checks skipped.
 * min_parallel_table_scan_size is 0 for the query alone (each row costs a
 * check's pricing, so even a small purchase table is worth workers); how
 * many workers is PostgreSQL's choice (max_parallel_workers_per_gather).
 */
static int64
replay_parallel(BacktestRequest *req, Datum *hvalues, char *hnulls,
				int64 total, Totals *all, HTAB *by_store, HTAB *by_promo,
				HTAB *by_product, HTAB *by_day, MemoryContext work)
{
	Oid			types[8] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTARRAYOID, INT8OID,
	JSONBOID, TEXTARRAYOID, INT8OID, INT8OID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	int64		skipped = 0;
	int			nest;
	uint64		nrows;

	for (int i = 0; i < 4; i++)
	{
		values[i] = hvalues[i];
		nulls[i] = hnulls[i];
	}
	values[4] = JsonbPGetDatum(req->promotions);
	values[5] = text_array(req->disable, req->ndisable);
	values[6] = Int64GetDatum((int64) GetCurrentTimestamp() ^ (int64) MyProcPid);
	values[7] = Int64GetDatum(req->progress_every);

	nest = NewGUCNestLevel();
	(void) set_config_option("min_parallel_table_scan_size", "0",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	/* tcount 0: a fetch count would keep the executor from using workers */
	if (SPI_execute_with_args(psprintf("SELECT r.kind, r.key, sum(r.checks)::int8,"
									   " sum(r.changed)::int8,"
									   " sum(r.discount_before)::int8, sum(r.discount_after)::int8,"
									   " sum(r.points_before)::int8, sum(r.points_after)::int8"
									   HISTORY_TABLES ", LATERAL loyalty.backtest_check("
									   "o.request, p.at, p.store, $5, $6, $7, $8, "
									   INT64_FORMAT ") r" HISTORY_WHERE
									   " GROUP BY r.kind, r.key", total),
							  8, types, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "the parallel backtest query failed");
	AtEOXact_GUC(true, nest);

	nrows = SPI_processed;
	for (uint64 row = 0; row < nrows; row++)
	{
		char	   *kind = spi_text(row, 1, work);
		char	   *key = spi_text(row, 2, work);
		Totals		t;
		bool		found;

		CHECK_FOR_INTERRUPTS();
		t.checks = spi_int8(row, 3, 0);
		t.changed = spi_int8(row, 4, 0);
		t.discount_before = spi_int8(row, 5, 0);
		t.discount_after = spi_int8(row, 6, 0);
		t.points_before = spi_int8(row, 7, 0);
		t.points_after = spi_int8(row, 8, 0);
		switch (kind[0])
		{
			case 'K':
				skipped += t.checks;
				break;
			case 'S':
				{
					NamedTotals *e = named(by_store, key, work);

					e->t = t;
					all->checks += t.checks;
					all->changed += t.changed;
					all->discount_before += t.discount_before;
					all->discount_after += t.discount_after;
					all->points_before += t.points_before;
					all->points_after += t.points_after;
				}
				break;
			case 'D':
				{
					DateADT		day = (DateADT) strtol(key, NULL, 10);
					DayTotals  *e = hash_search(by_day, &day, HASH_ENTER, &found);

					e->t = t;
				}
				break;
			case 'P':
				{
					NamedTotals *e = named(by_promo, key, work);

					e->t.discount_before += t.discount_before;
					e->t.discount_after += t.discount_after;
					e->t.points_before += t.points_before;
					e->t.points_after += t.points_after;
				}
				break;
			case 'R':
				named(by_product, key, work)->t = t;
				break;
			default:
				elog(ERROR, "unexpected backtest row kind \"%s\"", kind);
		}
	}
	return skipped;
}

/*
 * loyalty_backtest implements loyalty.backtest(request jsonb): see the file
 * header.
 */
Datum
loyalty_backtest(PG_FUNCTION_ARGS)
{
	Jsonb	   *request = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext work;
	MemoryContext check_cxt;
	BacktestRequest *req;
	ConfigCache *now_cfg;
	ConfigCache *cand_cfg;
	Oid			types[4] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTARRAYOID, INT8OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Portal		portal;
	Totals		all = {0};
	int64		skipped = 0;
	int64		total;
	int64		done = 0;
	HTAB	   *by_store;
	HTAB	   *by_promo;
	HTAB	   *by_product;
	HTAB	   *by_day;
	HASHCTL		ctl;
	instr_time	start;
	instr_time	elapsed;
	JsonBuilder b = {0};
	Jsonb	   *result;
	int			n;
	void	  **entries;
	int			precision;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	work = CurrentMemoryContext;
	req = backtest_parse(request);
	now_cfg = config_cache_get();
	/* kept in this backend for the replay (parallel workers build their own) */
	cand_cfg = backtest_candidate(now_cfg, req->promotions,
								  DatumGetArrayTypeP(text_array(req->disable, req->ndisable)));
	precision = now_cfg->points_precision;

	by_store = name_table("loyalty backtest stores");
	by_promo = name_table("loyalty backtest promotions");
	by_product = name_table("loyalty backtest products");
	ctl.keysize = sizeof(DateADT);
	ctl.entrysize = sizeof(DayTotals);
	ctl.hcxt = work;
	by_day = hash_create("loyalty backtest days", 64, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	for (int i = 0; i < req->ncandidates; i++)
		named(by_promo, req->candidates[i], work)->candidate = true;
	for (int i = 0; i < req->ndisable; i++)
		named(by_promo, req->disable[i], work)->disabled = true;

	values[0] = TimestampTzGetDatum(req->from);
	values[1] = TimestampTzGetDatum(req->to);
	if (req->stores != NULL)
		values[2] = text_array(req->stores, req->nstores);
	else
		nulls[2] = 'n';
	values[3] = Int64GetDatum(req->sample);

	/* the number of checks, for the progress notices */
	if (SPI_execute_with_args("SELECT count(*)" HISTORY_FROM, 4, types, values,
							  nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "counting the backtest's history failed");
	total = spi_int8(0, 1, 0);

	if (req->parallel == PARALLEL_ON ||
		(req->parallel == PARALLEL_AUTO && total >= BACKTEST_PARALLEL_MIN &&
		 max_parallel_workers_per_gather > 0))
	{
		INSTR_TIME_SET_CURRENT(start);
		skipped = replay_parallel(req, values, nulls, total, &all, by_store,
								  by_promo, by_product, by_day, work);
		done = all.checks;
		goto replayed;
	}
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT o.request, p.at, p.store" HISTORY_FROM
									   " ORDER BY p.at, p.operation_id",
									   4, types, values, nulls, true, 0);
	check_cxt = AllocSetContextCreate(work, "loyalty backtest check",
									  ALLOCSET_DEFAULT_SIZES);
	INSTR_TIME_SET_CURRENT(start);
	for (;;)
	{
		SPITupleTable *batch;
		uint64		nrows;

		SPI_cursor_fetch(portal, true, BACKTEST_BATCH);
		batch = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
			break;
		for (uint64 row = 0; row < nrows; row++)
		{
			HeapTuple	tup = batch->vals[row];
			bool		isnull;
			Jsonb	   *stored;
			TimestampTz at;
			char	   *store;
			MemoryContext old;
			CheckResult *rb;
			CheckResult *ra;
			int64		pb;
			int64		pa;
			bool		changed;
			NamedTotals *st;
			DayTotals  *day;
			bool		found;

			CHECK_FOR_INTERRUPTS();
			old = MemoryContextSwitchTo(check_cxt);
			stored = DatumGetJsonbP(SPI_getbinval(tup, batch->tupdesc, 1, &isnull));
			at = DatumGetTimestampTz(SPI_getbinval(tup, batch->tupdesc, 2, &isnull));
			store = SPI_getvalue(tup, batch->tupdesc, 3);

			if (!replay_check(now_cfg, cand_cfg, stored, at, store, &rb, &ra))
			{
				skipped++;
				MemoryContextSwitchTo(old);
				MemoryContextReset(check_cxt);
				continue;
			}
			pb = result_points(rb);
			pa = result_points(ra);
			changed = rb->discount != ra->discount || pb != pa;

			totals_add(&all, changed, rb->discount, ra->discount, pb, pa);
			st = named(by_store, store ? store : "", work);
			totals_add(&st->t, changed, rb->discount, ra->discount, pb, pa);
			day = hash_search(by_day, &rb->local_date, HASH_ENTER, &found);
			if (!found)
				memset(&day->t, 0, sizeof(Totals));
			totals_add(&day->t, changed, rb->discount, ra->discount, pb, pa);
			promotions_add(by_promo, rb, false, work);
			promotions_add(by_promo, ra, true, work);
			if (changed)
				for (int i = 0; i < rb->nlines && i < ra->nlines; i++)
				{
					int64		added = ra->lines[i].discount - rb->lines[i].discount;
					NamedTotals *pe;

					if (added == 0)
						continue;
					pe = named(by_product, rb->lines[i].sku, work);
					pe->t.checks++;
					pe->t.discount_before += rb->lines[i].discount;
					pe->t.discount_after += ra->lines[i].discount;
				}

			MemoryContextSwitchTo(old);
			MemoryContextReset(check_cxt);
			done++;
			if (done % req->progress_every == 0)
			{
				double		secs;
				double		rate;

				INSTR_TIME_SET_CURRENT(elapsed);
				INSTR_TIME_SUBTRACT(elapsed, start);
				secs = INSTR_TIME_GET_DOUBLE(elapsed);
				rate = secs > 0 ? done / secs : 0;
				ereport(NOTICE,
						(errmsg("backtest: " INT64_FORMAT " of " INT64_FORMAT " checks replayed, %.0f a second, about %.0f s left",
								done, total, rate,
								rate > 0 ? (total - done) / rate : 0.0)));
			}
		}
		SPI_freetuptable(batch);
	}
	SPI_cursor_close(portal);
replayed:
	/* the candidate kept for the parallel replay is not kept after it */
	if (candidate_cache.cfg != NULL)
		MemoryContextDelete(candidate_cache.cfg->cxt);
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, start);
	ereport(DEBUG1,
			(errmsg("backtest: " INT64_FORMAT " checks replayed in %.3f s",
					done, INSTR_TIME_GET_DOUBLE(elapsed))));

	/* the result */
	jb_begin_object(&b);
	jb_key(&b, "from");
	jb_string(&b, false, pstrdup(timestamptz_to_str(req->from)));
	jb_key(&b, "to");
	jb_string(&b, false, pstrdup(timestamptz_to_str(req->to)));
	jb_key(&b, "checks");
	jb_int(&b, false, all.checks);
	jb_key(&b, "changed");
	jb_int(&b, false, all.changed);
	jb_key(&b, "skipped");
	jb_int(&b, false, skipped);
	jb_key(&b, "discount");
	jb_begin_object(&b);
	jb_key(&b, "before");
	jb_money(&b, false, all.discount_before);
	jb_key(&b, "after");
	jb_money(&b, false, all.discount_after);
	jb_key(&b, "difference");
	jb_money(&b, false, all.discount_after - all.discount_before);
	jb_end_object(&b);
	jb_key(&b, "points");
	jb_begin_object(&b);
	jb_key(&b, "before");
	jb_points(&b, false, all.points_before, precision);
	jb_key(&b, "after");
	jb_points(&b, false, all.points_after, precision);
	jb_key(&b, "difference");
	jb_points(&b, false, all.points_after - all.points_before, precision);
	jb_end_object(&b);

	/* by promotion: candidates, disabled codes, and any other that changed */
	jb_key(&b, "by_promotion");
	jb_begin_array(&b);
	entries = sorted_entries(by_promo, &n, named_cmp);
	for (int i = 0; i < n; i++)
	{
		NamedTotals *e = entries[i];

		if (!e->candidate && !e->disabled &&
			e->t.discount_before == e->t.discount_after &&
			e->t.points_before == e->t.points_after)
			continue;
		jb_begin_object(&b);
		jb_key(&b, "code");
		jb_string(&b, false, e->key);
		jb_key(&b, "candidate");
		jb_bool(&b, false, e->candidate);
		jb_key(&b, "disabled");
		jb_bool(&b, false, e->disabled);
		jb_key(&b, "discount_before");
		jb_money(&b, false, e->t.discount_before);
		jb_key(&b, "discount_after");
		jb_money(&b, false, e->t.discount_after);
		jb_key(&b, "difference");
		jb_money(&b, false, e->t.discount_after - e->t.discount_before);
		jb_key(&b, "points_difference");
		jb_points(&b, false, e->t.points_after - e->t.points_before, precision);
		jb_end_object(&b);
	}
	jb_end_array(&b);

	jb_key(&b, "by_store");
	jb_begin_array(&b);
	entries = sorted_entries(by_store, &n, named_cmp);
	for (int i = 0; i < n; i++)
	{
		NamedTotals *e = entries[i];

		jb_begin_object(&b);
		jb_key(&b, "store");
		if (e->key[0] == '\0')
			jb_null(&b, false);
		else
			jb_string(&b, false, e->key);
		totals_json(&b, &e->t, precision);
		jb_end_object(&b);
	}
	jb_end_array(&b);

	jb_key(&b, "by_day");
	jb_begin_array(&b);
	entries = sorted_entries(by_day, &n, day_cmp);
	for (int i = 0; i < n; i++)
	{
		DayTotals  *e = entries[i];

		jb_begin_object(&b);
		jb_key(&b, "day");
		jb_string(&b, false,
				  DatumGetCString(DirectFunctionCall1(date_out,
													  DateADTGetDatum(e->day))));
		totals_json(&b, &e->t, precision);
		jb_end_object(&b);
	}
	jb_end_array(&b);

	jb_key(&b, "top_products");
	jb_begin_array(&b);
	entries = sorted_entries(by_product, &n, added_cmp);
	for (int i = 0; i < n && i < BACKTEST_TOP; i++)
	{
		NamedTotals *e = entries[i];

		jb_begin_object(&b);
		jb_key(&b, "sku");
		jb_string(&b, false, e->key);
		jb_key(&b, "lines");
		jb_int(&b, false, e->t.checks);
		jb_key(&b, "added_discount");
		jb_money(&b, false, e->t.discount_after - e->t.discount_before);
		jb_end_object(&b);
	}
	jb_end_array(&b);

	jb_key(&b, "note");
	jb_string(&b, false,
			  "Each check was priced at its own moment for its customer as they are now. "
			  "Not re-simulated: usage limits (no use counted), coupons sent with the checks, "
			  "and points spent or balances; both runs leave them out alike.");
	jb_end_object(&b);

	result = jb_finish(&b);
	{
		Jsonb	   *copy = MemoryContextAlloc(outer, VARSIZE(result));

		memcpy(copy, result, VARSIZE(result));
		result = copy;
	}
	SPI_finish();
	PG_RETURN_JSONB_P(result);
}
