/*-------------------------------------------------------------------------
 *
 * ledger.h
 *	  The points ledger (SPEC section 8): lots per customer account, every
 *	  movement an append-only entry.  These primitives are the only code
 *	  that writes lots and entries; purchase, refund, adjust and expiry call
 *	  them, so each rule lives in one place.
 *
 * Points are int64 hundredths of a point throughout (27 points = 2700).
 * Every function runs SPI with saved plans and must be called inside an SPI
 * connection (SPI_connect done by the caller).  Writers must hold the
 * customer's lock (ledger_lock_customer) first: that is what makes
 * concurrent purchases of one customer serialize.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LOYALTY_LEDGER_H
#define LOYALTY_LEDGER_H

#include "datatype/timestamp.h"

struct EventBatch;				/* events.h */

/* Balance of one account as of a moment. */
typedef struct LedgerBalance
{
	int64		available;		/* available and unexpired, minus debt */
	int64		pending;		/* earned, not yet available */
	bool		in_debt;		/* holds a debt lot (negative remaining) */
} LedgerBalance;

/* One lot an accrual creates (ledger_accrue_lots). */
typedef struct AccrualLot
{
	const char *account;
	int64		points;			/* hundredths, > 0 */
	TimestampTz available_at;
	TimestampTz expires_at;		/* DT_NOEND: never */
} AccrualLot;

/*
 * ledger_lock_customer takes the customer's row lock (FOR NO KEY UPDATE),
 * serializing every writer of that customer's points until commit (the
 * expiry job excepted: it locks the lots it expires, see ledger.c).  Raises
 * LY001 when the customer does not exist.
 */
extern void ledger_lock_customer(int64 customer_id);

/*
 * ledger_lock_survivor is ledger_lock_customer for a customer resolved
 * before the lock: when a merge absorbed them while this waited, it locks
 * the survivor in turn and returns whose points these now are.
 */
extern int64 ledger_lock_survivor(int64 customer_id);

/*
 * LEDGER_BALANCE_ROWS(cust, at) is the balances query over SQL expressions
 * cust (a customer id) and at (a timestamptz): one row per account holding
 * open lots, with its account, available and pending points (hundredths,
 * int8) and whether it holds a debt lot.  ledger_balances runs it alone;
 * the check loader (check_db.c) joins it to the customer's read.
 */
#define LEDGER_BALANCE_ROWS(cust, at) \
	"SELECT l.account," \
	" ((coalesce(sum(l.remaining) FILTER (WHERE l.available_at <= " at \
	" AND (l.expires_at IS NULL OR l.expires_at > " at ")), 0)) * 100)::int8 AS available," \
	" ((coalesce(sum(l.remaining) FILTER (WHERE l.available_at > " at "), 0)) * 100)::int8" \
	" AS pending," \
	" bool_or(l.remaining < 0) AS in_debt" \
	" FROM loyalty.lot l" \
	" WHERE l.customer_id = " cust " AND l.remaining <> 0" \
	" GROUP BY l.account"

/*
 * ledger_balances_result fills balances[i] for accounts[i] from the last
 * SPI result's rows, whose columns col..col + 3 are LEDGER_BALANCE_ROWS'
 * (a NULL account is no row).
 */
extern void ledger_balances_result(uint64 nrows, int col, int naccounts,
								   const char *const *accounts,
								   LedgerBalance *balances);

/*
 * ledger_balances fills balances[i] for accounts[i] (account type codes) as
 * of "at", in one query.  Lots count when available_at <= at < expires_at.
 */
extern void ledger_balances(int64 customer_id, TimestampTz at, int naccounts,
							const char *const *accounts,
							LedgerBalance *balances);

/*
 * ledger_accrue_lots credits, for operation_id, the n lots of accounts that
 * hold no debt (the caller read that under the customer's lock; an account
 * in debt goes through ledger_accrue, which pays the debt first): the lots
 * and their "earn" entries in one statement.  Their points_earned events,
 * one per lot, are added to the batch for the caller to write.
 */
extern void ledger_accrue_lots(int64 customer_id, const AccrualLot *lots, int n,
							   const char *operation_id, TimestampTz at,
							   struct EventBatch *events);


/*
 * ledger_spend takes points from the account's lots available and not
 * expired at as_of (the server's time, never a client's "at"): first-
 * expiring first (no expiry last), then oldest.  Raises LY004 when the
 * account holds fewer.  Entries reference operation_id and are dated at.
 */
extern void ledger_spend(int64 customer_id, const char *account, int64 points,
						 const char *operation_id, TimestampTz at,
						 TimestampTz as_of);

/* ledger_spend with the kind of the entries ("spend", "adjust") */
extern void ledger_spend_kind(int64 customer_id, const char *account,
							  int64 points, const char *operation_id,
							  TimestampTz at, TimestampTz as_of,
							  const char *kind);

/*
 * ledger_accrue credits points earned by operation_id: they first pay off
 * any debt of the account, the rest becomes a lot available from
 * available_at and expiring at expires_at (DT_NOEND for never).
 */
extern void ledger_accrue(int64 customer_id, const char *account, int64 points,
						  const char *operation_id, TimestampTz at,
						  TimestampTz available_at, TimestampTz expires_at);

/* ledger_accrue with the kind of the first entry ("earn", "adjust") */
extern void ledger_accrue_kind(int64 customer_id, const char *account,
							   int64 points, const char *operation_id,
							   TimestampTz at, TimestampTz available_at,
							   TimestampTz expires_at, const char *kind);

/* ledger_accrue_kind with the kind of the event it writes ("points_earned") */
extern void ledger_accrue_event(int64 customer_id, const char *account,
								int64 points, const char *operation_id,
								TimestampTz at, TimestampTz available_at,
								TimestampTz expires_at, const char *kind,
								const char *event_kind);

/*
 * ledger_reverse_accrual takes back points that purchase_operation_id
 * earned (a refund): from that purchase's own lots first, then FEFO from
 * the rest; what is missing becomes debt (a negative balance).
 */
extern void ledger_reverse_accrual(int64 customer_id, const char *account,
								   int64 points,
								   const char *purchase_operation_id,
								   const char *operation_id, TimestampTz at);

/*
 * ledger_return_spent gives back points that purchase_operation_id spent
 * (a refund), to the lots they came from, so they keep their expiry.
 */
extern void ledger_return_spent(int64 customer_id, const char *account,
								int64 points,
								const char *purchase_operation_id,
								const char *operation_id, TimestampTz at);

/*
 * ledger_release_held gives back to their lots every point the order hold
 * hold_operation_id still holds (entries of kind "hold", spent with
 * ledger_spend_kind); returns the points released.
 */
extern int64 ledger_release_held(int64 customer_id,
								 const char *hold_operation_id,
								 const char *operation_id, TimestampTz at);

/* what one expiry batch did */
typedef struct ExpireBatch
{
	int			lots_seen;		/* due lots expired (0: nothing left) */
	int64		points;			/* hundredths of a point expired */
	TimestampTz last_expires_at;	/* keyset for the next batch */
	int64		last_id;
} ExpireBatch;

/*
 * ledger_expire_batch expires up to max_lots due lots (expires_at <= as_of)
 * after the keyset (after_expires_at, after_id) (DT_NOBEGIN, 0 for the
 * start), skipping lots that a check holds locked.
 */
extern void ledger_expire_batch(TimestampTz as_of, int max_lots,
								TimestampTz after_expires_at, int64 after_id,
								ExpireBatch *result);

#endif							/* LOYALTY_LEDGER_H */
