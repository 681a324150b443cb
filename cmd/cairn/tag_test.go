package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/oracle"
)

// tagState is what tag changes, per snapshot: the tags (in order: restic's
// --remove moves the last tag into the removed one's place) and the
// original ID, keyed by what tag keeps (host and time). It reads the
// repository with the library: restic reads the final state below.
func tagState(t *testing.T, dir string) []string {
	t.Helper()
	list, err := openRepo(t, dir).Snapshots(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, sn := range list {
		orig := "none"
		if sn.Original != nil {
			orig = sn.Original.String()
		}
		out = append(out, fmt.Sprintf("%s %s tags=%q original=%s", sn.Time.UTC().Format(time.RFC3339), sn.Hostname, sn.Tags, orig))
	}
	slices.Sort(out)
	return out
}

// resticTagState is tagState as restic lists it.
func resticTagState(t *testing.T, o *oracle.Restic, dir string) []string {
	t.Helper()
	var list []struct {
		Time     time.Time `json:"time"`
		Hostname string    `json:"hostname"`
		Tags     []string  `json:"tags"`
		Original string    `json:"original"`
	}
	o.RunJSON(dir, &list, "snapshots", "--no-lock")
	var out []string
	for _, sn := range list {
		if sn.Original == "" {
			sn.Original = "none"
		}
		out = append(out, fmt.Sprintf("%s %s tags=%q original=%s", sn.Time.UTC().Format(time.RFC3339), sn.Hostname, sn.Tags, sn.Original))
	}
	slices.Sort(out)
	return out
}

// lastLine is the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// cairn tag and restic tag, run on two identical repositories, leave the
// same tags, in the same order, and the same original IDs, and print the
// same summary.
func TestTagLikeRestic(t *testing.T) {
	t.Parallel()
	dir := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("tag me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	var ids []string
	for i, args := range [][]string{
		{"--host", "a", "--tag", "x,y"},
		{"--host", "b", "--tag", "y"},
		{"--host", "a"},
		{"--host", "c", "--tag", "x,y,z", "--tag", "q"},
	} {
		args = append(args, "--time", fmt.Sprintf("2026-01-0%d 12:00:00", i+1), src)
		ids = append(ids, backupJSON(t, r, args...)["snapshot_id"].(string))
	}
	twin := filepath.Join(t.TempDir(), "twin")
	if err := os.CopyFS(twin, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	o := oracleFor(t)

	for _, args := range [][]string{
		{"tag", "--add", "byid", ids[1][:8]},
		{"tag", "--add", "n1,n2", "--host", "a"},
		{"tag", "--remove", "x", "--add", "w"},
		{"tag", "--remove", "y,nothere"},
		{"tag", "--set", "s2", "--set", "s1,s2", "--tag", "z"},
		{"tag", "--set", ""}, // restic 0.19.1 changes nothing
		{"tag", "--remove", "nothere"},
		{"tag", "--add", "again", "--path", src, "--host", "c"},
	} {
		mine := r.ok(args...)
		theirs := o.MustRun(twin, args...)
		if got, want := lastLine(mine.stdout), lastLine(string(theirs.Stdout)); got != want {
			t.Errorf("%v: cairn printed %q, restic %q", args, got, want)
		}
		if got, want := tagState(t, dir), tagState(t, twin); !slices.Equal(got, want) {
			t.Fatalf("%v: snapshots differ from restic's\ncairn:\n%s\nrestic:\n%s", args, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// restic reads what cairn wrote: the same as what it wrote itself.
	final := resticTagState(t, o, dir)
	if want := resticTagState(t, o, twin); !slices.Equal(final, want) {
		t.Errorf("restic lists cairn's snapshots as\n%s\nand its own as\n%s", strings.Join(final, "\n"), strings.Join(want, "\n"))
	}
	// Every snapshot was changed at least once and keeps its first ID.
	for _, s := range final {
		if !slices.ContainsFunc(ids, func(id string) bool { return strings.HasSuffix(s, "original="+id) }) {
			t.Errorf("snapshot without its first ID as original: %s", s)
		}
	}
	if n := len(oracleList(t, o, dir, "snapshots")); n != len(ids) {
		t.Errorf("%d snapshot files after tagging, want %d (old files removed)", n, len(ids))
	}

	// --json: restic's messages, one per changed snapshot and a summary.
	res := r.ok("--json", "tag", "--add", "j", "--host", "a")
	msgs := jsonLines(t, res.stdout)
	theirs := jsonLines(t, string(o.MustRun(twin, "--json", "tag", "--add", "j", "--host", "a").Stdout))
	if len(msgs) != 3 || len(theirs) != 3 {
		t.Fatalf("tag --json printed %d messages, restic %d:\n%s", len(msgs), len(theirs), res.stdout)
	}
	for i := range msgs {
		if got, want := strings.Join(keysOf(msgs[i]), ","), strings.Join(keysOf(theirs[i]), ","); got != want {
			t.Errorf("message %d has fields %s, restic's %s", i, got, want)
		}
	}
	if msgs[0]["message_type"] != "changed" || msgs[2]["message_type"] != "summary" || msgs[2]["changed_snapshots"] != 2.0 {
		t.Errorf("tag --json messages: %v", msgs)
	}
	var list []map[string]any
	if err := json.Unmarshal(o.MustRun(dir, "--json", "snapshots", "--no-lock").Stdout, &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sn := range list {
		if sn["id"] == msgs[0]["new_snapshot_id"] {
			found = true
		}
		if sn["id"] == msgs[0]["old_snapshot_id"] {
			t.Errorf("old snapshot %v still listed", sn["id"])
		}
	}
	if !found {
		t.Errorf("new snapshot %v not listed by restic", msgs[0]["new_snapshot_id"])
	}

	// Refusals, with restic's messages and exit status 1.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"tag"}, "Fatal: nothing to do!"},
		{[]string{"tag", "--set", "a", "--add", "b"}, "Fatal: --set and --add/--remove cannot be given at the same time"},
	} {
		res := r.expect(1, c.args...)
		if !strings.Contains(res.stderr, c.msg) {
			t.Errorf("%v: stderr %q, want %q", c.args, res.stderr, c.msg)
		}
	}
	if locks := lockFiles(t, dir); len(locks) != 0 {
		t.Errorf("locks left behind: %v", locks)
	}
}

// oracleList lists the files of a type with restic.
func oracleList(t *testing.T, o *oracle.Restic, dir, fileType string) []string {
	t.Helper()
	return o.List(dir, fileType)
}
