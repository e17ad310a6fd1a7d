-- The body-bound signature_v2 and userlife.require_body_signature: their
-- messages, and the canonical body's shape.
\set SHOW_CONTEXT never
SELECT partner FROM userlife.create_partner('bodysig');
SELECT length(userlife.issue_api_key('bodysig')) AS key_length;
SELECT external_id FROM userlife.register_user('bodysig', 'member-1');
-- a v1-signed request body, and the same with a correct signature_v2
CREATE FUNCTION pg_temp.signed(flags jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('partner_id', 'bodysig', 'user_id', 'member-1', 'environment', 'production',
	                          'email', 'ops@bodysig.test')
	       || userlife.generate_signature('bodysig',
	              to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
	       || flags
$$;
CREATE FUNCTION pg_temp.v2(body jsonb) RETURNS jsonb LANGUAGE sql AS $$
	SELECT body || jsonb_build_object('signature_v2',
	           encode(hmac(convert_to((body->>'timestamp') || '.' || userlife.canonical_body(body), 'UTF8'),
	                       convert_to(k.secret, 'UTF8'), 'sha256'), 'base64'))
	  FROM userlife.partner_keys k WHERE k.partner = 'bodysig' AND k.environment = 'production'
$$;
SELECT userlife.enrollee_request(pg_temp.v2(pg_temp.signed('{"active": false}'))) - 'user_id';
-- tampered: the flags changed after signing
SELECT userlife.enrollee_request(pg_temp.v2(pg_temp.signed('{"active": false}')) || '{"active": true}');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.signed('{"active": true, "signature_v2": "AAAA"}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.signed('{"active": true, "signature_v2": "***"}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.signed('{"active": true, "signature_v2": 7}'));
\echo :LAST_ERROR_SQLSTATE
SET userlife.require_body_signature = on;
SELECT userlife.enrollee_request(pg_temp.signed('{"active": true}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.v2(pg_temp.signed('{"active": true}'))) - 'user_id';
RESET userlife.require_body_signature;
SELECT action, actor, reason FROM userlife.audit WHERE partner = 'bodysig' ORDER BY audit_id;

-- the canonical body
SELECT userlife.canonical_body('{"b": [1, 2.50, {"y": null, "x": "é\n\u0001"}], "a": true, "signature": "x", "signature_v2": "y"}');
SELECT userlife.canonical_body('{"n": [1e2, 0.1, 1.5e-7, 123456789012345678901234567890.0]}');
SELECT userlife.canonical_body('"scalar"');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.canonical_body(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.canonical_body(('{"n": 1' || repeat('0', 400) || '.5}')::jsonb);
\echo :LAST_ERROR_SQLSTATE
