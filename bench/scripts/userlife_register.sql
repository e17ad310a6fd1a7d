\set r random(1, 1000000000000000000)
\set p :r % 10
SELECT 1 FROM userlife.register_user('p' || :p, 'r' || :client_id || '-' || :r, 'Name ' || :r, 'r' || :client_id || '-' || :r || '@example.com');
