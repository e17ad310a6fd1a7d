-- Bounded batches and purge isolation: the messages.  delete_users refuses
-- more than 10,000 ids; a user whose purge fails is named in a WARNING
-- with the error, and run_maintenance counts it as purge_failed.
\set SHOW_CONTEXT never
SELECT partner FROM userlife.create_partner('bat', retention => '1 day');
SELECT count(*) FROM generate_series(1, 4) i, LATERAL userlife.register_user('bat', 'b-' || i) r;

-- delete_users: at most 10,000 ids
SELECT count(*) FROM userlife.delete_users('bat', array_fill('b-1'::text, ARRAY[10001]));
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM userlife.users WHERE partner = 'bat' AND status = 'deleted';
SELECT result, count(*) FROM userlife.delete_users('bat', array_fill('b-1'::text, ARRAY[10000]), 'cleanup')
 GROUP BY result ORDER BY result;

-- two users whose purge fails: a DBA's foreign key holds b-2, a DBA's
-- trigger refuses b-3
SELECT result FROM userlife.delete_users('bat', ARRAY['b-2', 'b-3', 'b-4']);
-- (whatever earlier tests left due goes first, so the counts below are this test's)
SELECT userlife.purge_expired(10000) >= 0 AS earlier_purged;
UPDATE userlife.users SET purge_after = now() - (10 - substr(external_id, 3)::int) * interval '1 hour'
 WHERE partner = 'bat';
CREATE TABLE public.bat_orders (order_id int PRIMARY KEY, user_id uuid REFERENCES userlife.users (user_id));
INSERT INTO public.bat_orders SELECT 1, user_id FROM userlife.users WHERE partner = 'bat' AND external_id = 'b-2';
CREATE FUNCTION public.bat_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF OLD.external_id = 'b-3' THEN
		RAISE EXCEPTION 'b-3 has open invoices' USING ERRCODE = 'P0001', DETAIL = 'Invoice 17 is unpaid.';
	END IF;
	RETURN OLD;
END
$$;
CREATE TRIGGER bat_keep BEFORE DELETE ON userlife.users FOR EACH ROW EXECUTE FUNCTION public.bat_keep();
\set VERBOSITY terse
SELECT userlife.purge_expired(10);
\set VERBOSITY default
SELECT external_id FROM userlife.users WHERE partner = 'bat' ORDER BY 1;
SELECT u.external_id, f.sqlstate, f.attempts FROM userlife.purge_failures f JOIN userlife.users u USING (user_id)
 WHERE u.partner = 'bat' ORDER BY 1;
-- the failure's detail, and the count
DELETE FROM public.bat_orders;
SELECT userlife.run_maintenance() - 'events_dropped' - 'signatures_forgotten' - 'suspensions_ended' - 'bindings_dropped'
       - 'webhook_attempts_dropped' - 'webhook_deliveries_dropped' - 'webhook_endpoints_disabled' AS counts;
DROP TRIGGER bat_keep ON userlife.users;
DROP FUNCTION public.bat_keep();
SELECT userlife.run_maintenance() - 'events_dropped' - 'signatures_forgotten' - 'suspensions_ended' - 'bindings_dropped'
       - 'webhook_attempts_dropped' - 'webhook_deliveries_dropped' - 'webhook_endpoints_disabled' AS counts;
SELECT count(*) AS failures_left FROM userlife.purge_failures;
DROP TABLE public.bat_orders;
