-- Keys, signatures and enrollee requests: their messages.
\set SHOW_CONTEXT never
SELECT partner FROM userlife.create_partner('signed');
SELECT length(userlife.issue_api_key('signed')) AS key_length;
SELECT userlife.issue_api_key('signed', 'staging');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.issue_api_key('signed', grace => '-1 hour');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.issue_api_key('nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.generate_signature('signed', environment => 'test');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.generate_signature('signed', 'not a time');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.verify_signature('signed', '%%%', '2026-01-01T00:00:00Z');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.verify_signature('signed', NULL, '2026-01-01T00:00:00Z');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.verify_signature('signed', 'AAAA', 'now');
\echo :LAST_ERROR_SQLSTATE
-- a signature from 2020 is simply not valid
SELECT userlife.verify_signature('signed', (userlife.generate_signature('signed', '2020-01-01T00:00:00Z'))->>'signature',
                                 '2020-01-01T00:00:00Z') AS valid;

SELECT external_id FROM userlife.register_user('signed', 'member-1');
CREATE FUNCTION pg_temp.request(flags jsonb, signed_at timestamptz DEFAULT now(), partner text DEFAULT 'signed')
RETURNS jsonb LANGUAGE sql AS $$
	SELECT jsonb_build_object('partner_id', 'signed', 'user_id', 'member-1', 'environment', 'production',
	                          'email', 'ops@signed.test')
	       || (userlife.generate_signature(partner, to_char(signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')))
	       || flags
$$;
SELECT userlife.enrollee_request(pg_temp.request('{"active": false}')) - 'user_id';
SELECT userlife.enrollee_request(pg_temp.request('{"active": true}', now() - interval '10 minutes'));
\echo :LAST_ERROR_SQLSTATE
SELECT partner FROM userlife.create_partner('other');
SELECT length(userlife.issue_api_key('other')) AS key_length;
SELECT userlife.enrollee_request(pg_temp.request('{"active": true}', partner => 'other'));
\echo :LAST_ERROR_SQLSTATE
SELECT pg_temp.request('{"active": true}') AS body \gset
SELECT userlife.enrollee_request(:'body') - 'user_id';
SELECT userlife.enrollee_request(:'body');
\echo :LAST_ERROR_SQLSTATE
-- malformed bodies
SELECT userlife.enrollee_request('[]');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.request('{"active": "no"}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.request('{"sudo": true}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.request('{}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.request('{"active": true}') - 'signature');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.request('{"active": true, "user_id": 42}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(pg_temp.request('{"active": true, "environment": "staging"}'));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.enrollee_request(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT action, actor, reason FROM userlife.audit WHERE partner = 'signed' ORDER BY audit_id;
