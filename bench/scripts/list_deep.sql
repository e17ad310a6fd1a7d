SELECT count(*) FROM userlife.list_users('big0', after_user => :deep);
