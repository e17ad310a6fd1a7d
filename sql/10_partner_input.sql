-- Partner and e-mail input (SPEC §5.1, §5.2, §5.4): the messages of a
-- retention out of bounds, of an e-mail address with white space, and of
-- binding a role OID that names no role.
\set SHOW_CONTEXT never
SELECT partner, retention FROM userlife.create_partner('inp', retention => '100 years');

-- retention over 100 years, compared as intervals
SELECT userlife.create_partner('inp-long', retention => '300000 years');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.create_partner('inp-long', retention => '1200 months 1 day');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_retention('inp', '36500 days');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_retention('inp', '-1 day');
\echo :LAST_ERROR_SQLSTATE
SET userlife.default_retention = '100 years 1 second';
\echo :LAST_ERROR_SQLSTATE
SELECT partner, retention FROM userlife.partners WHERE partner LIKE 'inp%' ORDER BY 1;

-- white space in an e-mail address: 22023 from the function, never 23514
SELECT userlife.register_user('inp', 'u1', email => 'jane' || chr(8195) || 'doe@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('inp', 'u1', email => 'jane@example' || chr(12288) || '.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('inp', 'u1', email => 'jane' || chr(160) || '@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.register_user('inp', 'u1', email => 'jane doe@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT external_id, email FROM userlife.register_user('inp', 'u1', email => 'jane@example.com');
SELECT userlife.update_user('inp', 'u1', email => 'jane' || chr(8232) || '@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.update_user('inp', 'u1', email => 'jane' || chr(133) || '@example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT external_id, email, version FROM userlife.get_user('inp', 'u1');

-- a binding needs a role
SELECT userlife.bind_partner(4000000000::oid::regrole, 'inp');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS bindings FROM userlife.partner_bindings WHERE partner = 'inp';
