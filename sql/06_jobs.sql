-- Jobs: what the fraud flag and the status do to a user's jobs.
\set SHOW_CONTEXT never
SELECT external_id FROM userlife.register_user('acme', 'j-1');
SELECT job_type, outcome, failure_reason, payload FROM userlife.record_job('acme', 'j-1', 'document_check');
SELECT job_type, outcome, failure_reason FROM userlife.record_job('acme', 'j-1', 'selfie', 'failed');
SELECT is_fraudulent FROM userlife.set_fraud_flag('acme', 'j-1', true, 'ring');
-- still recorded, with all its data, but failed
SELECT job_type, outcome, failure_reason, payload
  FROM userlife.record_job('acme', 'j-1', 'document_check', 'passed', '{"score": 0.99}');
SELECT is_fraudulent FROM userlife.set_fraud_flag('acme', 'j-1', false, 'cleared');
SELECT status FROM userlife.set_status('acme', 'j-1', 'suspended', 'review');
SELECT outcome, failure_reason FROM userlife.record_job('acme', 'j-1', 'document_check');
SELECT status FROM userlife.delete_user('acme', 'j-1');
SELECT outcome, failure_reason FROM userlife.record_job('acme', 'j-1', 'document_check');
SELECT job_type, outcome, failure_reason FROM userlife.jobs j JOIN userlife.users u USING (user_id)
 WHERE u.external_id = 'j-1' ORDER BY job_id;
-- jobs are not changes of the user: the audit holds only the registration,
-- two fraud flags, the suspension and the deletion
SELECT action FROM userlife.audit WHERE external_id = 'j-1' ORDER BY audit_id;

-- errors
SELECT userlife.record_job('acme', 'j-1', 'kyc', 'maybe');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.record_job('acme', 'j-1', '');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.record_job('acme', 'j-1', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.record_job('acme', 'nobody', 'kyc');
\echo :LAST_ERROR_SQLSTATE
