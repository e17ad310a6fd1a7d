-- test/upgrade/catalog.sql — everything the userlife extension defines in a
-- database, as sorted lines of text naming objects by name (never by OID),
-- so that two databases can be compared with diff: a fresh install against
-- an install of an older version brought up with ALTER EXTENSION UPDATE.
WITH ext AS (
	SELECT e.oid, e.extversion, e.extconfig, e.extcondition FROM pg_extension e WHERE e.extname = 'userlife'
), nsp AS (
	SELECT 'userlife'::regnamespace AS oid
), lines(line) AS (
	SELECT 'extension version ' || extversion FROM ext
	UNION ALL
	SELECT 'member ' || pg_describe_object(d.classid, d.objid, d.objsubid)
	  FROM pg_depend d, ext WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
	UNION ALL
	SELECT 'config ' || c::regclass::text || ' where ' || coalesce(w, '')
	  FROM ext, unnest(ext.extconfig, ext.extcondition) AS u(c, w)
	UNION ALL
	SELECT 'schema acl ' || coalesce(n.nspacl::text, '') FROM pg_namespace n, nsp WHERE n.oid = nsp.oid
	UNION ALL
	SELECT format('relation %s kind %s rls %s force %s options %s acl %s comment %s', c.relname, c.relkind,
	              c.relrowsecurity, c.relforcerowsecurity, c.reloptions, c.relacl, obj_description(c.oid, 'pg_class'))
	  FROM pg_class c, nsp WHERE c.relnamespace = nsp.oid
	UNION ALL
	SELECT format('column %s.%s #%s %s notnull %s identity %s generated %s default %s acl %s comment %s',
	              c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	              a.attidentity, a.attgenerated, pg_get_expr(ad.adbin, ad.adrelid), a.attacl,
	              col_description(c.oid, a.attnum))
	  FROM pg_class c JOIN nsp ON c.relnamespace = nsp.oid
	  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
	UNION ALL
	SELECT format('constraint %s on %s: %s deferrable %s', co.conname, co.conrelid::regclass,
	              pg_get_constraintdef(co.oid), co.condeferrable)
	  FROM pg_constraint co, nsp WHERE co.connamespace = nsp.oid
	UNION ALL
	SELECT 'index ' || pg_get_indexdef(i.indexrelid)
	  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN nsp ON c.relnamespace = nsp.oid
	UNION ALL
	SELECT format('trigger %s enabled %s', pg_get_triggerdef(t.oid), t.tgenabled)
	  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN nsp ON c.relnamespace = nsp.oid
	 WHERE NOT t.tgisinternal
	UNION ALL
	SELECT format('policy %s on %s cmd %s permissive %s roles %s using %s check %s', p.polname, c.relname,
	              p.polcmd, p.polpermissive, p.polroles::regrole[]::text, pg_get_expr(p.polqual, p.polrelid),
	              pg_get_expr(p.polwithcheck, p.polrelid))
	  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN nsp ON c.relnamespace = nsp.oid
	UNION ALL
	SELECT format('view %s: %s', c.relname, pg_get_viewdef(c.oid))
	  FROM pg_class c, nsp WHERE c.relnamespace = nsp.oid AND c.relkind IN ('v', 'm')
	UNION ALL
	SELECT format('sequence %s %s start %s inc %s min %s max %s cycle %s', c.relname, format_type(s.seqtypid, NULL),
	              s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
	  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN nsp ON c.relnamespace = nsp.oid
	UNION ALL
	SELECT format('function %s acl %s comment %s', pg_get_functiondef(p.oid), p.proacl, obj_description(p.oid, 'pg_proc'))
	  FROM pg_proc p, nsp WHERE p.pronamespace = nsp.oid AND p.prokind IN ('f', 'p', 'w')
	UNION ALL
	SELECT format('aggregate %s acl %s', p.oid::regprocedure, p.proacl)
	  FROM pg_proc p, nsp WHERE p.pronamespace = nsp.oid AND p.prokind = 'a'
	UNION ALL
	SELECT format('type %s kind %s acl %s comment %s', t.typname, t.typtype, t.typacl, obj_description(t.oid, 'pg_type'))
	  FROM pg_type t, nsp WHERE t.typnamespace = nsp.oid AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
	UNION ALL
	SELECT format('enum %s %s %s', t.typname, e.enumsortorder, e.enumlabel)
	  FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN nsp ON t.typnamespace = nsp.oid
	UNION ALL
	SELECT format('operator %s', o.oid::regoperator) FROM pg_operator o, nsp WHERE o.oprnamespace = nsp.oid
	UNION ALL
	SELECT format('transition %s -> %s reason %s', t.from_status, t.to_status, t.requires_reason)
	  FROM userlife.transitions t
)
SELECT line FROM lines ORDER BY line COLLATE "C";
