package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// statsProgressRe is the final progress line of stats; its duration varies,
// and with several snapshots so does which snapshot's counts it shows
// (restic loads snapshots in parallel).
var statsProgressRe = regexp.MustCompile(`(?m)^\[[0-9:]+\] (.*? snapshots)(.*)$`)

func normaliseStatsText(s string, single bool) string {
	if single {
		return statsProgressRe.ReplaceAllString(s, "[T] $1$2")
	}
	return statsProgressRe.ReplaceAllString(s, "[T] $1")
}

// stats prints the same numbers as restic, in JSON and as text, for every
// mode, on a version 2 repository (compressed) and a version 1 one.
func TestStatsLikeRestic(t *testing.T) {
	t.Parallel()
	f := inspectFixture(t)
	for _, tc := range []struct {
		name, repo string
		args       []string
		single     bool
		allText    bool // compare the text of every mode, not just restore-size
	}{
		{"v2 all", f.v2, nil, false, true},
		{"v2 latest host h1", f.v2, []string{"--host", "h1", "latest"}, true, false},
		{"v2 two IDs", f.v2, []string{f.v2IDs[0][:8], f.v2IDs[1]}, false, false},
		{"v2 tag b", f.v2, []string{"--tag", "b"}, true, false},
		{"v1", f.v1, nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newInspectRun(t, tc.repo)
			for _, mode := range []string{"restore-size", "files-by-contents", "raw-data", "blobs-per-file"} {
				args := append([]string{"stats", "--mode", mode}, tc.args...)
				out := x.same(append([]string{"--json"}, args...)...)
				var s map[string]any
				if err := json.Unmarshal([]byte(out), &s); err != nil {
					t.Fatalf("%v: %v: %q", args, err, out)
				}
				if s["total_size"] == float64(0) || s["snapshots_count"] == float64(0) {
					t.Errorf("%v: nothing counted: %s", args, out)
				}
				if mode == "raw-data" && tc.repo == f.v2 && s["compression_ratio"] == nil {
					t.Errorf("%v: no compression figures for a version 2 repository: %s", args, out)
				}
				if !tc.allText && mode != "restore-size" {
					continue
				}
				c, o := x.both(args...)
				if got, want := normaliseStatsText(c.stdout, tc.single), normaliseStatsText(string(o.Stdout), tc.single); got != want {
					t.Errorf("%v: text differs\n%s", args, lineDiff(want, got))
				}
			}
		})
	}
	t.Run("bad mode", func(t *testing.T) {
		x := newInspectRun(t, f.v2)
		c, _ := x.both("stats", "--mode", "nonsense")
		if c.code != 1 || !strings.Contains(c.stderr, "unknown counting mode: nonsense") {
			t.Errorf("%s", c)
		}
	})
}
