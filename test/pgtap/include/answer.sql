-- test/pgtap/include/answer.sql — included (\ir) by the pgTAP files that
-- compare what calls answer: pg_temp.answer(sql) runs sql and returns
-- "no error" or "SQLSTATE: message (its numbers as N) HINT: hint", so that
-- an unused id and another partner's can be compared as text.  Any role may
-- call it.
CREATE FUNCTION pg_temp.answer(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	st text;
	msg text;
	hint text;
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
	RETURN st || ': ' || regexp_replace(msg, '[0-9]+', 'N', 'g') || coalesce(' HINT: ' || nullif(hint, ''), '');
END $$;
GRANT EXECUTE ON FUNCTION pg_temp.answer(text) TO PUBLIC;
