//go:build linux

package tar_test

import (
	"io/fs"
	"os/exec"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtools"
	"github.com/cairn-backup/cairn/internal/testtree"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/sourcetest"
	"github.com/cairn-backup/cairn/sources/tar"
)

// gnuTar returns the path of GNU tar, which makes the archives the tests
// read (Debian's tar package).
func gnuTar(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("tar")
	if err != nil {
		testtools.Unavailable(t, "GNU tar not in PATH: %v", err)
		return ""
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil || !strings.Contains(string(out), "GNU tar") {
		testtools.Unavailable(t, "%s is not GNU tar (%v): %.80s", p, err, out)
	}
	return p
}

// tarArgs is the GNU tar command writing dir (absolute) to standard
// output in format, as `ssh host tar -cf - /srv/app` does: member names
// without the leading slash, each directory before its contents.
func tarArgs(bin, format, dir string, extra ...string) []string {
	args := []string{bin, "--format=" + format, "-C", "/", "-cf", "-"}
	if format == "posix" {
		args = append(args, "--xattrs", "--xattrs-include=*")
	}
	args = append(args, extra...)
	return append(args, strings.TrimPrefix(dir, "/"))
}

// The conformance suite on PAX archives that GNU tar makes of the fixture
// tree: every entry with its times to the nanosecond, owners and names,
// devices and xattrs, read while it is visited. Hard links reach this
// visitor (which has no VisitLink) as files with the first name's content.
func TestConformanceGNUTarPAX(t *testing.T) {
	bin := gnuTar(t)
	sourcetest.Run(t, sourcetest.Harness{
		Open: func(t *testing.T, dir string) sources.Source {
			src, err := tar.FromCommand(tarArgs(bin, "posix", dir), tar.Options{
				Paths:    []string{dir},
				Hostname: "tarhost",
				Stderr:   func(line string) { logStderr(t, line) },
			})
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
		Ignore: func(f *testtree.File) string {
			if f.Mode&fs.ModeSocket != 0 {
				return "tar skips sockets"
			}
			return ""
		},
	})
}

// logStderr shows GNU tar's messages; "socket ignored" is expected.
func logStderr(t *testing.T, line string) {
	if !strings.Contains(line, "socket ignored") {
		t.Logf("tar: %s", line)
	}
}
