\set u random(1, :nusers)
\set p :u % 10
\set s random(1, 3)
WITH o AS (
	SELECT user_id, status AS old_status, status_reason AS old_reason, audit_head AS prev
	  FROM bench_floor.users WHERE partner = 'p' || :p AND external_id = 'u' || :u FOR NO KEY UPDATE
), u AS (
	UPDATE bench_floor.users u
	   SET status = ((ARRAY['active', 'inactive', 'suspended'])[:s])::userlife.user_status, status_reason = 'bench',
	       suspended_until = NULL, version = u.version + 1, updated_at = now(), status_changed_at = now(),
	       audit_head = sha256(coalesce(o.prev, '') || convert_to(u.user_id::text || u.partner || 'status' || current_user || 'bench', 'UTF8')
	                           || sha256(convert_to(o.old_status::text, 'UTF8')) || sha256(convert_to((ARRAY['active', 'inactive', 'suspended'])[:s], 'UTF8'))
	                           || sha256(convert_to(coalesce(o.old_reason, ''), 'UTF8')) || sha256(convert_to('bench', 'UTF8')))
	  FROM o WHERE u.user_id = o.user_id AND o.old_status <> ((ARRAY['active', 'inactive', 'suspended'])[:s])::userlife.user_status
	RETURNING u.user_id, u.partner, u.external_id, u.audit_head, o.prev, o.old_status, o.old_reason, u.status
), a AS (
	INSERT INTO bench_floor.audit (at, partner, user_id, external_id, action, db_role, actor, reason,
	                               changed_fields, old_values, new_values, txid, prev_hash, row_hash)
	SELECT now(), u.partner, u.user_id, u.external_id, 'status', current_user, NULL, 'bench',
	       '{status,status_reason}', jsonb_build_object('status', u.old_status, 'status_reason', u.old_reason),
	       jsonb_build_object('status', u.status, 'status_reason', 'bench'), pg_current_xact_id(), u.prev, u.audit_head
	  FROM u RETURNING audit_id, partner, user_id, external_id
)
INSERT INTO bench_floor.events (at, partner, user_id, audit_id, event_type, payload)
SELECT now(), a.partner, a.user_id, a.audit_id, 'user.status.updated',
       jsonb_build_object('partner', a.partner, 'external_id', a.external_id, 'user_id', a.user_id,
                          'changed_fields', '{status,status_reason}'::text[], 'status', (ARRAY['active', 'inactive', 'suspended'])[:s], 'at', now())
  FROM a;
