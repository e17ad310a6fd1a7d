\set u random(1, :nusers)
\set p :u % 10
\set s random(1, 3)
SELECT 1 FROM bench_plpgsql.set_status('p' || :p, 'u' || :u, ((ARRAY['active', 'inactive', 'suspended'])[:s])::userlife.user_status, 'bench');
