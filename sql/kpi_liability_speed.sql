--
-- kpi_liability_speed: kpi_parts and points_liability at chain scale
-- (issue 16) were rewritten to do only the work their figures need; the
-- results must not change.  On a history with anonymous and identified
-- checks in several stores and channels (one without a store), partial
-- refunds, spends attributed to later checks, refunds' reversals and
-- returns, pending points, expiries written after the lots expired, debts
-- with a repayment, and a grant after the moments asked, both are compared
-- with their straightforward statements: kpi_parts with the statement it
-- was before (every grouping, several periods), points_liability with the
-- sum of the ledger entries up to the moment (past moments, before any lot,
-- between the lots and the grant, after it).  And points_liability reads the
-- lots once, without probing them per entry after the moment (it used to
-- read them twice: the entries after the moment were semi-joined with every
-- lot counted, a later grant's included).
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
CREATE EXTENSION loyalty;
RESET client_min_messages;
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';

-- the program's time zone is UTC+5: its days and months are not UTC's
INSERT INTO loyalty.setting (key, value) VALUES ('timezone', 'Asia/Yekaterinburg')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
INSERT INTO loyalty.setting (key, value) VALUES ('point_value', '0.5')
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
INSERT INTO loyalty.account_type (code, name, lifetime) VALUES ('main', 'Points', '60 days')
    ON CONFLICT DO NOTHING;
INSERT INTO loyalty.store (code, name) SELECT 'S' || i, 'Store ' || i FROM generate_series(1, 4) i;
ALTER TABLE loyalty.customer DISABLE TRIGGER USER;
INSERT INTO loyalty.customer (id, phone, created_at)
SELECT i, ('+79' || lpad(i::text, 9, '0'))::loyalty.phone, '2025-01-01' FROM generate_series(1, 60) i;
ALTER TABLE loyalty.customer ENABLE TRIGGER USER;

-- 600 checks every 6 hours from 2026-02-01: every third anonymous, the
-- others of 20 customers (two checks in a row of one, back every 10 days),
-- every 17th without a store, three channels, every 11th half refunded
INSERT INTO loyalty.purchase (operation_id, customer_id, store, channel, at, amount, discount,
                              redeemed, total, lines, refunded)
SELECT 'P' || i, CASE WHEN i % 3 = 0 THEN NULL ELSE 1 + (i / 2 * 7) % 20 END,
       CASE WHEN i % 17 = 0 THEN NULL ELSE 'S' || (1 + i % 4) END,
       (ARRAY['pos', 'web', 'app'])[1 + i % 3 / 2 + i % 2],
       timestamptz '2026-02-01' + i * interval '6 hours' + (i % 5) * interval '1 minute',
       100 + (i * 37) % 900, 0, 0, 100 + (i * 37) % 900, 1,
       CASE WHEN i % 11 = 0 THEN round((100 + (i * 37) % 900) / 2.0, 2) ELSE 0 END
  FROM generate_series(1, 600) i;
-- a lot and its earn entry per identified check, pending 3 days for every
-- second one, expiring after 60 days (some with two decimals)
WITH l AS (
    INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at, expires_at, operation_id)
    SELECT customer_id, 'main', round(total / 10, (substr(operation_id, 2)::int % 7 = 0)::int * 2),
           round(total / 10, (substr(operation_id, 2)::int % 7 = 0)::int * 2), at,
           at + (substr(operation_id, 2)::int % 2) * interval '3 days', at + interval '60 days', operation_id
      FROM loyalty.purchase WHERE customer_id IS NOT NULL
    RETURNING id, customer_id, amount, earned_at, operation_id)
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT customer_id, 'main', id, operation_id, 'earn', amount, earned_at FROM l;
-- every 5th check's points: half spent a day later, on the check then (P i+4)
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT x.customer_id, 'main', x.id, 'P' || (substr(x.operation_id, 2)::int + 4), 'spend',
       -floor(x.amount / 2), x.earned_at + interval '1 day'
  FROM loyalty.lot x WHERE substr(x.operation_id, 2)::int % 5 = 0;
-- every 10th: a quarter returned by a refund of that later check, 3 days on
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, ref_operation_id, kind, points, at)
SELECT x.customer_id, 'main', x.id, 'R2-' || x.operation_id, 'P' || (substr(x.operation_id, 2)::int + 4),
       'return', floor(x.amount / 4), x.earned_at + interval '3 days'
  FROM loyalty.lot x WHERE substr(x.operation_id, 2)::int % 10 = 0;
-- every 11th (half refunded): the rest of its points reversed 2 days on
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, ref_operation_id, kind, points, at)
SELECT x.customer_id, 'main', x.id, 'R-' || x.operation_id, x.operation_id, 'reverse',
       -(x.amount - floor(x.amount / 2)), x.earned_at + interval '2 days'
  FROM loyalty.lot x WHERE substr(x.operation_id, 2)::int % 11 = 0;
-- debts of 30 (no expiry) for five customers on 2026-04-10, 10 repaid on 05-20
WITH l AS (
    INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at, expires_at, operation_id)
    SELECT c, 'main', -30, -30, '2026-04-10', '2026-04-10', NULL, 'D' || c FROM generate_series(1, 5) c
    RETURNING id, customer_id, amount, earned_at, operation_id)
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT customer_id, 'main', id, operation_id, 'debt', amount, earned_at FROM l;
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT x.customer_id, 'main', x.id, 'G-' || x.customer_id, 'repay', 10, '2026-05-20'
  FROM loyalty.lot x WHERE x.amount < 0;
-- what is left of a lot that expired before 2026-08-01 expires an hour
-- after its end (maintenance runs later)
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT x.customer_id, 'main', x.id, '~expire-' || x.id, 'expire', -s.left, x.expires_at + interval '1 hour'
  FROM loyalty.lot x
  JOIN (SELECT lot_id, sum(points) AS left FROM loyalty.ledger_entry GROUP BY lot_id) s ON s.lot_id = x.id
 WHERE x.expires_at < '2026-08-01' AND s.left > 0;
-- a grant on 2026-07-10 (after most moments below): 2 x 60 new lots
WITH l AS (
    INSERT INTO loyalty.lot (customer_id, account, amount, remaining, earned_at, available_at, expires_at, operation_id)
    SELECT 1 + i % 60, 'main', 25, 25, '2026-07-10', '2026-07-10', '2026-12-31', 'grant-' || i
      FROM generate_series(1, 120) i
    RETURNING id, customer_id, amount, earned_at, operation_id)
INSERT INTO loyalty.ledger_entry (customer_id, account, lot_id, operation_id, kind, points, at)
SELECT customer_id, 'main', id, operation_id, 'adjust', amount, earned_at FROM l;
-- every lot's remaining is the sum of its entries
UPDATE loyalty.lot x SET remaining = s.left
  FROM (SELECT lot_id, sum(points) AS left FROM loyalty.ledger_entry GROUP BY lot_id) s
 WHERE s.lot_id = x.id AND x.remaining <> s.left;
ANALYZE;
SELECT (SELECT count(*) FROM loyalty.lot) AS lots,
       (SELECT count(*) FROM loyalty.lot WHERE amount < 0) AS debts,
       (SELECT count(*) FROM loyalty.lot WHERE amount <> round(amount)) AS lots_with_cents,
       (SELECT count(*) FROM loyalty.ledger_entry) AS entries,
       (SELECT string_agg(kind || ' ' || n, ', ' ORDER BY kind)
          FROM (SELECT kind::text, count(*) AS n FROM loyalty.ledger_entry GROUP BY 1) k) AS kinds;
SELECT count(*) FILTER (WHERE problem LIKE 'remaining%') AS remaining_problems
  FROM loyalty.verify_ledger();

-- ---------------------------------------------------------------------------
-- kpi_parts against the statement it was before this rewrite
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.kpi_parts_reference("from" timestamptz, "to" timestamptz, by text DEFAULT 'day')
    RETURNS SETOF loyalty.kpi_part
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $$
#variable_conflict use_column
DECLARE
    tz   text := loyalty.setting_value('timezone');
    unit text;
BEGIN
    IF by NOT IN ('day', 'week', 'month', 'store', 'channel') THEN
        RAISE EXCEPTION 'invalid kpi grouping "%"', by
            USING ERRCODE = '22023', DETAIL = 'Argument "by" must be day, week, month, store or channel.';
    END IF;
    IF "from" >= "to" THEN
        RAISE EXCEPTION 'empty kpi period'
            USING ERRCODE = '22023', DETAIL = 'Argument "from" must be earlier than "to".';
    END IF;
    unit := CASE WHEN by IN ('day', 'week', 'month') THEN by END;
    RETURN QUERY
    WITH p AS (
        -- the purchases of the period and of the period before it (retention),
        -- only the columns read below (the CTE is materialized)
        SELECT x.customer_id, x.total - x.refunded AS paid,
               CASE WHEN unit IS NOT NULL
                    THEN to_char(date_trunc(unit, x.at AT TIME ZONE tz), 'YYYY-MM-DD')
                    WHEN by = 'store' THEN coalesce(x.store, '-') ELSE x.channel END AS grp,
               CASE WHEN unit IS NOT NULL
                    THEN to_char(date_trunc(unit, (x.at AT TIME ZONE tz) + ('1 ' || unit)::interval), 'YYYY-MM-DD')
                    WHEN by = 'store' THEN coalesce(x.store, '-') ELSE x.channel END AS next_grp,
               x.at >= "from" AS current
          FROM loyalty.purchase x
         WHERE x.at < "to"
           AND x.at >= CASE WHEN unit IS NULL THEN "from" - ("to" - "from")
                            ELSE (date_trunc(unit, "from" AT TIME ZONE tz) - ('1 ' || unit)::interval) AT TIME ZONE tz END
    ), cur AS (SELECT * FROM p WHERE p.current),
    money AS (
        SELECT c.grp, count(*) AS checks, count(c.customer_id) AS identified,
               sum(c.paid) AS revenue,
               coalesce(sum(c.paid) FILTER (WHERE c.customer_id IS NOT NULL), 0) AS member_revenue,
               coalesce(sum(c.paid) FILTER (WHERE c.customer_id IS NULL), 0) AS anonymous_revenue,
               count(DISTINCT c.customer_id) AS customers
          FROM cur c GROUP BY c.grp
    ), repeat AS (
        SELECT b.grp, count(*) FILTER (WHERE b.n >= 2) AS repeaters
          FROM (SELECT c.grp, c.customer_id, count(*) AS n FROM cur c
                 WHERE c.customer_id IS NOT NULL GROUP BY c.grp, c.customer_id) b
         GROUP BY b.grp
    ), retained AS (
        -- customers of the previous period (next_grp of theirs = this group)
        -- and how many of them bought again in this one
        SELECT q.grp, count(*) AS before, count(k.customer_id) AS again
          FROM (SELECT DISTINCT q.next_grp AS grp, q.customer_id
                  FROM p q
                 WHERE q.customer_id IS NOT NULL
                   AND CASE WHEN unit IS NOT NULL
                            -- every period of [from, to), bought in here or not:
                            -- another node may have this period's buyers
                            THEN q.next_grp BETWEEN to_char(date_trunc(unit, "from" AT TIME ZONE tz), 'YYYY-MM-DD')
                                                AND to_char(date_trunc(unit, ("to" AT TIME ZONE tz) - interval '1 microsecond'), 'YYYY-MM-DD')
                            ELSE NOT q.current END) q
          LEFT JOIN (SELECT DISTINCT c.grp, c.customer_id FROM cur c
                      WHERE c.customer_id IS NOT NULL) k
            ON k.grp = q.grp AND k.customer_id = q.customer_id
         GROUP BY q.grp
    ), points AS (
        -- the entries of the period (ledger_entry_at_idx); the purchase of
        -- each is looked up by its key only when grouping by store or channel
        SELECT CASE WHEN unit IS NOT NULL
                    THEN to_char(date_trunc(unit, e.at AT TIME ZONE tz), 'YYYY-MM-DD')
                    WHEN by = 'store'
                    THEN coalesce((SELECT pu.store FROM loyalty.purchase pu
                                    WHERE pu.operation_id = coalesce(e.ref_operation_id, e.operation_id)), '-')
                    ELSE coalesce((SELECT pu.channel FROM loyalty.purchase pu
                                    WHERE pu.operation_id = coalesce(e.ref_operation_id, e.operation_id)), '-') END AS grp,
               coalesce(sum(e.points) FILTER (WHERE e.kind = 'earn'), 0) AS earned,
               -coalesce(sum(e.points) FILTER (WHERE e.kind IN ('spend', 'return')), 0) AS spent,
               -coalesce(sum(e.points) FILTER (WHERE e.kind = 'expire'), 0) AS expired,
               -coalesce(sum(e.points) FILTER (WHERE e.kind = 'reverse'), 0) AS reversed
          FROM loyalty.ledger_entry e
         WHERE e.at >= "from" AND e.at < "to"
         GROUP BY 1
    )
    SELECT g.grp, coalesce(m.checks, 0), coalesce(m.identified, 0),
           coalesce(m.revenue, 0), coalesce(m.member_revenue, 0), coalesce(m.anonymous_revenue, 0),
           coalesce(m.customers, 0), coalesce(r.repeaters, 0),
           coalesce(t.before, 0), coalesce(t.again, 0),
           coalesce(pt.earned, 0), coalesce(pt.spent, 0), coalesce(pt.expired, 0), coalesce(pt.reversed, 0),
           m.grp IS NOT NULL OR pt.grp IS NOT NULL
      FROM (SELECT grp FROM money UNION SELECT grp FROM points UNION SELECT grp FROM retained) g
      LEFT JOIN money m ON m.grp = g.grp
      LEFT JOIN repeat r ON r.grp = g.grp
      LEFT JOIN retained t ON t.grp = g.grp
      LEFT JOIN points pt ON pt.grp = g.grp
     ORDER BY g.grp;
END
$$;
-- each period and grouping: the rows, how many differ (0) and how many
-- groups have retention counts, repeaters, spends, returns and reversals
SELECT f, t, g,
       (SELECT count(*) FROM loyalty.kpi_parts(f, t, g)) AS rows,
       (SELECT count(*) FROM ((SELECT x::text FROM loyalty.kpi_parts(f, t, g) x
                               EXCEPT ALL SELECT x::text FROM pg_temp.kpi_parts_reference(f, t, g) x)
                              UNION ALL
                              (SELECT x::text FROM pg_temp.kpi_parts_reference(f, t, g) x
                               EXCEPT ALL SELECT x::text FROM loyalty.kpi_parts(f, t, g) x)) d) AS differences,
       (SELECT count(*) FROM loyalty.kpi_parts(f, t, g) x WHERE x.retained_again > 0) AS retained,
       (SELECT count(*) FROM loyalty.kpi_parts(f, t, g) x WHERE x.repeaters > 0) AS repeating,
       (SELECT count(*) FROM loyalty.kpi_parts(f, t, g) x WHERE x.points_spent <> 0) AS spending,
       (SELECT count(*) FROM loyalty.kpi_parts(f, t, g) x WHERE x.points_reversed <> 0) AS reversing,
       (SELECT count(*) FROM loyalty.kpi_parts(f, t, g) x WHERE NOT x.listed) AS unlisted
  FROM (VALUES (timestamptz '2026-03-01', timestamptz '2026-04-01'),
               ('2026-02-15', '2026-06-20'),
               ('2026-05-10 13:00', '2026-05-12'),
               ('2026-07-01', '2026-09-01')) p(f, t)
 CROSS JOIN unnest(ARRAY['day', 'week', 'month', 'store', 'channel']) g
 ORDER BY 1, 2, 3;
-- kpi is the merge of these parts: a month by store, as the bench asks it
SELECT period, checks, identified_checks, revenue, customers, repeat_rate, retention,
       points_earned, points_spent, points_reversed
  FROM loyalty.kpi('2026-03-01', '2026-04-01', 'store');

-- ---------------------------------------------------------------------------
-- points_liability against its definition: per lot, the entries up to the
-- moment
-- ---------------------------------------------------------------------------
CREATE FUNCTION pg_temp.liability_by_definition(as_of timestamptz)
    RETURNS TABLE (account text, expiry_month text, available numeric, pending numeric,
                   negative numeric, points numeric, money numeric) LANGUAGE sql AS $$
    WITH e AS (
        SELECT y.lot_id, sum(y.points) AS remaining
          FROM loyalty.ledger_entry y WHERE y.at <= as_of GROUP BY y.lot_id
    ), l AS (
        SELECT x.account, x.available_at, x.expires_at, e.remaining
          FROM loyalty.lot x JOIN e ON e.lot_id = x.id
         WHERE x.earned_at <= as_of AND (x.expires_at IS NULL OR x.expires_at > as_of OR x.amount < 0)
    )
    SELECT l.account,
           to_char(l.expires_at AT TIME ZONE loyalty.setting_value('timezone'), 'YYYY-MM'),
           sum(l.remaining) FILTER (WHERE l.remaining > 0 AND l.available_at <= as_of),
           sum(l.remaining) FILTER (WHERE l.remaining > 0 AND l.available_at > as_of),
           sum(l.remaining) FILTER (WHERE l.remaining < 0),
           sum(l.remaining),
           round(sum(l.remaining) * loyalty.setting_value('point_value')::numeric, 2)
      FROM l
     WHERE l.remaining <> 0
     GROUP BY 1, 2
     ORDER BY 1, 2 NULLS LAST
$$;
-- each moment: the rows of both and how many differ (0); rows are compared
-- as text, so that 12.50 and 12.5 would differ too
SELECT m AS moment,
       (SELECT count(*) FROM loyalty.points_liability(m)) AS rows,
       (SELECT count(*) FROM ((SELECT x::text FROM loyalty.points_liability(m) x
                               EXCEPT ALL SELECT x::text FROM pg_temp.liability_by_definition(m) x)
                              UNION ALL
                              (SELECT x::text FROM pg_temp.liability_by_definition(m) x
                               EXCEPT ALL SELECT x::text FROM loyalty.points_liability(m) x)) d) AS differences,
       (SELECT sum(l.pending) FROM loyalty.points_liability(m) l) AS pending,
       (SELECT sum(l.negative) FROM loyalty.points_liability(m) l) AS negative
  FROM unnest(ARRAY['2026-01-01', '2026-02-20', '2026-03-15', '2026-04-10 12:00', '2026-05-20',
                    '2026-05-31 23:59:59', '2026-06-01', '2026-07-09 23:00', '2026-07-10',
                    '2026-07-11', '2026-08-01', '2027-02-01']::timestamptz[]) m
 ORDER BY m;
-- one moment in full: 2026-06-01, before the grant
SELECT * FROM loyalty.points_liability('2026-06-01');

-- ---------------------------------------------------------------------------
-- points_liability reads the lots once (a sequential scan) and finds the
-- last lot earned by the moment through one index scan; it does not probe
-- a lot per entry after the moment (the grant's 120)
-- ---------------------------------------------------------------------------
BEGIN;
SELECT seq_scan AS seq0, idx_scan AS idx0 FROM pg_stat_xact_user_tables
 WHERE schemaname = 'loyalty' AND relname = 'lot' \gset
SELECT count(*) AS rows FROM loyalty.points_liability('2026-06-01');
SELECT seq_scan - :seq0 AS lot_seq_scans, idx_scan - :idx0 AS lot_index_scans
  FROM pg_stat_xact_user_tables
 WHERE schemaname = 'loyalty' AND relname = 'lot';
ROLLBACK;

-- ---------------------------------------------------------------------------
-- kpi by store or channel plans its statement without parallel workers (a
-- partial aggregation of (store, customer) pairs reduces nothing) and gives
-- the caller's setting back: 3 before, 3 after, in the same transaction
-- ---------------------------------------------------------------------------
BEGIN;
SET LOCAL max_parallel_workers_per_gather = 3;
SELECT count(*) > 0 AS has_rows FROM loyalty.kpi('2026-03-01', '2026-04-01', 'store');
SELECT current_setting('max_parallel_workers_per_gather') AS workers_after;
ROLLBACK;
