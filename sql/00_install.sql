-- Install and uninstall: CREATE EXTENSION pulls in its requirements,
-- DROP EXTENSION leaves no object of schema userlife behind.
\set SHOW_CONTEXT never
CREATE EXTENSION userlife CASCADE;
SELECT extname, extrelocatable FROM pg_extension
 WHERE extname IN ('userlife', 'pgcrypto', 'pg_trgm') ORDER BY 1;
SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname = 'userlife';
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'userlife\_%' ORDER BY 1;

-- tables kept by pg_dump
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) AS t(oid)
  JOIN pg_class c ON c.oid = t.oid
 WHERE e.extname = 'userlife' ORDER BY 1;

-- the default state machine
SELECT from_status, to_status, requires_reason FROM userlife.transitions ORDER BY 1, 2;

-- every table, view, function and type carries a comment
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'userlife'::regnamespace AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'userlife'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL;
-- no function is callable by PUBLIC but the two row-level security helpers
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'userlife'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
-- row-level security on the tables with partner data
SELECT c.relname, c.relrowsecurity FROM pg_class c
 WHERE c.relnamespace = 'userlife'::regnamespace AND c.relkind = 'r' ORDER BY 1;

DROP EXTENSION userlife CASCADE;
SELECT count(*) AS userlife_schemas FROM pg_namespace WHERE nspname = 'userlife';
SELECT count(*) AS userlife_objects FROM pg_class WHERE relname LIKE 'users%' OR relname IN ('audit', 'events', 'partners');
SELECT count(*) AS userlife_types FROM pg_type WHERE typname = 'user_status';
SELECT count(*) AS userlife_roles_left FROM pg_roles WHERE rolname LIKE 'userlife\_%';

-- installing again works, and is what the following tests use
CREATE EXTENSION userlife;
SELECT count(*) AS rules FROM userlife.transitions;
