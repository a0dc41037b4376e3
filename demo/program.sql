-- demo/program.sql: a small drug-store chain's loyalty program.
--
-- Two regions in two time zones, a category tree, a dozen products, two point
-- accounts, three tiers and a few promotions.  Loaded by scripts/demo.sh; plain
-- SQL a marketer could type.

INSERT INTO loyalty.setting (key, value) VALUES
    ('currency', 'RUB'),
    ('timezone', 'Europe/Moscow'),
    ('points_precision', '0');

INSERT INTO loyalty.store (code, name, region, timezone, channel) VALUES
    ('S017', 'Izhevsk, Pushkinskaya 150',   'udmurtia', 'Europe/Samara',      'pos'),
    ('S042', 'Kazan, Baumana 12',           'tatarstan', 'Europe/Moscow',     'pos'),
    ('S101', 'Yekaterinburg, Lenina 33',    'ural',     'Asia/Yekaterinburg', 'pos'),
    ('WEB',  'Online store',                NULL,       NULL,                 'web'),
    ('APP',  'Mobile app',                  NULL,       NULL,                 'app');

INSERT INTO loyalty.category (code, parent, name) VALUES
    ('all',        NULL,        'Everything'),
    ('cosmetics',  'all',       'Cosmetics'),
    ('face',       'cosmetics', 'Face care'),
    ('masks',      'face',      'Face masks'),
    ('hair',       'cosmetics', 'Hair care'),
    ('household',  'all',       'Household'),
    ('pharmacy',   'all',       'Pharmacy'),
    ('antiviral',  'pharmacy',  'Antivirals'),
    ('lozenges',   'pharmacy',  'Lozenges'),
    ('cardio',     'pharmacy',  'Cardiology');

INSERT INTO loyalty.product (sku, name, category, brand, tags, price, min_price, no_discount, no_points, no_redeem) VALUES
    ('A1',    'Day cream 50 ml',             'face',      'Natura', '{new}',      199.90, NULL,  false, false, false),
    ('A2',    'Night cream 50 ml',           'face',      'Natura', '{}',         249.00, NULL,  false, false, false),
    ('MASK1', 'Sheet mask, aloe',            'masks',     'Natura', '{}',          89.00, NULL,  false, false, false),
    ('SH1',   'Shampoo 400 ml',              'hair',      'Clean',  '{}',         315.50, NULL,  false, false, false),
    ('DET1',  'Laundry gel 1 l',             'household', 'Clean',  '{pack}',     500.00, NULL,  false, false, false),
    ('AV1',   'Antiviral capsules N10',      'antiviral', 'Medica', '{otc}',      612.00, 550.00, false, false, false),
    ('LZ1',   'Throat lozenges N24',         'lozenges',  'Medica', '{otc}',      154.00, NULL,  false, false, false),
    ('CARD1', 'Bisoprolol 5 mg N30',         'cardio',    'Medica', '{rx}',       287.40, NULL,  false, false, false),
    ('CIG1',  'Nicotine patches N7',         'pharmacy',  'Medica', '{}',         940.00, NULL,  true,  true,  true),
    ('BAG',   'Paper bag',                   'household', NULL,     '{}',          10.00, NULL,  true,  true,  true);

INSERT INTO loyalty.account_type (code, name, redeem_share, min_check, lifetime, activation_delay, redeem_order) VALUES
    ('main',  'Bonus points',  0.9, 0,    interval '1 year', interval '24 hours', 100),
    ('promo', 'Promo points',  0.3, 2000, NULL,              interval '0',        10);

INSERT INTO loyalty.tier (code, name, rank, threshold, accrual_percent, discount_percent) VALUES
    ('standard', 'Standart', 1, 0,      5,  0),
    ('gold',     'Gold',     2, 15000, 10,  0),
    ('platinum', 'Platinum', 3, 50000, 15,  0);

INSERT INTO loyalty.promotion (code, name, mechanic, rule, priority, schedule, channels) VALUES
    ('COSM30', '30% off all cosmetics', 'percent_off',
     '{"products": {"categories": ["cosmetics"]}, "percent": 30}', 10, NULL, NULL),
    ('TUE10', 'Tuesday: 10% off household', 'percent_off',
     '{"products": {"categories": ["household"]}, "percent": 10}', 20, '{"weekdays": [2]}', '{pos}'),
    ('MASKGIFT', 'Two face care items: a mask as a gift', 'gift',
     '{"trigger": {"categories": ["face"], "exclude": {"categories": ["masks"]}}, "trigger_qty": 2, "gift": "MASK1", "gift_qty": 1}',
     30, NULL, NULL),
    ('LZ30', '30% off lozenges with an antiviral', 'bundle',
     '{"trigger": {"categories": ["antiviral"]}, "trigger_qty": 1, "target": {"categories": ["lozenges"]}, "percent": 30, "per_trigger": 1}',
     40, NULL, NULL),
    ('DET3', 'Third laundry gel for 1 rub', 'nth_item',
     '{"products": {"skus": ["DET1"]}, "n": 3, "price": 1.00}', 50, NULL, NULL),
    ('CHECK10', 'From 3000: 10% off the check', 'check_discount',
     '{"steps": [{"min_total": 3000, "percent": 10}]}', 90, NULL, NULL),
    ('BOUNCE', 'Skidochek: a coupon for the next purchase', 'coupon_issue',
     '{"steps": [{"min_total": 1000, "percent": 10}, {"min_total": 1500, "percent": 15},
                 {"min_total": 2000, "percent": 20}], "min_total_to_use": 1000, "valid": "end_of_month"}',
     95, NULL, NULL);
