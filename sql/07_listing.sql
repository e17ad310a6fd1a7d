-- Listing: list_users filters and both paginations, count_users, users_page.
\set SHOW_CONTEXT never
SELECT partner FROM userlife.create_partner('list');
-- one statement (one transaction, one created_at) per user
SELECT format('SELECT external_id FROM userlife.register_user(%L, %L, %L, %L, tags => %L)',
              'list', 'l-' || i, 'Name ' || i, 'user' || i || '@example.com',
              CASE WHEN i % 3 = 0 THEN '{gold}' ELSE '{}' END)
  FROM generate_series(1, 12) i \gexec
SELECT external_id FROM userlife.register_user('list', 'pct', '100% real_name', 'pct@example.com');
SELECT external_id FROM userlife.register_user('list', 'plain', '100 percent realXname', 'plain@example.com');
SELECT status FROM userlife.disable_user('list', 'l-2');
SELECT status FROM userlife.delete_user('list', 'l-4');

SELECT external_id FROM userlife.list_users('list', page_size => 5);
SELECT external_id FROM userlife.list_users('list', page_size => 5, page_offset => 5);
-- keyset: after the last user of the previous page
SELECT user_id AS last_id FROM userlife.list_users('list', page_size => 5) ORDER BY created_at DESC, user_id DESC LIMIT 1 \gset
SELECT external_id FROM userlife.list_users('list', page_size => 5, after_user => :'last_id');
-- filters compose
SELECT external_id FROM userlife.list_users('list', status => 'inactive');
SELECT external_id FROM userlife.list_users('list', status => 'deleted');
SELECT external_id FROM userlife.list_users('list', tag => 'gold');
SELECT external_id FROM userlife.list_users('list', tag => 'gold', status => 'active');
SELECT external_id FROM userlife.list_users('list', search => 'NAME 1');
SELECT external_id FROM userlife.list_users('list', search => 'USER11@');
SELECT external_id FROM userlife.list_users('list', search => 'l-1');
-- % and _ are literal
SELECT external_id FROM userlife.list_users('list', search => '100%');
SELECT external_id FROM userlife.list_users('list', search => 'real_name');
SELECT external_id FROM userlife.list_users('list', search => '%');
SELECT count(*) FROM userlife.list_users('list', created_after => now() - interval '1 hour', created_before => now() + interval '1 hour', page_size => 100);
SELECT count(*) FROM userlife.list_users('list', created_after => now() + interval '1 hour');

SELECT userlife.count_users('list') AS all_users,
       userlife.count_users('list', status => 'active') AS active,
       userlife.count_users('list', tag => 'gold') AS gold,
       userlife.count_users('list', search => 'name 1') AS name_1;

SELECT jsonb_pretty(jsonb_set(p, '{users}', (SELECT jsonb_agg(u - 'userId' - 'registeredAt' - 'updatedAt') FROM jsonb_array_elements(p->'users') u)))
  FROM userlife.users_page('list', 2, 1, 'active', 'name') p;
SELECT p->'pagination' FROM userlife.users_page('list', 20, 0) p;
SELECT p->'pagination' FROM userlife.users_page('list', 1000, 100) p;

-- errors
SELECT userlife.list_users('list', page_size => 0);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.list_users('list', page_size => 1001);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.list_users('list', after_user => :'last_id', page_offset => 5);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.list_users('list', page_offset => -1);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.list_users('list', after_user => '00000000-0000-4000-8000-000000000001');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.list_users('nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.count_users(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.users_page('list', 0);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.users_page('list', 10, -1);
\echo :LAST_ERROR_SQLSTATE

-- the status_counts view
SELECT status, users FROM userlife.status_counts WHERE partner = 'list' ORDER BY status;
