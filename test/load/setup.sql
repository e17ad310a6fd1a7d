-- test/load/setup.sql — the fixture of the load tests: a partner, its key,
-- and a wrapper that runs one lifecycle call and turns the SQLSTATEs a
-- random mix is expected to meet into a result (anything else is raised).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS userlife CASCADE;
SELECT userlife.create_partner('inv');
SELECT userlife.issue_api_key('inv');
CREATE FUNCTION public.load_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	-- expected in a random mix: duplicates, state, transitions, retention, not yet registered, replays
	IF SQLSTATE IN ('23505', '55000', 'UL001', 'UL005', 'P0002', 'UL003') THEN
		RETURN SQLSTATE;
	END IF;
	RAISE;
END
$$;
