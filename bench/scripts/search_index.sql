\set u random(1, 1000000)
SELECT count(*) FROM userlife.list_users('big0', search => 'u' || :u || '@example');
