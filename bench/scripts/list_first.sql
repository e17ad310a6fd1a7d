SELECT count(*) FROM userlife.list_users('big0');
