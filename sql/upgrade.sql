--
-- Upgrades: the first release updated step by step has exactly the objects
-- of a fresh install of the current version's full script, definitions,
-- comments, privileges and default rows included; an installation in use
-- keeps its data.
--
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS loyalty CASCADE;
RESET client_min_messages;

-- A description of every object of the extension with its definition, one
-- row an aspect: what the two installs must agree on.
CREATE TEMP VIEW schema_description (object, detail) AS
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'loyalty'),
member AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND d.refobjid = ext.oid),
rel AS (SELECT c.* FROM pg_class c JOIN member m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid),
fn AS (SELECT p.* FROM pg_proc p JOIN member m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid),
typ AS (SELECT t.* FROM pg_type t JOIN member m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid)
SELECT 'member ' || pg_describe_object(classid, objid, 0), '' FROM member
UNION ALL
SELECT format('column %s.%s', a.attrelid::regclass, a.attname),
       format('position %s, %s%s%s%s%s, storage %s%s',
              row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
              format_type(a.atttypid, a.atttypmod),
              CASE WHEN a.attcollation <> 0 THEN ' collate ' || a.attcollation::regcollation END,
              CASE WHEN a.attnotnull THEN ' not null' END,
              ' default ' || pg_get_expr(ad.adbin, ad.adrelid),
              nullif(' identity ' || a.attidentity::text || a.attgenerated::text, ' identity '),
              a.attstorage, ' compression ' || nullif(a.attcompression::text, ''))
  FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
UNION ALL
SELECT format('relation %s', oid::regclass),
       format('kind %s, persistence %s, options %s', relkind, relpersistence, reloptions) FROM rel
UNION ALL
SELECT format('constraint %s on %s', con.conname, coalesce(con.conrelid::regclass::text, con.contypid::regtype::text)),
       pg_get_constraintdef(con.oid) || CASE WHEN con.convalidated THEN '' ELSE ' (not validated)' END
  FROM pg_constraint con
 WHERE con.conrelid IN (SELECT oid FROM rel) OR con.contypid IN (SELECT oid FROM typ)
UNION ALL
SELECT format('index %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
  FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT format('trigger %s on %s', t.tgname, t.tgrelid::regclass),
       pg_get_triggerdef(t.oid) || CASE t.tgenabled WHEN 'O' THEN '' ELSE ' enabled ' || t.tgenabled::text END
  FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rel) AND NOT t.tgisinternal
UNION ALL
SELECT format('view %s', oid::regclass), pg_get_viewdef(oid) FROM rel WHERE relkind IN ('v', 'm')
UNION ALL
SELECT format('sequence %s', s.seqrelid::regclass),
       format('%s from %s by %s, %s..%s, cache %s%s, last value %s',
              format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
              s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' END, pg_sequence_last_value(s.seqrelid))
  FROM pg_sequence s WHERE s.seqrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT format('function %s', oid::regprocedure), pg_get_functiondef(oid) FROM fn
UNION ALL
SELECT format('type %s', oid::regtype),
       format('%s %s, length %s, by value %s, align %s, storage %s, in %s, out %s, recv %s, send %s, not null %s, default %s, collation %s',
              typtype, format_type(typbasetype, typtypmod), typlen, typbyval, typalign, typstorage,
              typinput, typoutput, typreceive, typsend, typnotnull, typdefault, typcollation)
  FROM typ
UNION ALL
SELECT format('operator %s', o.oid::regoperator),
       format('%s, commutator %s, negator %s, restrict %s, join %s, merges %s, hashes %s',
              o.oprcode, o.oprcom::regoperator, o.oprnegate::regoperator, o.oprrest, o.oprjoin,
              o.oprcanmerge, o.oprcanhash)
  FROM pg_operator o JOIN member m ON m.classid = 'pg_operator'::regclass AND m.objid = o.oid
UNION ALL
SELECT pg_describe_object('pg_opclass'::regclass, oc.oid, 0),
       (SELECT string_agg(format('%s %s', amopstrategy, amopopr::regoperator), ', ' ORDER BY amopstrategy)
          FROM pg_amop WHERE amopfamily = oc.opcfamily) || ' / ' ||
       (SELECT string_agg(format('%s %s', amprocnum, amproc::regprocedure), ', ' ORDER BY amprocnum)
          FROM pg_amproc WHERE amprocfamily = oc.opcfamily) ||
       CASE WHEN oc.opcdefault THEN ' (default)' ELSE '' END
  FROM pg_opclass oc JOIN member m ON m.classid = 'pg_opclass'::regclass AND m.objid = oc.oid
UNION ALL
SELECT pg_describe_object('pg_cast'::regclass, ca.oid, 0),
       format('context %s, method %s, function %s', ca.castcontext, ca.castmethod, ca.castfunc)
  FROM pg_cast ca JOIN member m ON m.classid = 'pg_cast'::regclass AND m.objid = ca.oid
UNION ALL
SELECT format('comment on %s', pg_describe_object(d.classoid, d.objoid, d.objsubid)), d.description
  FROM pg_description d
 WHERE (d.classoid, d.objoid) IN (SELECT classid, objid FROM member)
UNION ALL
SELECT format('privilege on %s', o.object),
       format('%s: %s%s by %s', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END,
              a.privilege_type, CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END,
              a.grantor::regrole)
  FROM (SELECT format('relation %s', oid::regclass) AS object,
               coalesce(relacl, acldefault(CASE relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", relowner)) AS acl
          FROM rel
        UNION ALL
        SELECT format('function %s', oid::regprocedure), coalesce(proacl, acldefault('f', proowner)) FROM fn
        UNION ALL
        SELECT format('type %s', oid::regtype), coalesce(typacl, acldefault('T', typowner)) FROM typ
        UNION ALL
        SELECT 'schema loyalty', coalesce(nspacl, acldefault('n', nspowner))
          FROM pg_namespace WHERE nspname = 'loyalty') AS o,
       aclexplode(o.acl) AS a
UNION ALL
SELECT format('column privilege on %s.%s', a.attrelid::regclass, a.attname), a.attacl::text
  FROM rel JOIN pg_attribute a ON a.attrelid = rel.oid AND a.attacl IS NOT NULL
UNION ALL
SELECT format('initial privilege on %s', pg_describe_object(p.classoid, p.objoid, p.objsubid)),
       format('%s %s', p.privtype, a.a)
  FROM pg_init_privs p, unnest(p.initprivs) AS a(a)
 WHERE (p.classoid, p.objoid) IN (SELECT classid, objid FROM member)
UNION ALL
SELECT format('dumped %s', c.c::regclass), coalesce(nullif(ext.extcondition[c.i], ''), 'all rows')
  FROM ext, unnest(ext.extconfig) WITH ORDINALITY AS c(c, i)
UNION ALL
SELECT format('rows of %s', oid::regclass),
       (xpath('/row/r/text()',
              query_to_xml(format('SELECT count(*) || '' rows, md5 '' || md5(coalesce(string_agg(t::text, '','' ORDER BY t::text), '''')) AS r FROM %s t',
                                  oid::regclass), false, true, '')))[1]::text
  FROM rel WHERE relkind = 'r';

-- a fresh install runs the full script of the current version
-- (extension/loyalty--0.9.sql) ...
CREATE EXTENSION loyalty;
CREATE TEMP TABLE fresh AS SELECT * FROM schema_description;
CREATE TEMP TABLE fresh_version AS SELECT extversion FROM pg_extension WHERE extname = 'loyalty';
DROP EXTENSION loyalty CASCADE;

-- ... and the first release updated step by step gets to the same place:
-- every object, its definition, comment and privileges, the pg_dump
-- configuration and the default rows.  A difference shows as a row missing
-- after the update (what the full script has) and an extra row (what the
-- update chain made instead).
CREATE EXTENSION loyalty VERSION '0.1';
ALTER EXTENSION loyalty UPDATE;
SELECT extversion = (SELECT extversion FROM fresh_version) AS at_current_version
  FROM pg_extension WHERE extname = 'loyalty';
CREATE TEMP TABLE updated AS SELECT * FROM schema_description;
SELECT 'missing after update' AS problem, object, detail
  FROM (SELECT * FROM fresh EXCEPT ALL SELECT * FROM updated) m
UNION ALL
SELECT 'extra after update', object, detail
  FROM (SELECT * FROM updated EXCEPT ALL SELECT * FROM fresh) e
ORDER BY 2, 1, 3;
-- what was compared (the counts hold as long as nothing differs)
SELECT split_part(object, ' ', 1) AS aspect, count(*) > 0 AS compared
  FROM updated GROUP BY 1 ORDER BY 1;
SELECT count(*) > 50 AS objects_compared FROM updated WHERE object LIKE 'member %';
SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
RESET client_min_messages;

-- the first release, in use
CREATE EXTENSION loyalty VERSION '0.1';
INSERT INTO loyalty.store (code, name) VALUES ('S1', 'Store');
SELECT loyalty.register('+79123456789', '{"name": "Anna"}');

ALTER EXTENSION loyalty UPDATE;
SELECT extversion = (SELECT extversion FROM fresh_version) AS at_current_version
  FROM pg_extension WHERE extname = 'loyalty';

-- the data survived, and the new features work on it
SELECT c.name, k.kind FROM loyalty.customer c JOIN loyalty.card k ON k.customer_id = c.id;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Bonus', 0.9);
SELECT loyalty.adjust('{"operation_id": "U1", "customer": "+79123456789", "account": "main",
                        "points": 10, "reason": "after upgrade"}') -> 'balance' AS balance;
SELECT count(*) AS problems FROM loyalty.verify_ledger();

-- 0.7 moved a line's points from purchase_line_points rows into
-- purchase_line.points; purchase_line_points is now a view of them.  A
-- 0.6 installation with a partly refunded two-account purchase keeps every
-- number, refunds go on from them, and the dump configuration names only
-- tables that exist.
SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
CREATE EXTENSION loyalty VERSION '0.6';
RESET client_min_messages;
INSERT INTO loyalty.store (code, name) VALUES ('S1', 'Store');
INSERT INTO loyalty.purchase (operation_id, store, channel, at, amount, discount, redeemed,
                              total, lines, refunded)
VALUES ('P6', 'S1', 'pos', '2026-10-01 12:00+00', 300, 0, 0, 300, 2, 100);
INSERT INTO loyalty.purchase_line (operation_id, line_index, sku, qty, price, amount, discount,
                                   redeemed, total, refunded_qty, refunded_total)
VALUES ('P6', 0, 'A', 2, 100, 200, 0, 0, 200, 1, 100),
       ('P6', 1, 'B', 1, 100, 100, 0, 0, 100, 0, 0);
INSERT INTO loyalty.purchase_line_points (operation_id, line_index, account, earned, spent,
                                          earned_refunded, spent_refunded)
VALUES ('P6', 0, 'main', 20, 10.5, 10, 5.25),
       ('P6', 0, 'promo', 4, 0, 2, 0),
       ('P6', 1, 'main', 10, 0, 0, 0);
CREATE TEMP TABLE points_before AS SELECT * FROM loyalty.purchase_line_points;
ALTER EXTENSION loyalty UPDATE;
SELECT line_index, points FROM loyalty.purchase_line ORDER BY line_index;
(SELECT * FROM points_before EXCEPT SELECT * FROM loyalty.purchase_line_points)
UNION ALL
(SELECT * FROM loyalty.purchase_line_points EXCEPT SELECT * FROM points_before);
SELECT count(*) AS view_rows FROM loyalty.purchase_line_points;
SELECT c::regclass AS config_table_missing
  FROM pg_extension e, unnest(e.extconfig) AS c
 WHERE e.extname = 'loyalty' AND NOT EXISTS (SELECT FROM pg_class WHERE oid = c);
SELECT has_table_privilege('loyalty_analyst', 'loyalty.purchase_line_points', 'SELECT') AS analyst_reads;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Bonus', 0.9), ('promo', 'Promo', 0.3);
SELECT loyalty.refund('{"operation_id": "R6", "purchase": "P6", "lines": [{"index": 0, "qty": 1}]}')
       -> 'totals' AS refunded;
SELECT line_index, account, earned, spent, earned_refunded, spent_refunded
  FROM loyalty.purchase_line_points ORDER BY line_index, account;

-- 0.8 made the kinds and statuses a purchase writes domains (prepared once
-- per session), put identifiers in the C collation (rebuilding their
-- indexes, the view purchase_line_points created again) and stopped
-- account-type renames from following into lots.  A 0.7 installation with
-- entries, events, an operation and a coupon keeps them, and the rules
-- still hold.
SET client_min_messages = warning;
DROP EXTENSION loyalty CASCADE;
CREATE EXTENSION loyalty VERSION '0.7';
RESET client_min_messages;
INSERT INTO loyalty.account_type (code, name, redeem_share) VALUES ('main', 'Bonus', 0.9);
SELECT loyalty.register('+79123456789', '{"name": "Anna"}');
SELECT loyalty.adjust('{"operation_id": "U7", "customer": "+79123456789", "account": "main",
                        "points": 25, "reason": "before 0.8"}') -> 'balance' AS balance;
INSERT INTO loyalty.coupon (code, kind, percent) VALUES ('SPRING-7', 'promo', 10);
INSERT INTO loyalty.event (customer_id, kind) VALUES (1, 'tier_changed');
ALTER EXTENSION loyalty UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'loyalty';
SELECT (SELECT kind FROM loyalty.ledger_entry) AS entry, (SELECT kind FROM loyalty.operation) AS operation,
       (SELECT kind || '/' || status FROM loyalty.coupon) AS coupon,
       (SELECT string_agg(kind, ',' ORDER BY id) FROM loyalty.event) AS events;
SELECT format_type(atttypid, NULL) AS type, count(*) AS columns
  FROM pg_attribute WHERE attrelid IN ('loyalty.ledger_entry'::regclass, 'loyalty.event'::regclass,
                                       'loyalty.operation'::regclass, 'loyalty.coupon'::regclass)
   AND atttypid IN (SELECT oid FROM pg_type WHERE typtype = 'd' AND typnamespace = 'loyalty'::regnamespace)
 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS columns_in_c FROM pg_attribute
 WHERE attrelid IN ('loyalty.operation'::regclass, 'loyalty.ledger_entry'::regclass, 'loyalty.coupon'::regclass)
   AND attcollation = 'pg_catalog."C"'::regcollation;
SELECT operation_id FROM loyalty.operation WHERE operation_id = 'U7';
SELECT has_table_privilege('loyalty_analyst', 'loyalty.purchase_line_points', 'SELECT') AS analyst_reads_view;
UPDATE loyalty.coupon SET status = 'gone';
UPDATE loyalty.account_type SET code = 'bonus' WHERE code = 'main';
SELECT kind, points FROM loyalty.history('+79123456789');
SELECT count(*) AS problems FROM loyalty.verify_ledger();
