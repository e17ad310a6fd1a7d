-- No crash on any input: every function of schema userlife is called with
-- NULL in each required argument (22004 expected), and with empty, 10 MB,
-- junk and extreme values in every argument; each call must end in a
-- clean SQLSTATE of SPEC §6 (or a type's own input error) and the
-- connection must survive.
BEGIN;
SELECT plan(12);

SELECT lives_ok($$SELECT userlife.create_partner('junk')$$, 'partner for the junk calls');
SELECT lives_ok($$SELECT userlife.register_user('junk', 'u', 'U', 'u@example.com')$$, 'a user for the junk calls');

-- a valid value of each argument type
CREATE FUNCTION pg_temp.sample(t regtype) RETURNS text LANGUAGE sql AS $$
	SELECT CASE t
		WHEN 'text'::regtype THEN quote_literal('junk')
		WHEN 'text[]'::regtype THEN quote_literal('{u}') || '::text[]'
		WHEN 'jsonb'::regtype THEN quote_literal('{}') || '::jsonb'
		WHEN 'uuid'::regtype THEN 'gen_random_uuid()'
		WHEN 'timestamptz'::regtype THEN 'now() + interval ''1 day'''
		WHEN 'interval'::regtype THEN quote_literal('1 day') || '::interval'
		WHEN 'integer'::regtype THEN '1'
		WHEN 'bigint'::regtype THEN '1::bigint'
		WHEN 'bigint[]'::regtype THEN quote_literal('{1}') || '::bigint[]'
		WHEN 'integer[]'::regtype THEN quote_literal('{1}') || '::integer[]'
		WHEN 'boolean'::regtype THEN 'true'
		WHEN 'regrole'::regtype THEN quote_literal(current_user) || '::regrole'
		WHEN 'userlife.user_status'::regtype THEN quote_literal('active') || '::userlife.user_status'
	END
$$;

-- bad values of each argument type
CREATE FUNCTION pg_temp.junk_values(t regtype) RETURNS SETOF text LANGUAGE sql AS $$
	SELECT v FROM (VALUES
		('text'::regtype, quote_literal('')),
		('text', 'repeat(''x'', 10 * 1024 * 1024)'),
		('text', 'repeat(''@.'', 5 * 1024 * 1024)'),
		('text', quote_literal(E'\x01\x02 '' " \\ % _ \u00fc \U0001F600 ;--')),
		('text', quote_literal('u')),
		('text[]', '''{}''::text[]'),
		('text[]', 'ARRAY[NULL::text]'),
		('text[]', '''{{a,b},{c,d}}''::text[]'),
		('text[]', 'array_fill(''x''::text, ARRAY[100000])'),
		('jsonb', '''[]''::jsonb'),
		('jsonb', '''"s"''::jsonb'),
		('jsonb', '''null''::jsonb'),
		('jsonb', '(repeat(''{"a":'', 2000) || ''1'' || repeat(''}'', 2000))::jsonb'),
		('jsonb', 'jsonb_build_object(''k'', repeat(''x'', 10 * 1024 * 1024))'),
		('uuid', '''00000000-0000-0000-0000-000000000000''::uuid'),
		('timestamptz', '''infinity''::timestamptz'),
		('timestamptz', '''-infinity''::timestamptz'),
		('timestamptz', '''4713-01-01 00:00:00+00 BC''::timestamptz'),
		('timestamptz', '''294276-12-31 23:59:59+00''::timestamptz'),
		('interval', '''-1 day''::interval'),
		('interval', '''0''::interval'),
		('interval', '''178000000 years''::interval'),
		('integer', '0'), ('integer', '-1'), ('integer', '2147483647'), ('integer', '-2147483648'),
		('bigint', '(-9223372036854775807 - 1)::bigint'), ('bigint', '9223372036854775807::bigint'),
		('bigint[]', '''{}''::bigint[]'), ('bigint[]', 'ARRAY[NULL::bigint]'),
		('bigint[]', '''{{1,2},{3,4}}''::bigint[]'), ('bigint[]', 'array_fill(1::bigint, ARRAY[100000])'),
		('integer[]', '''{}''::integer[]'), ('integer[]', 'ARRAY[NULL::integer]'),
		('integer[]', '''{-1}''::integer[]'), ('integer[]', 'array_fill(0, ARRAY[100000])'),
		('boolean', 'false'),
		('regrole', '0::oid::regrole'),
		('userlife.user_status', '''deleted''::userlife.user_status'),
		('userlife.user_status', '''blocked''::userlife.user_status')
	) AS j(typ, v)
	WHERE j.typ::regtype = t
$$;

CREATE TEMP TABLE junk_calls (fn text, call text, sqlstate text, is_null_check boolean);

CREATE FUNCTION pg_temp.try_call(fn text, args text[], is_null_check boolean) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	call text := format('SELECT userlife.%s(%s)', fn, array_to_string(args, ', '));
	state text := 'ok';
BEGIN
	BEGIN
		EXECUTE call;
	EXCEPTION WHEN OTHERS THEN
		state := SQLSTATE;
	END;
	INSERT INTO junk_calls VALUES (fn, left(call, 200), state, is_null_check);
END
$$;

-- run every call
SELECT count(*) > 0 AS called FROM (
	SELECT pg_temp.try_call(p.proname,
	         (SELECT array_agg(CASE WHEN k = i THEN 'NULL::' || format_type(a, NULL)
	                                ELSE pg_temp.sample(a) END ORDER BY k)
	            FROM unnest(p.proargtypes::regtype[]) WITH ORDINALITY AS x(a, k)),
	         true)
	  FROM pg_proc p, generate_series(1, p.pronargs - p.pronargdefaults) i
	 WHERE p.pronamespace = 'userlife'::regnamespace AND p.prorettype <> 'trigger'::regtype
	UNION ALL
	SELECT pg_temp.try_call(p.proname,
	         (SELECT array_agg(CASE WHEN k = i THEN j ELSE pg_temp.sample(a) END ORDER BY k)
	            FROM unnest(p.proargtypes::regtype[]) WITH ORDINALITY AS x(a, k)),
	         false)
	  FROM pg_proc p, generate_series(1, p.pronargs) i,
	       pg_temp.junk_values((p.proargtypes::regtype[])[i - 1]) j
	 WHERE p.pronamespace = 'userlife'::regnamespace AND p.prorettype <> 'trigger'::regtype
) calls \gset

SELECT ok((SELECT count(*) FROM junk_calls) > 300, 'hundreds of calls were made');
SELECT is_empty($$SELECT fn, call, sqlstate FROM junk_calls WHERE is_null_check AND sqlstate <> '22004'$$,
                'NULL in any required argument is 22004');
SELECT is_empty($$SELECT fn, call, sqlstate FROM junk_calls
                   WHERE NOT is_null_check
                     AND sqlstate NOT IN ('ok', '22004', '22023', '23505', '42501', '55000', 'P0002',
                                          'UL001', 'UL002', 'UL003', 'UL004', 'UL005',
                                          '22008', '2202E', '54000')$$,
                'junk arguments end in a clean SQLSTATE');
-- direct statements with NULLs where the triggers look first (found by sqlsmith)
SELECT throws_ok($$INSERT INTO userlife.users VALUES (NULL, NULL, DEFAULT)$$, '23502', NULL,
                 'direct INSERT with a NULL user_id: 23502');
SELECT throws_ok($$INSERT INTO userlife.users (partner) VALUES (NULL)$$, '23502', NULL,
                 'direct INSERT with a NULL partner: 23502');
SELECT throws_ok($$INSERT INTO userlife.users (partner, status) VALUES ('junk', NULL)$$, '23502', NULL,
                 'direct INSERT with a NULL status: 23502');
SELECT lives_ok($$SELECT userlife.register_user('junk', 'null-target')$$, 'a user to update');
SELECT throws_ok($$UPDATE userlife.users SET status = NULL WHERE external_id = 'null-target'$$, '23502', NULL,
                 'direct UPDATE to a NULL status: 23502');
SELECT throws_ok($$UPDATE userlife.users SET enrollment_count = NULL, is_fraudulent = NULL, legal_hold = NULL
                    WHERE external_id = 'null-target'$$,
                 '23502', NULL, 'direct UPDATE of bookkeeping to NULL: 23502');
SELECT is((SELECT 1), 1, 'the connection survived');

SELECT * FROM finish();
ROLLBACK;
