/*-------------------------------------------------------------------------
 *
 * row_checks.c
 *	  loyalty.row_checks(), the trigger that holds the row checks of the
 *	  tables a purchase writes (issue 21): what were CHECK constraints,
 *	  evaluated the same way, at a fraction of the cost.
 *
 * PostgreSQL prepares a table's CHECK constraints for every execution of
 * every statement that writes the table, saved plan or not (execMain.c,
 * ExecRelCheck: each constraint's stored tree parsed back from text,
 * planned and compiled): on a purchase that was a fifth of its
 * instructions.  This trigger compiles its checks once per backend and
 * keeps them until the table changes (a relcache invalidation), so a
 * statement pays for calling it, not for preparing it.
 *
 * Its arguments are pairs: a check's name, then its SQL expression over the
 * table's columns, exactly as the CHECK constraint read.  A check passes
 * when its expression is true or NULL (as CHECK); one that fails raises
 * what the CHECK constraint raised: 23514, "new row for relation ...
 * violates check constraint ...", the failing row in the detail, the table
 * and constraint named in the error's fields.  The tables fire it BEFORE
 * INSERT and AFTER UPDATE (a BEFORE UPDATE row trigger would lock every
 * updated row once more); both see the row as it is stored.
 *
 *-------------------------------------------------------------------------
 */
#include "loyalty.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_collate.h"
#include "parser/parse_expr.h"
#include "parser/parse_relation.h"
#include "parser/parser.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(loyalty_row_checks);

/* one trigger's checks, compiled for one backend */
typedef struct RowChecks
{
	Oid			tgoid;			/* hash key: the trigger */
	bool		valid;			/* false once the table changed */
	Oid			relid;
	MemoryContext cxt;			/* everything below */
	int			nchecks;
	char	  **names;
	ExprState **states;
	TupleTableSlot *slot;
	ExprContext *econtext;
} RowChecks;

static HTAB *row_checks_cache = NULL;

/*
 * invalidate_checks forgets the checks of a table that changed (all of
 * them when relid is InvalidOid), so that they are compiled again.
 */
static void
invalidate_checks(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	RowChecks  *rc;

	if (row_checks_cache == NULL)
		return;
	hash_seq_init(&status, row_checks_cache);
	while ((rc = hash_seq_search(&status)) != NULL)
		if (relid == InvalidOid || rc->relid == relid)
			rc->valid = false;
}

/*
 * cook_check turns one check's SQL text into a planned boolean expression
 * over rel's columns, as CREATE TABLE cooks a CHECK constraint.
 */
static Expr *
cook_check(Relation rel, const char *name, const char *sql)
{
	List	   *raw = raw_parser(psprintf("SELECT (%s)", sql), RAW_PARSE_DEFAULT);
	SelectStmt *select;
	ResTarget  *target;
	ParseState *pstate;
	ParseNamespaceItem *nsitem;
	Node	   *expr;

	if (list_length(raw) != 1)
		elog(ERROR, "check \"%s\" is not one expression", name);
	select = (SelectStmt *) linitial_node(RawStmt, raw)->stmt;
	if (!IsA(select, SelectStmt) || list_length(select->targetList) != 1 ||
		select->fromClause != NIL)
		elog(ERROR, "check \"%s\" is not one expression", name);
	target = linitial_node(ResTarget, select->targetList);

	pstate = make_parsestate(NULL);
	nsitem = addRangeTableEntryForRelation(pstate, rel, AccessShareLock, NULL,
										   false, true);
	addNSItemToQuery(pstate, nsitem, true, true, true);
	expr = transformExpr(pstate, target->val, EXPR_KIND_CHECK_CONSTRAINT);
	expr = coerce_to_boolean(pstate, expr, "CHECK");
	assign_expr_collations(pstate, expr);
	free_parsestate(pstate);
	return expression_planner((Expr *) expr);
}

/* compile_checks compiles trigger tg's checks on rel into rc. */
static void
compile_checks(RowChecks *rc, Relation rel, Trigger *tg)
{
	MemoryContext old;
	int			nestlevel;

	if (tg->tgnargs % 2 != 0)
		elog(ERROR, "trigger \"%s\" needs pairs of a check's name and expression",
			 tg->tgname);
	rc->cxt = AllocSetContextCreate(CacheMemoryContext, "loyalty row checks",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(rc->cxt);
	rc->relid = RelationGetRelid(rel);
	rc->nchecks = tg->tgnargs / 2;
	rc->names = palloc(sizeof(char *) * Max(rc->nchecks, 1));
	rc->states = palloc(sizeof(ExprState *) * Max(rc->nchecks, 1));
	/* names resolve as in the extension's script, whatever the session's path */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	for (int i = 0; i < rc->nchecks; i++)
	{
		Expr	   *expr = cook_check(rel, tg->tgargs[2 * i], tg->tgargs[2 * i + 1]);

		rc->names[i] = pstrdup(tg->tgargs[2 * i]);
		rc->states[i] = ExecInitCheck(list_make1(expr), NULL);
	}
	AtEOXact_GUC(true, nestlevel);
	rc->slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(RelationGetDescr(rel)),
										&TTSOpsHeapTuple);
	rc->econtext = CreateStandaloneExprContext();
	MemoryContextSwitchTo(old);
	rc->valid = true;
}

/* get_checks returns trigger tg's checks on rel, compiled when needed. */
static RowChecks *
get_checks(Relation rel, Trigger *tg)
{
	RowChecks  *rc;
	bool		found;

	if (row_checks_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RowChecks);
		row_checks_cache = hash_create("loyalty row checks", 16, &ctl,
									   HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(invalidate_checks, (Datum) 0);
	}
	rc = hash_search(row_checks_cache, &tg->tgoid, HASH_ENTER, &found);
	if (found && rc->valid)
		return rc;
	if (found && rc->cxt != NULL)
	{
		FreeExprContext(rc->econtext, false);
		MemoryContextDelete(rc->cxt);
	}
	rc->cxt = NULL;
	rc->valid = false;
	PG_TRY();
	{
		compile_checks(rc, rel, tg);
	}
	PG_CATCH();
	{
		if (rc->cxt != NULL)
			MemoryContextDelete(rc->cxt);
		hash_search(row_checks_cache, &tg->tgoid, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return rc;
}

/*
 * row_description is the failing row as the CHECK constraint's error
 * showed it: "(v1, v2, ...)", null for NULL.
 */
static char *
row_description(TupleTableSlot *slot)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;
	StringInfoData buf;
	bool		first = true;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '(');
	slot_getallattrs(slot);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		char	   *val;

		if (att->attisdropped)
			continue;
		if (slot->tts_isnull[i])
			val = "null";
		else
		{
			Oid			foutoid;
			bool		typisvarlena;

			getTypeOutputInfo(att->atttypid, &foutoid, &typisvarlena);
			val = OidOutputFunctionCall(foutoid, slot->tts_values[i]);
			/* long values clipped, as the executor's own description */
			if (strlen(val) > 64)
				val = pnstrdup(val, pg_mbcliplen(val, strlen(val), 64));
		}
		if (!first)
			appendStringInfoString(&buf, ", ");
		first = false;
		appendStringInfoString(&buf, val);
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * loyalty_row_checks is the trigger (see the file's header): the row
 * inserted or the new version of the row updated must pass every check.
 */
Datum
loyalty_row_checks(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	Relation	rel;
	HeapTuple	tuple;
	RowChecks  *rc;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(td->tg_event))
		elog(ERROR, "loyalty.row_checks must be called as a row trigger");
	rel = td->tg_relation;
	tuple = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	rc = get_checks(rel, td->tg_trigger);

	ExecStoreHeapTuple(tuple, rc->slot, false);
	rc->econtext->ecxt_scantuple = rc->slot;
	for (int i = 0; i < rc->nchecks; i++)
	{
		if (!ExecCheck(rc->states[i], rc->econtext))
		{
			char	   *row = row_description(rc->slot);

			ExecClearTuple(rc->slot);
			ResetExprContext(rc->econtext);
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("new row for relation \"%s\" violates check constraint \"%s\"",
							RelationGetRelationName(rel), rc->names[i]),
					 errdetail("Failing row contains %s.", row),
					 errtableconstraint(rel, rc->names[i])));
		}
	}
	ExecClearTuple(rc->slot);
	ResetExprContext(rc->econtext);
	return PointerGetDatum(TRIGGER_FIRED_BEFORE(td->tg_event) ? tuple : NULL);
}
