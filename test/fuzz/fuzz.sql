--
-- test/fuzz/fuzz.sql: the generators of scripts/test.sh's fuzz part.
--
-- Everything here runs inside the server, in PL/pgSQL, from random() after
-- setseed(), so a run is reproducible from its seed.  Each call runs in its
-- own subtransaction (an EXCEPTION block): an error is an outcome to count
-- by SQLSTATE, not a failure; only a crash (the server log) or an internal
-- error (XX000) is.  The part loads demo/program.sql first.
--
CREATE SCHEMA fuzz;
CREATE TABLE fuzz.result (area text, sqlstate text, n bigint, PRIMARY KEY (area, sqlstate));

-- fuzz.pick returns a random element of a.
CREATE FUNCTION fuzz.pick(a text[]) RETURNS text LANGUAGE sql VOLATILE AS
$$ SELECT a[1 + floor(random() * cardinality(a))::int] $$;

-- fuzz.chars returns n random characters: ASCII, syntax, Cyrillic, astral.
CREATE FUNCTION fuzz.chars(n int) RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT coalesce(string_agg(CASE floor(random() * 6)::int
                        WHEN 0 THEN chr(32 + floor(random() * 95)::int)
                        WHEN 1 THEN fuzz.pick('{"{","}","''","#","|",",","=","<"}')
                        WHEN 2 THEN chr(1024 + floor(random() * 256)::int)
                        WHEN 3 THEN chr(8192 + floor(random() * 64)::int)   -- U+2000.. (U+200E, U+2028)
                        WHEN 4 THEN chr(65536 + floor(random() * 200000)::int)
                        ELSE chr(97 + floor(random() * 26)::int) END, ''), '')
      FROM generate_series(1, n)
$$;

-- fuzz.pattern returns a random ICU MessageFormat pattern, nesting up to depth.
CREATE FUNCTION fuzz.pattern(depth int) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s text := '';
    name text := fuzz.pick('{a,b,points,x,0,1,"a b",""}');
BEGIN
    FOR i IN 1 .. 1 + floor(random() * 3)::int LOOP
        s := s || CASE floor(random() * (CASE WHEN depth > 0 THEN 14 ELSE 9 END))::int
            WHEN 0 THEN fuzz.chars(floor(random() * 8)::int)
            WHEN 1 THEN fuzz.pick('{"''","''''","''{","''}","''#","''|","#","{","}","|","''{''","''}}''"}')
            WHEN 2 THEN '{' || name || '}'
            WHEN 3 THEN '{' || name || ', number' || fuzz.pick('{"",", integer",", percent",", currency",", ::currency/RUB",", ::compact-short",", #,##0.00",", ::scale/1e300",", ::precision-increment/0.5",", ''{''",", {}"}') || '}'
            WHEN 4 THEN '{' || name || ', ' || fuzz.pick('{date,time}') || fuzz.pick('{"",", short",", medium",", long",", full",", ::yMMMMd",", ::jmmssSSSS",", ::GGGGGyyyyMMMMEEEEdd",", HH:mm",", ''x''"}') || '}'
            WHEN 5 THEN '{' || name || ', ' || fuzz.pick('{spellout,ordinal,duration,"spellout, %spellout-ordinal","spellout, %bogus",unknown}') || '}'
            WHEN 6 THEN fuzz.pick('{"{","}","{a,","{a, plural","{a, plural,","{a, select, other","{a, choice, 0#","{a, plural, offset:1","}}"}')
            WHEN 7 THEN '{' || name || ', ' || fuzz.pick('{plural,select,selectordinal,choice,PLURAL}') || '}'
            WHEN 8 THEN fuzz.chars(1)
            WHEN 9 THEN '{' || name || ', plural, ' || fuzz.pick('{"","offset:1 ","offset:1e300 "}')
                        || '=0 {' || fuzz.pattern(depth - 1) || '} one {' || fuzz.pattern(depth - 1)
                        || '} other {' || fuzz.pattern(depth - 1) || '}}'
            WHEN 10 THEN '{' || name || ', select, x {' || fuzz.pattern(depth - 1) || '} other {' || fuzz.pattern(depth - 1) || '}}'
            WHEN 11 THEN '{' || name || ', selectordinal, one {' || fuzz.pattern(depth - 1) || '} other {#' || fuzz.pattern(depth - 1) || '}}'
            WHEN 12 THEN '{' || name || ', choice, 0#' || fuzz.pattern(depth - 1) || '|1<' || fuzz.pattern(depth - 1) || '|1e300≤x}'
            ELSE repeat('{a, ' || fuzz.pick('{plural,select,selectordinal}') || ', other {', floor(random() * 40)::int)
                 || fuzz.pattern(0) || repeat('}}', floor(random() * 40)::int)
            END;
    END LOOP;
    RETURN s;
END
$$;

-- fuzz.mutate damages s: deletes, duplicates or inserts a few characters.
CREATE FUNCTION fuzz.mutate(s text) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    p int;
BEGIN
    FOR i IN 1 .. floor(random() * 4)::int LOOP
        p := floor(random() * (length(s) + 1))::int;
        s := CASE floor(random() * 4)::int
            WHEN 0 THEN left(s, p) || substr(s, p + 2)
            WHEN 1 THEN left(s, p) || fuzz.chars(1) || substr(s, p + 1)
            WHEN 2 THEN left(s, p) || substr(s, p + 1, 1 + floor(random() * 20)::int) || substr(s, p + 1)
            ELSE left(s, p) || fuzz.pick('{"''","{","}","#"}') || substr(s, p + 1) END;
    END LOOP;
    IF random() < 0.01 THEN
        s := repeat(s, 1 + floor(random() * 500)::int);    -- long ones
    END IF;
    RETURN s;
END
$$;

-- fuzz.locale returns a random locale: known, with keywords, bogus, long.
CREATE FUNCTION fuzz.locale() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT CASE floor(random() * 6)::int
        WHEN 0 THEN fuzz.pick('{ru,en,en_US,ru_RU,de-DE,ar,ja,he,th,zh_Hant_TW,sr_Latn,pl,uk,en_US_POSIX,root,und,""}')
        WHEN 1 THEN fuzz.pick('{ru,en,ar,ja,th,de_DE,fa}') || '@' || fuzz.pick('{calendar,numbers,currency,collation,hours,nu,bogus,""}')
                    || '=' || fuzz.pick('{japanese,buddhist,islamic-civil,hebrew,arab,thai,bogus,xxxxxxxxxxxxxxxxxxxxxxxx,RUB,h23,""}')
        WHEN 2 THEN fuzz.pick('{en,ru,th,ar}') || '-' || fuzz.pick('{US,RU,TH,001,419,Latn,u-ca-japanese,u-nu-thai,u-nu-bogus,x-private,u-ca}')
        WHEN 3 THEN repeat(fuzz.pick('{x,a,ru_,en-,@,=,_,-}'), floor(random() * 80)::int)
        WHEN 4 THEN fuzz.chars(floor(random() * 20)::int)
        ELSE chr(97 + floor(random() * 26)::int) || chr(97 + floor(random() * 26)::int)
             || fuzz.pick('{"","_RU","_ZZ","-Cyrl","@calendar=gregorian"}') END
$$;

-- fuzz.value returns a random JSON value: numbers small and huge, strings, others.
CREATE FUNCTION fuzz.value() RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    SELECT CASE floor(random() * 9)::int
        WHEN 0 THEN to_jsonb(floor(random() * 30)::int)
        WHEN 1 THEN to_jsonb(round((random() * 1000)::numeric, 2))
        WHEN 2 THEN fuzz.pick('{1e300,-1e300,1e308,1e-300,0,-1,9223372036854775807,99999999999999999999999}')::jsonb
        WHEN 3 THEN to_jsonb(fuzz.chars(floor(random() * 10)::int))
        WHEN 4 THEN 'null'::jsonb
        WHEN 5 THEN fuzz.pick('{"[]","{}","[1,2]","true","{\"a\": [1]}"}')::jsonb
        WHEN 6 THEN to_jsonb(fuzz.pick('{+79120000001,+79120000002,id:1,id:2,S017,WEB,A1,DET1,main,promo,FZ-1,FZ-2}'))
        WHEN 7 THEN to_jsonb(-floor(random() * 100)::int)
        ELSE to_jsonb(repeat('9', floor(random() * 40)::int + 1))
        END
$$;

-- fuzz.count adds n outcomes of sqlstate in area.
CREATE FUNCTION fuzz.count(area text, sqlstate text, n bigint DEFAULT 1) RETURNS void LANGUAGE sql AS $$
    INSERT INTO fuzz.result VALUES (area, sqlstate, n)
    ON CONFLICT ON CONSTRAINT result_pkey DO UPDATE SET n = fuzz.result.n + excluded.n
$$;

-- fuzz.messages makes n patterns and locales: each through format_message,
-- every tenth also as a stored template (the trigger), then rendered by
-- event_message (what take_events does).  Stops early at the deadline.
CREATE FUNCTION fuzz.messages(n int, seed float8, deadline timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p text;
    l text;
    k text;
    args jsonb;
    st text;
    done int := 0;
BEGIN
    PERFORM setseed(seed);
    FOR i IN 1 .. n LOOP
        EXIT WHEN clock_timestamp() > deadline;
        p := fuzz.pattern(floor(random() * 4)::int);
        IF random() < 0.5 THEN p := fuzz.mutate(p); END IF;
        l := fuzz.locale();
        args := jsonb_build_object(fuzz.pick('{a,b,x,points,0,1}'), fuzz.value(), 'a', fuzz.value(), 'x', fuzz.value());
        IF current_setting('fuzz.trace', true) = 'on' THEN     -- to find what crashed
            RAISE WARNING 'fuzz % %: % % %', seed, i, quote_literal(p), quote_literal(l), quote_literal(args);
        END IF;
        BEGIN
            PERFORM loyalty.format_message(p, l, args);
            st := '00000';
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
        END;
        PERFORM fuzz.count('format_message', st);
        IF i % 10 = 0 THEN
            k := fuzz.pick('{points_earned,points_available,points_expiring,points_expired,tier_changed,coupon_issued}');
            BEGIN
                INSERT INTO loyalty.message_template (kind, locale, template)
                VALUES (k, CASE WHEN random() < 0.5 THEN fuzz.pick('{ru,en,de,ar,ja,ru_RU}') ELSE l END,
                        replace(replace(p, '{a', '{points'), '{x', '{' || fuzz.pick('{account,date,tier,code,kind}')))
                ON CONFLICT (kind, locale) DO UPDATE SET template = excluded.template;
                st := '00000';
            EXCEPTION WHEN OTHERS THEN
                st := SQLSTATE;
            END;
            PERFORM fuzz.count('message_template', st);
            BEGIN
                PERFORM loyalty.event_message(k, jsonb_build_object('points', fuzz.value(), 'account', 'main',
                                              'tier_name', fuzz.value(), 'code', fuzz.value(), 'kind', fuzz.value(),
                                              'value', fuzz.value(), 'expires_at', '2030-01-01T00:00:00Z'),
                                              CASE WHEN random() < 0.5 THEN NULL ELSE l END);
                st := '00000';
            EXCEPTION WHEN OTHERS THEN
                st := SQLSTATE;
            END;
            PERFORM fuzz.count('event_message', st);
        END IF;
        done := done + 1;
    END LOOP;
    PERFORM fuzz.count('calls:messages', 'n', done);
END
$$;

-- fuzz.maybe returns v, or now and then a random value or nothing.
CREATE FUNCTION fuzz.maybe(v jsonb) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN random() < 0.85 THEN v WHEN random() < 0.5 THEN NULL ELSE fuzz.value() END
$$;

-- fuzz.request returns a request for the API function f: a valid one with
-- some fields damaged, dropped or added.
CREATE FUNCTION fuzz.request(f text) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    lines jsonb := '[]';
    r jsonb;
BEGIN
    FOR i IN 0 .. floor(random() * 4)::int LOOP
        lines := lines || jsonb_build_array(jsonb_strip_nulls(CASE WHEN f = 'refund'
            THEN jsonb_build_object('index', fuzz.maybe(to_jsonb(floor(random() * 3)::int)), 'qty', fuzz.maybe('1'))
            ELSE jsonb_build_object('sku', fuzz.maybe(to_jsonb(fuzz.pick('{A1,A2,MASK1,SH1,DET1,AV1,LZ1,CARD1,CIG1,BAG,NOPE}'))),
                                    'qty', fuzz.maybe(to_jsonb(1 + floor(random() * 5)::int)),
                                    'price', CASE WHEN random() < 0.1 THEN fuzz.value() END) END));
    END LOOP;
    r := jsonb_strip_nulls(jsonb_build_object(
        'operation_id', fuzz.maybe(to_jsonb('FZ-' || floor(random() * 300)::int)),
        'customer', fuzz.maybe(to_jsonb(fuzz.pick('{+79120000001,+79120000002,+79120000003,id:1,id:2}'))),
        'store', fuzz.maybe(to_jsonb(fuzz.pick('{S017,S042,S101,WEB,APP}'))),
        'lines', fuzz.maybe(lines),
        'purchase', CASE WHEN f = 'refund' THEN fuzz.maybe(to_jsonb('FZ-' || floor(random() * 300)::int)) END,
        'redeem', CASE WHEN random() < 0.2 THEN fuzz.maybe(to_jsonb(floor(random() * 500)::int)) END,
        'account', CASE WHEN f = 'adjust' THEN fuzz.maybe(to_jsonb(fuzz.pick('{main,promo}'))) END,
        'points', CASE WHEN f = 'adjust' THEN fuzz.maybe(to_jsonb(floor(random() * 1000)::int - 100)) END,
        'reason', CASE WHEN f = 'adjust' THEN fuzz.maybe('"fuzz"') END));
    IF random() < 0.1 THEN
        r := r || jsonb_build_object(fuzz.pick('{coupons,at,expect_total,expires_at,channel,x}'), fuzz.value());
    END IF;
    IF random() < 0.02 THEN     -- deep JSON
        r := jsonb_set(r, '{lines}', (repeat('[', 500) || repeat(']', 500))::jsonb);
    END IF;
    RETURN r;
END
$$;

-- fuzz.requests sends n random requests to the API functions, one
-- subtransaction each.  Stops early at the deadline.
CREATE FUNCTION fuzz.requests(n int, seed float8, deadline timestamptz) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    f text;
    st text;
    done int := 0;
BEGIN
    PERFORM setseed(seed);
    FOR i IN 1 .. n LOOP
        EXIT WHEN clock_timestamp() > deadline;
        f := fuzz.pick('{calculate,purchase,purchase,refund,adjust,register,find_customer}');
        r := fuzz.request(f);
        BEGIN
            CASE f
            WHEN 'register' THEN
                PERFORM loyalty.register(CASE WHEN random() < 0.5 THEN '+7912' || lpad(floor(random() * 1e6)::text, 6, '0') ELSE fuzz.chars(12) END, r);
            WHEN 'find_customer' THEN
                PERFORM loyalty.find_customer(coalesce(r ->> 'customer', fuzz.chars(12)));
            ELSE
                EXECUTE format('SELECT loyalty.%I($1)', f) USING r;
            END CASE;
            st := '00000';
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
        END;
        PERFORM fuzz.count(f, st);
        done := done + 1;
    END LOOP;
    PERFORM fuzz.count('calls:requests', 'n', done);
END
$$;
