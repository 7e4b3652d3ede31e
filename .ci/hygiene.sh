#!/usr/bin/env bash
# .ci/hygiene.sh: the repository holds source, not build output. Fails on
# any tracked ELF file (a compiled binary or test binary: build it, do not
# commit it; .gitignore keeps the usual ones out), and on any tracked file
# over 1 MB outside a testdata/ folder (binary test fixtures, such as
# captured protobuf bodies, belong under testdata/).
set -euo pipefail
cd "$(dirname "$0")/.."
git ls-files -z | MAX_FILE_BYTES=${MAX_FILE_BYTES:-1000000} perl -0ne '
	chomp;
	my $f = $_;
	next if -l $f || !-f $f; # a symlink, a submodule, or deleted in the work tree
	open(my $fh, "<:raw", $f) or die "hygiene: $f: $!\n";
	read($fh, my $magic, 4);
	close $fh;
	if ($magic eq "\x7fELF") {
		print STDERR "hygiene: $f is an ELF executable: remove it from git (git rm --cached) and build it instead\n";
		$bad = 1;
	}
	my $size = -s $f;
	if ($size > $ENV{MAX_FILE_BYTES} && $f !~ m{(^|/)testdata/}) {
		print STDERR "hygiene: $f is $size bytes, over $ENV{MAX_FILE_BYTES} outside testdata/\n";
		$bad = 1;
	}
	END { exit($bad ? 1 : 0) }
'
