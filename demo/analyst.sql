-- demo/analyst.sql: the BI analyst's view of the demo day (issue 16).
--
-- The marketer defines a rule segment and an A/B experiment, maintenance
-- scores RFM and fills the segments; then, as loyalty_analyst (who never
-- sees a raw phone, e-mail or card), the day's KPIs, the RFM segment sizes,
-- the rule segment, the experiment's report and the points liability by
-- expiry month.  Run after demo/checks.sql (scripts/demo.sh does).
\pset footer off

INSERT INTO loyalty.segment (code, name, rule) VALUES
    ('regulars', 'Two checks or more today', '{"purchases": {"min": 2, "within": "1 day"}}');
INSERT INTO loyalty.experiment (code, name, variants, holdout_percent, starts_at, ends_at)
VALUES ('points_vs_discount', 'Points vs discount',
        '[{"code": "points", "weight": 50}, {"code": "discount", "weight": 50}]', 10,
        now() - interval '1 day', now() + interval '1 day');
-- the next maintenance run scores RFM and fills the new segment: no manual step
SELECT loyalty.run_maintenance() ? 'expired_points' AS maintained;

SET ROLE loyalty_analyst;
\echo
\echo '--- the day in figures (loyalty.kpi by day) ---'
SELECT period, checks, identified_share, revenue, member_revenue_share,
       avg_check_member, avg_check_anonymous, customers, repeat_rate,
       points_earned, points_spent, redemption_rate
  FROM loyalty.kpi(now() - interval '2 days', now() + interval '1 minute', 'day');
\echo
\echo '--- RFM segment sizes ---'
SELECT segment, count(*) AS customers FROM loyalty.rfm GROUP BY segment ORDER BY count(*) DESC, segment;
\echo
\echo '--- a rule segment ---'
SELECT g.code, g.rule, count(m.customer_id) AS members
  FROM loyalty.segment g LEFT JOIN loyalty.segment_member m ON m.segment = g.code
 GROUP BY g.code, g.rule ORDER BY g.code;
\echo
\echo '--- the experiment so far ---'
SELECT * FROM loyalty.experiment_report('points_vs_discount');
\echo
\echo '--- points liability by expiry month ---'
SELECT * FROM loyalty.points_liability();
RESET ROLE;
