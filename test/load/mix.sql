\set u random(1, 200)
\set op random(1, 10)
\set s random(1, 5)
\if :op = 1
SELECT load_try(format('SELECT userlife.register_user(%L, %L, %L, %L)', 'inv', 'r' || :u, 'Name ' || :u, 'r' || :u || '@example.com'));
\elif :op = 2
SELECT load_try(format('SELECT userlife.update_user(%L, %L, display_name => %L, metadata => %L)', 'inv', 'r' || :u, 'N' || random(), jsonb_build_object('k' || :s, random())));
\elif :op = 3
SELECT load_try(format('SELECT userlife.set_status(%L, %L, %L, %L)', 'inv', 'r' || :u, (ARRAY['active', 'inactive', 'suspended', 'flagged', 'blocked'])[:s], 'load'));
\elif :op = 4
SELECT load_try(format('SELECT userlife.set_fraud_flag(%L, %L, %L, %L)', 'inv', 'r' || :u, :s > 3, 'load'));
\elif :op = 5
SELECT load_try(format('SELECT userlife.delete_user(%L, %L, %L)', 'inv', 'r' || :u, 'load'));
\elif :op = 6
SELECT load_try(format('SELECT userlife.restore_user(%L, %L, %L)', 'inv', 'r' || :u, 'load'));
\elif :op = 7
SELECT load_try(format('SELECT userlife.allow_reenroll(%L, %L); SELECT userlife.register_user(%L, %L, %L)', 'inv', 'r' || :u, 'inv', 'r' || :u, 'Again ' || :u));
\elif :op = 8
SELECT load_try(format('SELECT userlife.record_job(%L, %L, %L)', 'inv', 'r' || :u, 'kyc'));
\elif :op = 9
SELECT load_try(format('SELECT userlife.enrollee_request(%L)',
       jsonb_build_object('partner_id', 'inv', 'user_id', 'r' || :u, 'environment', 'production', 'email', 'ops@inv.test',
                          'is_fraudulent', :s > 3) || userlife.generate_signature('inv')));
\else
SELECT load_try(format('SELECT userlife.set_legal_hold(%L, %L, %L, %L)', 'inv', 'r' || :u, :s > 3, 'load'));
\endif
