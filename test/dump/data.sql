-- test/dump/data.sql: a program in use, for the pg_dump round trip
-- (loaded after demo/program.sql by scripts/test.sh).
SELECT loyalty.register('+7912000000' || i, jsonb_build_object('name', 'Customer ' || i))
  FROM generate_series(0, 9) AS i;
SELECT loyalty.merge_customers(1, 2);
SELECT loyalty.adjust(jsonb_build_object('operation_id', 'G' || i, 'customer', 1 + i % 10,
                      'account', 'main', 'points', 100 + i, 'reason', 'dump test'))
  FROM generate_series(1, 30) AS i;
SELECT loyalty.adjust(jsonb_build_object('operation_id', 'D' || i, 'customer', 1 + i % 10,
                      'account', 'main', 'points', -50, 'reason', 'dump test'))
  FROM generate_series(1, 10) AS i WHERE i % 10 <> 1;
SELECT loyalty.expire_points(now() + interval '2 years');
SELECT count(*) FROM loyalty.take_events(5);
INSERT INTO loyalty.setting VALUES ('locale', 'en') ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
INSERT INTO loyalty.message_template VALUES ('points_earned', 'en', 'Plus {points} points');
SELECT count(*) FROM loyalty.issue_coupons('COSM30', 20);
SELECT loyalty.issue_certificate(500, NULL, '+79120000003');
INSERT INTO loyalty.subscription_plan VALUES ('CARDIO', 'Cardio', 'SUB1', '{"categories": ["cardio"]}', '90 days');
