\set u random(1, 1000000)
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM (SELECT 1 FROM userlife.users u WHERE u.partner = 'big0'
   AND lower(coalesce(u.display_name, '') || E'\x1f' || coalesce(u.email, '') || E'\x1f' || u.external_id) LIKE '%' || lower('u' || :u || '@example') || '%'
 ORDER BY u.created_at, u.user_id LIMIT 20) s;
RESET enable_indexscan;
RESET enable_bitmapscan;
