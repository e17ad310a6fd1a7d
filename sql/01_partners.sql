-- Partners: create_partner, set_retention, bind/unbind, and their errors.
\set SHOW_CONTEXT never
SELECT partner, display_name, retention FROM userlife.create_partner('acme', 'Acme Inc.');
SELECT partner, display_name, retention FROM userlife.create_partner('beta.co-1_x', retention => '90 days');
SET userlife.default_retention = '7 days';
SELECT partner, retention FROM userlife.create_partner('gamma');
RESET userlife.default_retention;

-- duplicate
SELECT userlife.create_partner('acme');
\echo :LAST_ERROR_SQLSTATE
-- malformed ids
SELECT userlife.create_partner('');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.create_partner('has space');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.create_partner(repeat('x', 65));
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.create_partner('ünicode');
\echo :LAST_ERROR_SQLSTATE
SELECT partner FROM userlife.create_partner(repeat('x', 64)) AS p(partner);
-- retention must be positive
SELECT userlife.create_partner('delta', retention => '0 days');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.create_partner('delta', retention => '-1 day');
\echo :LAST_ERROR_SQLSTATE
-- NULL partner
SELECT userlife.create_partner(NULL);
\echo :LAST_ERROR_SQLSTATE
-- the setting is checked too
SET userlife.default_retention = '-5 days';
\echo :LAST_ERROR_SQLSTATE
SET userlife.default_retention = 'soon';
\echo :LAST_ERROR_SQLSTATE

-- set_retention
SELECT partner, retention FROM userlife.set_retention('acme', '14 days');
SELECT userlife.set_retention('nobody', '14 days');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_retention('acme', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.set_retention('acme', '0 seconds');
\echo :LAST_ERROR_SQLSTATE

-- bindings
CREATE ROLE regress_binder;
SELECT userlife.bind_partner('regress_binder', 'acme');
SELECT userlife.bind_partner('regress_binder', 'acme');  -- twice is fine
SELECT role, partner FROM userlife.partner_bindings ORDER BY 1, 2;
SELECT userlife.bind_partner('regress_binder', 'nobody');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.bind_partner(NULL, 'acme');
\echo :LAST_ERROR_SQLSTATE
SELECT userlife.unbind_partner('regress_binder', 'acme');
SELECT count(*) AS bindings FROM userlife.partner_bindings;
DROP ROLE regress_binder;

-- the reserved prefix
SET userlife.no_such_setting = 'x';
\echo :LAST_ERROR_SQLSTATE
