\set r random(1, 1000000000000000000)
\set p :r % 10
WITH u AS (
	INSERT INTO bench_floor.users (partner, external_id, display_name, email)
	VALUES ('p' || :p, 'r' || :client_id || '-' || :r, 'Name ' || :r, 'r' || :client_id || '-' || :r || '@example.com')
	RETURNING user_id, partner, external_id, display_name, email, status
), s AS (
	INSERT INTO bench_floor.user_search (user_id, partner, document)
	SELECT u.user_id, u.partner, lower(coalesce(u.display_name, '') || E'\x1f' || coalesce(u.email, '') || E'\x1f' || u.external_id)
	  FROM u
), a AS (
	INSERT INTO bench_floor.audit (at, partner, user_id, external_id, action, db_role, changed_fields,
	                               old_values, new_values, txid, row_hash)
	SELECT now(), u.partner, u.user_id, u.external_id, 'register', current_user,
	       '{external_id,display_name,email,status,is_fraudulent,allow_new_enroll,enrollment_count,legal_hold,metadata,tags}',
	       '{}', jsonb_build_object('external_id', u.external_id, 'display_name', u.display_name, 'email', u.email,
	                                'status', u.status, 'is_fraudulent', false, 'allow_new_enroll', false,
	                                'enrollment_count', 1, 'legal_hold', false, 'metadata', '{}'::jsonb, 'tags', '[]'::jsonb),
	       pg_current_xact_id(),
	       sha256(convert_to(u.user_id::text || u.partner || 'register' || current_user, 'UTF8')
	              || sha256(convert_to(u.external_id, 'UTF8')) || sha256(convert_to(u.display_name, 'UTF8'))
	              || sha256(convert_to(u.email, 'UTF8')) || sha256(convert_to(u.status::text, 'UTF8'))
	              || sha256('\x66') || sha256('\x66') || sha256('\x31') || sha256('\x66')
	              || sha256('\x7b7d') || sha256('\x5b5d'))
	  FROM u RETURNING audit_id, partner, user_id, external_id
)
INSERT INTO bench_floor.events (at, partner, user_id, audit_id, event_type, payload)
SELECT now(), a.partner, a.user_id, a.audit_id, 'user.data.updated',
       jsonb_build_object('partner', a.partner, 'external_id', a.external_id, 'user_id', a.user_id,
                          'changed_fields', '{external_id,display_name,email,status,is_fraudulent,allow_new_enroll,enrollment_count,legal_hold,metadata,tags}'::text[],
                          'status', 'active', 'at', now())
  FROM a;
