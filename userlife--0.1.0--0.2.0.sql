/* userlife--0.1.0--0.2.0.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION userlife UPDATE TO '0.2.0'" to load this file. \quit

-- Every session using users waits until this update commits.  The copy
-- below must see every user: a registration committed after the copy's
-- snapshot, written while user_search was not yet visible to it, would
-- have no search document.  ACCESS EXCLUSIVE, not SHARE: DROP INDEX and
-- CREATE TRIGGER below take it anyway, and a weaker lock upgraded later
-- deadlocks with a writer that read users before writing (register_user
-- does); taken first, it only waits for the transactions already running.
LOCK TABLE userlife.users IN ACCESS EXCLUSIVE MODE;

-- The trigram search index moves from users to a table of search
-- documents of its own, so that a status change no longer writes it.
CREATE TABLE userlife.user_search (
	user_id  uuid NOT NULL,
	partner  text NOT NULL,
	document text NOT NULL,
	CONSTRAINT user_search_pkey PRIMARY KEY (user_id)
);
COMMENT ON TABLE userlife.user_search IS
	'search document of each user: lower(display_name || E''\x1f'' || email || E''\x1f'' || external_id); kept by trigger, not dumped';
INSERT INTO userlife.user_search (user_id, partner, document)
SELECT u.user_id, u.partner,
       pg_catalog.lower(coalesce(u.display_name, '') OPERATOR(pg_catalog.||) E'\x1f'
                        OPERATOR(pg_catalog.||) coalesce(u.email, '') OPERATOR(pg_catalog.||) E'\x1f'
                        OPERATOR(pg_catalog.||) u.external_id)
  FROM userlife.users u;
CREATE INDEX user_search_document_idx ON userlife.user_search USING gin (document gin_trgm_ops);
DROP INDEX userlife.users_search_idx;
REVOKE ALL ON userlife.user_search FROM PUBLIC;

CREATE FUNCTION userlife.users_search_sync() RETURNS trigger
	LANGUAGE c AS 'MODULE_PATHNAME', 'userlife_users_search_sync';
COMMENT ON FUNCTION userlife.users_search_sync() IS
	'trigger on users: keeps userlife.user_search, the search documents, in replica mode and on TRUNCATE';
REVOKE ALL ON FUNCTION userlife.users_search_sync() FROM PUBLIC;

-- the search documents: the users triggers keep them (audit.c); in
-- replica mode (a restore), where those are off, users_search_replica does;
-- TRUNCATE empties them in every mode
CREATE TRIGGER users_search_replica
	AFTER INSERT OR UPDATE OR DELETE ON userlife.users
	FOR EACH ROW EXECUTE FUNCTION userlife.users_search_sync();
CREATE TRIGGER users_search_truncate
	AFTER TRUNCATE ON userlife.users
	FOR EACH STATEMENT EXECUTE FUNCTION userlife.users_search_sync();
ALTER TABLE userlife.users ENABLE REPLICA TRIGGER users_search_replica;
ALTER TABLE userlife.users ENABLE ALWAYS TRIGGER users_search_truncate;
