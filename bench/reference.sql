-- bench/reference.sql — what userlife is measured against (never part of
-- the extension):
--   bench_floor:   the same writes as an operation in one SQL statement,
--                  with no checks at all: the physical floor;
--   bench_plpgsql: a straightforward PL/pgSQL implementation with the
--                  same checks and a PL/pgSQL audit trigger.
-- Both use copies of userlife's tables, indexes included.

CREATE SCHEMA bench_floor;
CREATE TABLE bench_floor.users (LIKE userlife.users INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_floor.audit (LIKE userlife.audit INCLUDING ALL);
CREATE TABLE bench_floor.events (LIKE userlife.events INCLUDING ALL);
CREATE TABLE bench_floor.user_search (LIKE userlife.user_search INCLUDING ALL);

-- the floor statements themselves are in bench/scripts/floor_*.sql, run
-- prepared by pgbench like every other operation

-- the floor's tables again, with the one check a registration cannot skip
-- in any design: the foreign key of users.partner (SPEC §2), whose check
-- locks the partner's row FOR KEY SHARE
CREATE SCHEMA bench_floor_fk;
CREATE TABLE bench_floor_fk.users (LIKE bench_floor.users INCLUDING ALL);
ALTER TABLE bench_floor_fk.users ADD FOREIGN KEY (partner) REFERENCES userlife.partners (partner);
CREATE TABLE bench_floor_fk.user_search (LIKE bench_floor.user_search INCLUDING ALL);
CREATE TABLE bench_floor_fk.audit (LIKE bench_floor.audit INCLUDING ALL);
CREATE TABLE bench_floor_fk.events (LIKE bench_floor.events INCLUDING ALL);

------------------------------------------------------------------------
-- The PL/pgSQL reference
------------------------------------------------------------------------
CREATE SCHEMA bench_plpgsql;
CREATE TABLE bench_plpgsql.users (LIKE userlife.users INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
CREATE TABLE bench_plpgsql.audit (LIKE userlife.audit INCLUDING ALL);
CREATE TABLE bench_plpgsql.events (LIKE userlife.events INCLUDING ALL);
CREATE TABLE bench_plpgsql.transitions AS SELECT * FROM userlife.transitions;
ALTER TABLE bench_plpgsql.transitions ADD PRIMARY KEY (from_status, to_status);

CREATE FUNCTION bench_plpgsql.set_status(p text, e text, s userlife.user_status, r text DEFAULT NULL)
RETURNS bench_plpgsql.users LANGUAGE plpgsql AS $$
DECLARE
	u bench_plpgsql.users;
	rule bench_plpgsql.transitions;
	why text := coalesce(nullif(r, ''), nullif(current_setting('userlife.reason', true), ''));
BEGIN
	IF p IS NULL OR e IS NULL OR s IS NULL THEN
		RAISE EXCEPTION 'argument must not be null' USING ERRCODE = '22004';
	END IF;
	IF s = 'deleted' THEN
		RAISE EXCEPTION 'status deleted cannot be set with set_status' USING ERRCODE = '22023';
	END IF;
	SELECT * INTO u FROM bench_plpgsql.users WHERE partner = p AND external_id = e FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'user "%" of partner "%" does not exist', e, p USING ERRCODE = 'P0002';
	END IF;
	IF u.status = s THEN
		RETURN u;
	END IF;
	SELECT * INTO rule FROM bench_plpgsql.transitions WHERE from_status = u.status AND to_status = s;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'status transition from % to % is not allowed', u.status, s USING ERRCODE = 'UL001';
	END IF;
	IF rule.requires_reason AND why IS NULL THEN
		RAISE EXCEPTION 'a reason is required' USING ERRCODE = '22023';
	END IF;
	UPDATE bench_plpgsql.users SET status = s, status_reason = why, suspended_until = NULL
	 WHERE user_id = u.user_id RETURNING * INTO u;
	RETURN u;
END
$$;

-- the audit trigger a team would write: diff the rows as JSON, digest the
-- changed values, chain, write the audit row and the event
CREATE FUNCTION bench_plpgsql.audit_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	o jsonb := to_jsonb(OLD) - '{version,updated_at,status_changed_at,audit_head}'::text[];
	n jsonb := to_jsonb(NEW) - '{version,updated_at,status_changed_at,audit_head}'::text[];
	k text;
	changed text[] := '{}';
	ov jsonb := '{}';
	nv jsonb := '{}';
	material bytea;
	aid bigint;
	act text;
BEGIN
	FOR k IN SELECT jsonb_object_keys(n) LOOP
		IF o->k IS DISTINCT FROM n->k THEN
			changed := changed || k;
			ov := ov || jsonb_build_object(k, o->k);
			nv := nv || jsonb_build_object(k, n->k);
		END IF;
	END LOOP;
	IF cardinality(changed) = 0 THEN
		RETURN NULL;
	END IF;
	act := CASE WHEN OLD.status IS DISTINCT FROM NEW.status THEN 'status' ELSE 'update' END;
	material := coalesce(OLD.audit_head, '') || convert_to(NEW.user_id::text || NEW.partner || act || current_user, 'UTF8');
	FOREACH k IN ARRAY changed LOOP
		material := material || digest(coalesce(ov->>k, ''), 'sha256') || digest(coalesce(nv->>k, ''), 'sha256');
	END LOOP;
	NEW.version := OLD.version + 1;
	NEW.updated_at := now();
	IF OLD.status IS DISTINCT FROM NEW.status THEN
		NEW.status_changed_at := now();
	END IF;
	NEW.audit_head := digest(material, 'sha256');
	INSERT INTO bench_plpgsql.audit (at, partner, user_id, external_id, action, db_role, actor, reason,
	                                 changed_fields, old_values, new_values, txid, prev_hash, row_hash)
	VALUES (now(), NEW.partner, NEW.user_id, NEW.external_id, act, current_user,
	        nullif(current_setting('userlife.actor', true), ''), NEW.status_reason, changed, ov, nv,
	        pg_current_xact_id(), OLD.audit_head, NEW.audit_head)
	RETURNING audit_id INTO aid;
	INSERT INTO bench_plpgsql.events (at, partner, user_id, audit_id, event_type, payload)
	VALUES (now(), NEW.partner, NEW.user_id, aid,
	        CASE act WHEN 'status' THEN 'user.status.updated' ELSE 'user.data.updated' END,
	        jsonb_build_object('partner', NEW.partner, 'external_id', NEW.external_id, 'user_id', NEW.user_id,
	                           'changed_fields', changed, 'status', NEW.status, 'at', now()));
	RETURN NEW;
END
$$;
CREATE TRIGGER audit BEFORE UPDATE ON bench_plpgsql.users
	FOR EACH ROW EXECUTE FUNCTION bench_plpgsql.audit_trigger();
