\set u random(1, 1000000)
SELECT userlife.get_user('big0', 'u' || :u);
