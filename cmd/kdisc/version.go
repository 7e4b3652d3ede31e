package main

import (
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
)

// version is kdisc's release version, written in this one place (a
// release changes it and adds its entry to CHANGELOG.md). `kdisc version`
// prints it as the module version, and deploy/image.sh reads it from the
// binary it builds.
const version = "0.1.0"

// revision is the VCS revision, given at build time where Go does not stamp
// one (in a git worktree, or with -buildvcs=false):
// deploy/build.sh passes -ldflags "-X main.revision=$(git rev-parse HEAD)".
var revision string

// printVersion is `kdisc version`: module version, Go version and VCS
// revision (-dirty when built with local changes), on one line.
func printVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "kdisc version: takes no arguments\n%s", usage)
		return exitError
	}
	bi, _ := debug.ReadBuildInfo()
	fmt.Fprintln(stdout, versionLine(bi, runtime.Version(), revision))
	return exitOK
}

// pseudoVersion matches the timestamp and revision prefix of a Go
// pseudo-version (v0.0.0-20261207011938-9741238c3ea1, or
// v0.1.1-0.20261207011938-9741238c3ea1), what `go install ...@commit`
// stamps as the module version.
var pseudoVersion = regexp.MustCompile(`[-.][0-9]{14}-([0-9a-f]{12})(\+.*)?$`)

// versionLine is "kdisc MODULE-VERSION GO-VERSION REVISION". The module
// version is always v+version. The revision is the one Go stamped
// (vcs.revision, -dirty when vcs.modified), else rev (given with -X), else
// the revision a pseudo-version names, else "unknown". bi may be nil.
func versionLine(bi *debug.BuildInfo, goVersion, rev string) string {
	var stamped, pseudo string
	dirty := false
	if bi != nil {
		if m := pseudoVersion.FindStringSubmatch(bi.Main.Version); m != nil {
			pseudo = m[1]
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				stamped = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	switch {
	case stamped != "" && dirty:
		rev = stamped + "-dirty"
	case stamped != "":
		rev = stamped
	case rev != "":
	case pseudo != "":
		rev = pseudo
	default:
		rev = "unknown"
	}
	return fmt.Sprintf("kdisc v%s %s %s", version, goVersion, rev)
}
