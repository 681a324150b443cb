package main

import (
	"strings"
	"testing"
)

// diff lists the same changes and statistics as restic, as text and JSON,
// between restic's snapshots and between restic's and cairn's.
func TestDiffLikeRestic(t *testing.T) {
	t.Parallel()
	f := inspectFixture(t)
	x := newInspectRun(t, f.v2)
	s0, s1, s2 := f.v2IDs[0], f.v2IDs[1], f.v2IDs[2]

	text := x.same("diff", s0, s1)
	meta := x.same("diff", "--metadata", s0[:8], s1)
	js := x.same("--json", "diff", "--metadata", s0, s1)
	x.same("--json", "diff", s0, s1)
	x.same("-q", "diff", s0, s1)
	for _, want := range []string{
		"M    " + f.src + "/files/small.txt\n",
		"T    " + f.src + "/links/relative/\n",
		"-    " + f.src + "/excl/\n",
		"-    " + f.src + "/excl/logs/x.log\n",
		"+    " + f.src + "/added/sub dir/new file\n",
		"Files:  ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("diff lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{"U    " + f.src + "/files/tiny\n", "U    " + f.src + "/names/#hash\n"} {
		if !strings.Contains(meta, want) || strings.Contains(text, want) {
			t.Errorf("%q should be listed with --metadata only", want)
		}
	}
	msgs := jsonLines(t, js)
	if len(msgs) < 5 || msgs[len(msgs)-1]["message_type"] != "statistics" || msgs[0]["message_type"] != "change" {
		t.Errorf("unexpected JSON messages: %v", msgs)
	}

	// Subfolders, and restic's snapshot against cairn's of the same tree.
	x.same("diff", s0+":"+f.src+"/links", s1+":"+f.src+"/links")
	x.same("--json", "diff", "--metadata", s1, s2)
	x.same("diff", s2, s0)

	// Errors exit like restic's.
	if c, _ := x.both("diff", s0); c.code != 1 || !strings.Contains(c.stderr, "specify two snapshot IDs") {
		t.Errorf("one snapshot: %s", c)
	}
	x.both("diff", s0, "deadbeef")
}
