\set u random(1, 1000000)
SELECT userlife.user_summary('big0', 'u' || :u);
