#!/usr/bin/perl
# router/generate.pl SRCDIR — writes userlife_router--<version>.sql on
# stdout: the install script of the userlife_router extension, generated
# from userlife's own scripts so that a function added to userlife cannot
# be forgotten by the router.
#
# It reads the scripts a fresh CREATE EXTENSION userlife runs (the install
# script, then every update script up to default_version), statement by
# statement, and keeps what they leave behind: the functions (CREATE [OR
# REPLACE] FUNCTION, DROP FUNCTION, ALTER FUNCTION ... RENAME TO), their
# comments, the tables' columns (CREATE TABLE, ALTER TABLE ... ADD / DROP /
# RENAME COLUMN, ALTER COLUMN ... TYPE) and the enum and composite types.
# Every function of schema userlife whose first argument is named partner
# becomes a PL/Proxy function of the same name, arguments, defaults and
# return type, run on the partner's partition; the few that must reach every
# shard (the ALL table below) become a PL/Proxy function run on all of them
# and an SQL wrapper that combines the shards' results.  A return or
# argument type of schema userlife becomes a type of the same name on the
# router (a table's row type a composite type with the table's columns).
# Anything it cannot understand in such a function makes it fail: the build
# stops rather than ship a router that silently lacks a function.
use strict;
use warnings;

my $srcdir = shift // '.';
my $ext = 'userlife';

# ---- which scripts a fresh install runs ----------------------------------
sub slurp
{
	my ($f) = @_;
	open(my $fh, '<', $f) or die "generate.pl: cannot read $f: $!\n";
	local $/;
	my $s = <$fh>;
	close $fh;
	return $s;
}

my ($version) = slurp("$srcdir/$ext.control") =~ /^default_version\s*=\s*'([^']+)'/m
  or die "generate.pl: no default_version in $ext.control\n";

# the router is installed at userlife's version, from its own control file
my ($rversion) = slurp("$srcdir/${ext}_router.control") =~ /^default_version\s*=\s*'([^']+)'/m;
die "generate.pl: ${ext}_router.control must have default_version = '$version', as $ext.control\n"
  unless defined $rversion && $rversion eq $version;

# PostgreSQL's choice: the install script with the shortest update path to
# the target version (a later starting version on a tie)
sub install_chain
{
	my (%full, %upd);
	opendir(my $dh, $srcdir) or die "generate.pl: $srcdir: $!\n";
	for my $f (readdir $dh)
	{
		if ($f =~ /^\Q$ext\E--([^-]+(?:-[^-]+)*?)--([^-]+)\.sql$/) { push @{ $upd{$1} }, $2; }
		elsif ($f =~ /^\Q$ext\E--([^-]+)\.sql$/) { $full{$1} = 1; }
	}
	closedir $dh;
	my $best;
	for my $start (sort keys %full)
	{
		my %seen = ($start => [$start]);
		my @queue = ($start);
		while (@queue)
		{
			my $v = shift @queue;
			last if $v eq $version;
			for my $next (@{ $upd{$v} || [] })
			{
				next if $seen{$next};
				$seen{$next} = [ @{ $seen{$v} }, $next ];
				push @queue, $next;
			}
		}
		my $path = $seen{$version} or next;
		$best = $path if !$best || @$path < @$best || (@$path == @$best && vcmp($path->[0], $best->[0]) > 0);
	}
	die "generate.pl: no install path to $ext $version\n" unless $best;
	my @files = ("$ext--$best->[0].sql");
	push @files, "$ext--$best->[$_ - 1]--$best->[$_].sql" for 1 .. $#$best;
	return @files;
}

sub vcmp
{
	my @a = split /\./, $_[0];
	my @b = split /\./, $_[1];
	while (@a || @b)
	{
		my $c = (shift(@a) // 0) <=> (shift(@b) // 0);
		return $c if $c;
	}
	return 0;
}

# ---- SQL text: statements, top-level splitting -----------------------------
# statements: the script without comments and psql meta-commands, split at
# top-level semicolons; string literals and quoted identifiers are kept
sub statements
{
	my ($sql) = @_;
	my (@out, $cur);
	$cur = '';
	$sql =~ s/^\\.*$//mg;
	while (length $sql)
	{
		if ($sql =~ s/^(\$([A-Za-z_][A-Za-z_0-9]*)?\$.*?\$\2\$)//s) { $cur .= $1; }
		elsif ($sql =~ s/^([Ee]'(?:[^'\\]|\\.|'')*')//s) { $cur .= $1; }
		elsif ($sql =~ s/^('(?:[^']|'')*')//s) { $cur .= $1; }
		elsif ($sql =~ s/^("(?:[^"]|"")*")//s) { $cur .= $1; }
		elsif ($sql =~ s/^--[^\n]*//) { $cur .= ' '; }
		elsif ($sql =~ s/^\/\*.*?\*\///s) { $cur .= ' '; }
		elsif ($sql =~ s/^;//) { push @out, $cur; $cur = ''; }
		elsif ($sql =~ s/^([^\$'"Ee;\/-]+|.)//s) { $cur .= $1; }
	}
	push @out, $cur if $cur =~ /\S/;
	for (@out) { s/\s+/ /g; s/^ //; s/ $//; }
	return grep { length } @out;
}

# split_top(text): the comma-separated items of text, commas inside
# parentheses, brackets and quotes left alone
sub split_top
{
	my ($s) = @_;
	my (@items, $depth, $cur);
	($depth, $cur) = (0, '');
	while (length $s)
	{
		if ($s =~ s/^('(?:[^']|'')*'|"(?:[^"]|"")*"|\$([A-Za-z_]*)\$.*?\$\2\$)//s) { $cur .= $1; }
		elsif ($s =~ s/^([(\[])//) { $depth++; $cur .= $1; }
		elsif ($s =~ s/^([)\]])//) { $depth--; $cur .= $1; }
		elsif ($depth == 0 && $s =~ s/^,//) { push @items, $cur; $cur = ''; }
		elsif ($s =~ s/^,//) { $cur .= ','; }
		elsif ($s =~ s/^([^'"\$()\[\],]+|.)//s) { $cur .= $1; }
	}
	push @items, $cur;
	for (@items) { s/^\s+//; s/\s+$//; }
	return grep { length } @items;
}

# balanced(text): the parenthesised group text starts with, and the rest
sub balanced
{
	my ($s) = @_;
	die "generate.pl: expected ( in: $s\n" unless $s =~ /^\(/;
	my $depth = 0;
	my $i = 0;
	while ($i < length $s)
	{
		my $rest = substr($s, $i);
		if ($rest =~ /^('(?:[^']|'')*'|"(?:[^"]|"")*")/) { $i += length $1; next; }
		my $c = substr($s, $i, 1);
		$depth++ if $c eq '(';
		$depth-- if $c eq ')';
		$i++;
		return (substr($s, 1, $i - 2), substr($s, $i)) if $depth == 0;
	}
	die "generate.pl: unbalanced parentheses in: $s\n";
}

# ---- types -----------------------------------------------------------------
my %alias = (
	'int' => 'integer', 'int4' => 'integer', 'int8' => 'bigint', 'int2' => 'smallint',
	'bool' => 'boolean', 'timestamp with time zone' => 'timestamptz',
	'timestamp without time zone' => 'timestamp', 'character varying' => 'varchar',
	'double precision' => 'float8', 'real' => 'float4', 'decimal' => 'numeric');

# canon(type): one spelling per type, for identities
sub canon
{
	my ($t) = @_;
	$t = lc $t;
	$t =~ s/\s+/ /g;
	$t =~ s/^\s|\s$//g;
	$t =~ s/\s*\[\s*\]/[]/g;
	$t =~ s/^pg_catalog\.//;
	my $arr = $t =~ s/((?:\[\])+)$// ? $1 : '';
	$t = $alias{$t} // $t;
	return $t . $arr;
}

my $constraint_kw = qr/^(?:NOT|NULL|DEFAULT|GENERATED|CONSTRAINT|REFERENCES|CHECK|PRIMARY|UNIQUE|COLLATE)$/i;

# column(def): [name, type] of a column definition
sub column
{
	my ($def) = @_;
	my ($name, $rest) = $def =~ /^("(?:[^"]|"")*"|\S+)\s+(.*)$/ or die "generate.pl: column? $def\n";
	my @type;
	for my $w (split / /, $rest)
	{
		last if $w =~ $constraint_kw;
		push @type, $w;
	}
	die "generate.pl: no type in column: $def\n" unless @type;
	return [ $name, join(' ', @type) ];
}

my (%tables, %enums, %composites, %functions, %comments);

sub table_stmt
{
	my ($name, $body) = @_;
	my @cols;
	for my $item (split_top($body))
	{
		next if $item =~ /^(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN|EXCLUDE|LIKE)\b/i;
		push @cols, column($item);
	}
	$tables{$name} = \@cols;
}

sub alter_table
{
	my ($name, $actions) = @_;
	return unless $tables{$name};
	for my $a (split_top($actions))
	{
		if ($a =~ /^ADD (?:COLUMN )?(?:IF NOT EXISTS )?(?!CONSTRAINT\b|PRIMARY\b|UNIQUE\b|CHECK\b|FOREIGN\b|EXCLUDE\b)(.*)$/i)
		{
			push @{ $tables{$name} }, column($1);
		}
		elsif ($a =~ /^DROP (?:COLUMN )?(?:IF EXISTS )?(?!CONSTRAINT\b)(\S+)/i)
		{
			my $c = $1;
			$tables{$name} = [ grep { $_->[0] ne $c } @{ $tables{$name} } ];
		}
		elsif ($a =~ /^RENAME (?:COLUMN )?(?!TO\b|CONSTRAINT\b)(\S+) TO (\S+)$/i)
		{
			my ($from, $to) = ($1, $2);
			$_->[0] eq $from and $_->[0] = $to for @{ $tables{$name} };
		}
		elsif ($a =~ /^RENAME TO (\S+)$/i)
		{
			$tables{"$ext.$1"} = delete $tables{$name};
		}
		elsif ($a =~ /^ALTER (?:COLUMN )?(\S+) (?:SET DATA )?TYPE (.*?)(?: USING .*)?$/i)
		{
			my ($c, $t) = ($1, column("x $2")->[1]);
			$_->[0] eq $c and $_->[1] = $t for @{ $tables{$name} };
		}
	}
}

# ---- functions ---------------------------------------------------------------
# args(list): [{name, type, default}] of an argument list
sub args
{
	my ($list, $where) = @_;
	my @args;
	for my $a (split_top($list))
	{
		die "generate.pl: $where: only IN arguments can be routed: $a\n" if $a =~ /^(?:OUT|INOUT|VARIADIC)\s/i;
		$a =~ s/^IN\s+//i;
		my ($decl, $default) = $a =~ /^(.*?)(?:\s+(?:DEFAULT|=)\s+(.*))?$/is;
		my ($name, $type) = $decl =~ /^("(?:[^"]|"")*"|[A-Za-z_][A-Za-z_0-9]*)\s+(.+)$/
		  or die "generate.pl: $where: an argument without a name: $a\n";
		push @args, { name => $name, type => $type, default => $default };
	}
	return \@args;
}

# types_of(list): the types of an argument list that may or may not name
# its arguments (DROP, ALTER and COMMENT ON FUNCTION take both)
sub types_of
{
	my ($list) = @_;
	my @types;
	for my $a (split_top($list))
	{
		$a =~ s/^(?:IN|VARIADIC)\s+//i;
		$a =~ s/\s+(?:DEFAULT|=)\s+.*$//is;
		$a =~ s/^(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z_0-9]*)\s+(?=\S)//
		  unless $a =~ /^(?:timestamp|time|double|character|bit|national)\b/i;
		push @types, $a;
	}
	return \@types;
}

sub identity
{
	my ($name, $types) = @_;
	return "$name(" . join(',', map { canon($_) } @$types) . ')';
}

sub create_function
{
	my ($stmt) = @_;
	my ($name, $rest) = $stmt =~ /^CREATE (?:OR REPLACE )?FUNCTION \Q$ext\E\.(\w+) ?(\(.*)$/is or return;
	my ($arglist, $after) = balanced($rest);
	my $args = args($arglist, "$ext.$name");
	my $returns;
	if ($after =~ /^\s*RETURNS TABLE ?(\(.*)$/is)
	{
		my ($cols) = balanced($1);
		$returns = "TABLE ($cols)";
	}
	else
	{
		($returns) = $after =~ /^\s*RETURNS (.*?) (?:LANGUAGE|AS|IMMUTABLE|STABLE|VOLATILE|STRICT|CALLED|SECURITY|PARALLEL|COST|ROWS|SET|WINDOW|LEAKPROOF|NOT)\b/is
		  or die "generate.pl: $ext.$name: no RETURNS clause\n";
	}
	my ($rows) = $after =~ /\bROWS (\d+)/i;
	my $id = identity($name, [ map { $_->{type} } @$args ]);
	$functions{$id} = { name => $name, args => $args, returns => $returns, rows => $rows };
}

sub drop_function
{
	my ($stmt) = @_;
	for my $f (split_top($stmt =~ s/^DROP FUNCTION (?:IF EXISTS )?//ir =~ s/ (?:CASCADE|RESTRICT)$//ir))
	{
		my ($name, $rest) = $f =~ /^\Q$ext\E\.(\w+) ?(\(.*)?$/ or next;
		if (!defined $rest)
		{
			delete $functions{$_} for grep { $functions{$_}{name} eq $name } keys %functions;
			next;
		}
		my ($list) = balanced($rest);
		my @types = @{ types_of($list) };
		delete $functions{ identity($name, \@types) };
	}
}

sub alter_function
{
	my ($stmt) = @_;
	my ($name, $rest) = $stmt =~ /^ALTER FUNCTION \Q$ext\E\.(\w+) ?(\(.*)$/is or return;
	my ($list, $after) = balanced($rest);
	my ($to) = $after =~ /^\s*RENAME TO (\w+)$/i or return;
	my $old = identity($name, types_of($list));
	my $f = delete $functions{$old} or return;
	$f->{name} = $to;
	my $new = identity($to, [ map { $_->{type} } @{ $f->{args} } ]);
	$functions{$new} = $f;
	$comments{$new} = delete $comments{$old} if exists $comments{$old};
}

sub comment_on_function
{
	my ($stmt) = @_;
	my ($name, $rest) = $stmt =~ /^COMMENT ON FUNCTION \Q$ext\E\.(\w+) ?(\(.*)$/is or return;
	my ($list, $after) = balanced($rest);
	my ($text) = $after =~ /^\s*IS\s+'((?:[^']|'')*)'\s*$/s or return;
	$comments{ identity($name, types_of($list)) } = $text;
}

# ---- read the scripts ----------------------------------------------------
my @files = install_chain();
for my $file (@files)
{
	for my $s (statements(slurp("$srcdir/$file")))
	{
		if ($s =~ /^CREATE (?:UNLOGGED )?TABLE (?:IF NOT EXISTS )?(\Q$ext\E\.\w+) ?(\(.*)$/is)
		{
			my ($body) = balanced($2);
			table_stmt($1, $body);
		}
		elsif ($s =~ /^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?(\Q$ext\E\.\w+) (.*)$/is) { alter_table($1, $2); }
		elsif ($s =~ /^DROP TABLE (?:IF EXISTS )?(.*?)(?: CASCADE| RESTRICT)?$/is)
		{
			delete $tables{$_} for split_top($1);
		}
		elsif ($s =~ /^CREATE TYPE (\Q$ext\E\.\w+) AS ENUM ?(\(.*)$/is)
		{
			my ($body) = balanced($2);
			$enums{$1} = [ split_top($body) ];
		}
		elsif ($s =~ /^CREATE TYPE (\Q$ext\E\.\w+) AS ?(\(.*)$/is)
		{
			my ($body) = balanced($2);
			$composites{$1} = [ map { column($_) } split_top($body) ];
		}
		elsif ($s =~ /^ALTER TYPE (\Q$ext\E\.\w+) ADD VALUE (?:IF NOT EXISTS )?('(?:[^']|'')*')(?: (BEFORE|AFTER) ('(?:[^']|'')*'))?$/is)
		{
			my ($t, $v, $where, $ref) = ($1, $2, $3, $4);
			my $vals = $enums{$t} or die "generate.pl: ALTER TYPE of an unknown enum $t\n";
			next if grep { $_ eq $v } @$vals;
			if (!$where) { push @$vals, $v; next; }
			my ($i) = grep { $vals->[$_] eq $ref } 0 .. $#$vals;
			splice(@$vals, $where =~ /^after$/i ? $i + 1 : $i, 0, $v);
		}
		elsif ($s =~ /^ALTER TYPE (\Q$ext\E\.\w+) RENAME VALUE ('(?:[^']|'')*') TO ('(?:[^']|'')*')$/is)
		{
			my ($t, $from, $to) = ($1, $2, $3);
			$_ eq $from and $_ = $to for @{ $enums{$t} };
		}
		elsif ($s =~ /^DROP TYPE (?:IF EXISTS )?(.*?)(?: CASCADE| RESTRICT)?$/is)
		{
			for my $t (split_top($1)) { delete $enums{$t}; delete $composites{$t}; }
		}
		elsif ($s =~ /^CREATE (?:OR REPLACE )?FUNCTION /i) { create_function($s); }
		elsif ($s =~ /^DROP FUNCTION /i) { drop_function($s); }
		elsif ($s =~ /^ALTER FUNCTION /i) { alter_function($s); }
		elsif ($s =~ /^COMMENT ON FUNCTION /i) { comment_on_function($s); }
	}
}

# ---- what the router offers ----------------------------------------------------
# Functions run on every shard, and how the shards' results are combined:
#   sum     numbers summed (jsonb: each numeric key summed)
#   one     one shard's row: every shard holds every partner's row, so that
#           bindings apply everywhere and a partition can move without them
#   void    nothing to combine
my %all = (
	create_partner => 'one', set_retention => 'one',
	bind_partner => 'void', unbind_partner => 'void',
	purge_expired => 'sum', run_maintenance => 'sum');

my @routed = sort { $functions{$a}{name} cmp $functions{$b}{name} || $a cmp $b }
  grep { my $f = $functions{$_}; !$all{ $f->{name} } && @{ $f->{args} } && $f->{args}[0]{name} eq 'partner' } keys %functions;
my @everywhere = sort { $functions{$a}{name} cmp $functions{$b}{name} } grep { $all{ $functions{$_}{name} } } keys %functions;
die "generate.pl: no function of $ext takes partner first\n" unless @routed;
for my $n (sort keys %all)
{
	die "generate.pl: $ext.$n, which the router runs on every shard, is gone from $ext\n"
	  unless grep { $functions{$_}{name} eq $n } @everywhere;
}

# the userlife types a function's arguments and result need, dependencies first
my (@type_order, %type_done);
sub need_type
{
	my ($t) = @_;
	$t =~ s/^SETOF //i;
	$t =~ s/(?:\[\])+$//;
	return if $t !~ /^\Q$ext\E\./ || $type_done{$t}++;
	my $cols = $tables{$t} // $composites{$t};
	if ($cols)
	{
		need_type($_->[1]) for @$cols;
		push @type_order, [ $t, 'composite', $cols ];
	}
	elsif ($enums{$t}) { push @type_order, [ $t, 'enum', $enums{$t} ]; }
	else { die "generate.pl: type $t is neither a table, a composite nor an enum of $ext\n"; }
}
for my $id (@routed, @everywhere)
{
	my $f = $functions{$id};
	need_type($_->{type}) for @{ $f->{args} };
	if ($f->{returns} =~ /^TABLE ?(\(.*)$/is)
	{
		my ($cols) = balanced($1);
		need_type(column($_)->[1]) for split_top($cols);
	}
	else { need_type($f->{returns}); }
}

# ---- write the script ------------------------------------------------------------
# The group roles: the install script's own DO block, taken from between
# its $roles$ markers, so that the router creates the roles userlife does
# and the list of them is written once
my ($roles_block) = slurp("$srcdir/$files[0]") =~ /^(DO \$roles\$\n.*?^\$roles\$;\n)/ms
  or die "generate.pl: no DO \$roles\$ ... \$roles\$; block in $files[0]\n";
my $routing_gucs = "SET search_path = pg_catalog, pg_temp\n\tSET DateStyle = 'ISO, MDY' SET IntervalStyle = 'postgres'";
my $groups = 'userlife_reader, userlife_developer, userlife_compliance, userlife_admin, userlife_owner';

sub arglist
{
	my ($f, $with_defaults) = @_;
	return join(', ', map { "$_->{name} $_->{type}" . ($with_defaults && defined $_->{default} ? " DEFAULT $_->{default}" : '') } @{ $f->{args} });
}
sub argtypes { join(', ', map { $_->{type} } @{ $_[0]{args} }) }
sub argnames { join(', ', map { $_->{name} } @{ $_[0]{args} }) }

print <<"EOT";
/* userlife_router--$version.sql */
-- GENERATED by router/generate.pl from @{[ join(', ', @files) ]}: do not edit.

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\\echo Use "CREATE EXTENSION userlife_router CASCADE" to load this file. \\quit

-- The schema belongs to the extension, so that DROP EXTENSION removes it;
-- a database with userlife cannot be a router (its schema exists).
CREATE SCHEMA userlife;
COMMENT ON SCHEMA userlife IS 'userlife_router: userlife''s partner functions, each run on the shard that holds the partner';

-- The group roles the shards check (cluster-wide: created when missing,
-- left by DROP EXTENSION).  The router connects to a shard as the calling
-- role, so roles and their memberships must exist on every shard too.
$roles_block
-- Hardening: PL/Proxy's validators are for the server to call.  Called
-- directly, plproxy_fdw_validator dereferences a NULL pointer with an
-- option without a value (fixed in PL/Proxy 2.12; Debian 12 ships 2.10).
-- Resolved in the schema PL/Proxy was installed in: during CREATE
-- EXTENSION the search_path is this extension's schema, then its
-- required extensions'.
REVOKE EXECUTE ON FUNCTION plproxy_fdw_validator(text[], oid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION plproxy_validator(oid) FROM PUBLIC;

------------------------------------------------------------------------
-- Types: those the routed functions take and return, with the columns
-- (and labels) the shards' userlife has.  Results cross as text, by name.
------------------------------------------------------------------------
EOT

for my $t (@type_order)
{
	my ($name, $kind, $def) = @$t;
	if ($kind eq 'enum')
	{
		print "CREATE TYPE $name AS ENUM (" . join(', ', @$def) . ");\n";
		print "COMMENT ON TYPE $name IS 'the labels of $name on the shards';\n";
	}
	else
	{
		print "CREATE TYPE $name AS (\n" . join(",\n", map { "\t$_->[0] $_->[1]" } @$def) . "\n);\n";
		my $what = $tables{$name} ? "row type of table $name" : "type $name";
		print "COMMENT ON TYPE $name IS 'the $what on the shards, as routed functions return it';\n";
	}
	print "\n";
}

print <<'EOT';
------------------------------------------------------------------------
-- Partitions.  A partner's partition is the low bits of the first 32 bits
-- (big-endian, signed) of the SHA-256 of its UTF-8 bytes: the same on every
-- server, platform and major version, and easy to compute anywhere (Python:
-- int.from_bytes(hashlib.sha256(p.encode()).digest()[:4], 'big', signed=True)
-- & (n - 1)).  PL/Proxy masks the hash with (partition count - 1), the
-- count a power of two.  A NULL partner goes to partition 0, whose userlife
-- answers 22004 as it would directly.
------------------------------------------------------------------------
-- STABLE, not IMMUTABLE, as convert_to is: so it is inlined into the plan
-- PL/Proxy keeps for RUN ON, not run as a function of its own per call
CREATE FUNCTION userlife.partner_hash(partner text)
	RETURNS integer
	LANGUAGE sql STABLE PARALLEL SAFE
	RETURN COALESCE(
		(('x' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.substr(
			pg_catalog.sha256(pg_catalog.convert_to(partner, 'UTF8')), 1, 4), 'hex'))::pg_catalog.bit(32))::pg_catalog.int4,
		0);
COMMENT ON FUNCTION userlife.partner_hash(text) IS
	'the partner''s 32-bit hash (first 4 bytes of the SHA-256 of its UTF-8 text, 0 for NULL); PL/Proxy routes on it';

-- the partition count is that of the SERVER userlife (its p0, p1, ... options)
CREATE FUNCTION userlife.shard_of(partner text)
	RETURNS integer
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
	AS $$
	SELECT userlife.partner_hash(partner) OPERATOR(pg_catalog.&) (pg_catalog.count(*)::integer OPERATOR(pg_catalog.-) 1)
	  FROM pg_catalog.pg_foreign_server s,
		   pg_catalog.pg_options_to_table(s.srvoptions) o
	 WHERE s.srvname OPERATOR(pg_catalog.=) 'userlife'
	   AND o.option_name OPERATOR(pg_catalog.~) '^p(artition_)?[0-9]+$'
	HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 0
	$$;
COMMENT ON FUNCTION userlife.shard_of(text) IS
	'the partition (0 .. n-1) that holds the partner in the PL/Proxy cluster userlife (SERVER userlife); NULL when there is no such server';

------------------------------------------------------------------------
-- Routed functions: each runs, as the calling role, on the shard that
-- holds its partner, as one transaction there.  Arguments go as text in
-- ISO DateStyle and postgres IntervalStyle whatever the caller's session
-- says, and results are read the same way.
------------------------------------------------------------------------
EOT

for my $id (@routed)
{
	my $f = $functions{$id};
	my $rows = $f->{rows} ? " ROWS $f->{rows}" : '';
	print "CREATE FUNCTION $ext.$f->{name}(" . arglist($f, 1) . ")\n";
	print "\tRETURNS $f->{returns}\n";
	print "\tLANGUAGE plproxy VOLATILE PARALLEL UNSAFE$rows\n\t$routing_gucs\n";
	print "\tAS \$plproxy\$ CLUSTER 'userlife'; RUN ON userlife.partner_hash(partner); \$plproxy\$;\n";
	my $c = $comments{$id} // '';
	print "COMMENT ON FUNCTION $ext.$f->{name}(" . argtypes($f) . ") IS\n\t'routed to the partner''s shard" . ($c ne '' ? ": $c" : '') . "';\n\n";
}

print <<'EOT';
------------------------------------------------------------------------
-- Run on every shard: a PL/Proxy function returning one row per shard
-- database (several partitions in one database run once), and the
-- function of userlife's name and signature that combines them.  Each
-- shard commits on its own: when one fails, the others may have done
-- their part (run it again once the shard is back).
------------------------------------------------------------------------
EOT

for my $id (@everywhere)
{
	my $f = $functions{$id};
	my $how = $all{ $f->{name} };
	my $per = "$ext.$f->{name}_per_shard";
	my $ret = $f->{returns};
	if ($how eq 'sum')
	{
		print "CREATE FUNCTION $per(" . arglist($f, 0) . ")\n\tRETURNS TABLE (shard text, result $ret)\n";
		print "\tLANGUAGE plproxy VOLATILE PARALLEL UNSAFE\n\t$routing_gucs\n";
		print "\tAS \$plproxy\$ CLUSTER 'userlife'; RUN ON ALL;\n";
		print "\tSELECT pg_catalog.current_database()::text AS shard, $ext.$f->{name}(" . argnames($f) . ") AS result; \$plproxy\$;\n";
	}
	else
	{
		my $setof = $ret =~ /^void$/i ? 'SETOF void' : "SETOF $ret";
		print "CREATE FUNCTION $per(" . arglist($f, 0) . ")\n\tRETURNS $setof\n";
		print "\tLANGUAGE plproxy VOLATILE PARALLEL UNSAFE\n\t$routing_gucs\n";
		print "\tAS \$plproxy\$ CLUSTER 'userlife'; RUN ON ALL; TARGET $ext.$f->{name}; \$plproxy\$;\n";
	}
	print "COMMENT ON FUNCTION $per(" . argtypes($f) . ") IS\n\t'$ext.$f->{name} run on every shard database: one row per database';\n";

	my $body;
	if ($how eq 'sum' && $ret =~ /^jsonb$/i)
	{
		$body = "SELECT COALESCE(pg_catalog.jsonb_object_agg(t.key, t.total), '{}'::pg_catalog.jsonb)\n"
		  . "\t  FROM (SELECT e.key, pg_catalog.sum((e.value #>> '{}')::pg_catalog.numeric) AS total\n"
		  . "\t\t\t  FROM $per(" . argnames($f) . ") s, pg_catalog.jsonb_each(s.result) e\n"
		  . "\t\t\t WHERE pg_catalog.jsonb_typeof(e.value) OPERATOR(pg_catalog.=) 'number'\n"
		  . "\t\t\t GROUP BY e.key ORDER BY e.key) t";
	}
	elsif ($how eq 'sum')
	{
		$body = "SELECT COALESCE(pg_catalog.sum(s.result), 0)::$ret FROM $per(" . argnames($f) . ") s";
	}
	elsif ($how eq 'one')
	{
		$body = "SELECT s FROM $per(" . argnames($f) . ") s LIMIT 1";
	}
	else
	{
		$body = "SELECT pg_catalog.count(*) FROM $per(" . argnames($f) . ")";
	}
	print "CREATE FUNCTION $ext.$f->{name}(" . arglist($f, 1) . ")\n\tRETURNS $ret\n";
	print "\tLANGUAGE sql VOLATILE PARALLEL UNSAFE\n\tSET search_path = pg_catalog, pg_temp\n";
	print "\tAS \$\$\n\t$body\n\t\$\$;\n";
	my $c = $comments{$id} // '';
	my $what = $how eq 'sum' ? 'run on every shard, the total' : 'run on every shard';
	print "COMMENT ON FUNCTION $ext.$f->{name}(" . argtypes($f) . ") IS\n\t'$what" . ($c ne '' ? ": $c" : '') . "';\n\n";
}

print <<"EOT";
------------------------------------------------------------------------
-- Privileges: the shards check each call as the calling role; here the
-- routed functions are for the group roles only.  USAGE on the SERVER
-- userlife is the DBA's to grant (see the README).
------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA userlife FROM PUBLIC;
GRANT USAGE ON SCHEMA userlife TO $groups;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA userlife TO $groups;
EOT
