-- E-mail addresses with white space (SPEC §5.2, §5.4, §6): every Unicode
-- white space character, wherever it stands, is refused by the function's
-- own check with 22023 (never 23514 from the users_email_format constraint
-- behind an internal INSERT or UPDATE), by register_user and update_user
-- alike, and nothing changes; addresses with other non-ASCII characters
-- are still fine.
BEGIN;
SELECT plan(63);

SELECT userlife.create_partner('mail') IS NOT NULL AS created \gset
SELECT userlife.register_user('mail', 'keep', email => 'keep@mail.example') IS NOT NULL AS registered \gset

CREATE TEMP TABLE spaces (cp int, label text);
INSERT INTO spaces VALUES
	(9, 'tab'), (10, 'line feed'), (11, 'vertical tab'), (12, 'form feed'), (13, 'carriage return'),
	(32, 'space'), (133, 'next line U+0085'), (160, 'no-break space U+00A0'),
	(5760, 'ogham space mark U+1680'), (8192, 'en quad U+2000'), (8195, 'em space U+2003'),
	(8199, 'figure space U+2007'), (8202, 'hair space U+200A'), (8203, 'zero width space U+200B'),
	(8232, 'line separator U+2028'), (8233, 'paragraph separator U+2029'),
	(8239, 'narrow no-break space U+202F'), (8287, 'medium mathematical space U+205F'),
	(12288, 'ideographic space U+3000'), (65279, 'zero width no-break space U+FEFF');

-- register_user: in the local part and in the domain
SELECT throws_ok(format('SELECT userlife.register_user(%L, %L, email => %L)', 'mail', 'r-' || cp,
                        'jane' || chr(cp) || 'doe@mail.example'),
                 '22023', NULL, 'register_user, ' || label || ' in the local part: 22023')
  FROM spaces ORDER BY cp;
SELECT throws_ok(format('SELECT userlife.register_user(%L, %L, email => %L)', 'mail', 'd-' || cp,
                        'jane@mail' || chr(cp) || '.example'),
                 '22023', NULL, 'register_user, ' || label || ' in the domain: 22023')
  FROM spaces ORDER BY cp;
SELECT is((SELECT count(*) FROM userlife.users WHERE partner = 'mail'), 1::bigint,
          'no user was registered by the refused calls');

-- update_user
SELECT throws_ok(format('SELECT userlife.update_user(%L, %L, email => %L)', 'mail', 'keep',
                        'keep' || chr(cp) || '@mail.example'),
                 '22023', NULL, 'update_user, ' || label || ': 22023')
  FROM spaces ORDER BY cp;
SELECT is((SELECT row(email, version)::text FROM userlife.get_user('mail', 'keep')), '(keep@mail.example,1)',
          'the refused updates changed nothing');

-- other non-ASCII characters are not white space
SELECT is((SELECT email FROM userlife.update_user('mail', 'keep', email => 'jürgen.ñ@exämple.де')),
          'jürgen.ñ@exämple.де', 'an address with non-ASCII letters is accepted');

SELECT * FROM finish();
ROLLBACK;
