package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-backup/cairn/internal/testtree"
)

// The whole cycle on the awkward fixture tree: cairn backs up, lists and
// restores exactly what restic would, and prints the same snapshots and
// ls output as restic for the same repository.
func TestRoundTripLikeRestic(t *testing.T) {
	t.Parallel()
	dir := newRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	m := testtree.Build(t, src, testtree.Options{SmallFiles: 50})
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	o := oracleFor(t)

	summary := backupJSON(t, r, "--host", "fixture", "--tag", "a,b", "--tag", "c", src)
	if summary["files_new"].(float64) == 0 || summary["snapshot_id"] == "" {
		t.Fatalf("summary %v", summary)
	}
	o.MustCheck(dir, true)

	// A second run finds the parent and reads nothing again.
	res := r.ok("backup", "--host", "fixture", src)
	if !strings.Contains(res.stdout, "using parent snapshot") {
		t.Errorf("second backup did not use a parent:\n%s", res)
	}
	second := backupJSON(t, r, "--host", "fixture", src)
	if second["files_new"].(float64) != 0 || second["files_changed"].(float64) != 0 || second["data_blobs"].(float64) != 0 {
		t.Errorf("unchanged re-backup stored something: %v", second)
	}

	// snapshots: the same bytes as restic, JSON and table.
	for _, args := range [][]string{
		{"snapshots", "--json"},
		{"snapshots"},
		{"snapshots", "--compact"},
		{"snapshots", "--json", "--latest", "1"},
		{"snapshots", "--json", "--group-by", "host,tags"},
		{"snapshots", "--tag", "c"},
		{"snapshots", "--json", "--host", "nobody"},
		{"snapshots", "--path", src},
	} {
		mine := r.ok(args...).stdout
		theirs := string(o.MustRun(dir, args...).Stdout)
		if slices.Contains(args, "--group-by") {
			// restic prints groups in map order: compare them as a set.
			mine, theirs = sortedJSONArray(t, mine), sortedJSONArray(t, theirs)
		}
		if mine != theirs {
			t.Errorf("%v differs from restic's\ncairn:\n%s\nrestic:\n%s", args, mine, theirs)
		}
	}

	// ls: NDJSON and text as restic prints them.
	for _, args := range [][]string{
		{"ls", "--json", "latest"},
		{"ls", "latest"},
		{"ls", "-l", "latest"},
		{"ls", "--json", "latest:" + strings.TrimPrefix(src, "/")},
		{"ls", "latest", src + "/dirs"},
		{"ls", "--recursive", "latest", src + "/dirs"},
		{"ls", "--long", "--sort", "size", "--reverse", "latest", src},
	} {
		mine := r.ok(args...).stdout
		theirs := string(o.MustRun(dir, args...).Stdout)
		if mine != theirs {
			diff := firstDiff(mine, theirs)
			t.Errorf("%v differs from restic's at line %s", args, diff)
		}
	}

	// restore: identical to the source, and to what restic restores.
	target := filepath.Join(t.TempDir(), "restored")
	res = r.ok("restore", "latest", "--host", "fixture", "--target", target, "--verify")
	if !strings.Contains(res.stdout, "Summary: Restored") {
		t.Errorf("restore output:\n%s", res)
	}
	testtree.Compare(t, m.Root, filepath.Join(target, src), testtree.CompareOptions{IgnoreRoot: true})

	sub := filepath.Join(t.TempDir(), "sub")
	msgs := jsonLines(t, r.ok("restore", "--json", "latest:"+src+"/dirs", "--target", sub).stdout)
	last := msgs[len(msgs)-1]
	theirs := jsonLines(t, string(o.MustRun(dir, "restore", "--json", "latest:"+src+"/dirs", "--target", filepath.Join(t.TempDir(), "r")).Stdout))
	if got, want := strings.Join(keysOf(last), ","), strings.Join(keysOf(theirs[len(theirs)-1]), ","); got != want {
		t.Errorf("restore --json summary fields %s, restic's %s", got, want)
	}
	testtree.Compare(t, filepath.Join(m.Root, "dirs"), sub, testtree.CompareOptions{IgnoreRoot: true})
}

// sortedJSONArray returns the elements of a JSON array, sorted, one a line.
func sortedJSONArray(t *testing.T, out string) string {
	t.Helper()
	var elems []json.RawMessage
	decode(t, out, &elems)
	lines := make([]string, len(elems))
	for i, e := range elems {
		lines[i] = string(e)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// firstDiff describes the first line where a and b differ.
func firstDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(la), len(lb)) {
		var x, y string
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		if x != y {
			return strconv.Itoa(i+1) + "\ncairn:  " + x + "\nrestic: " + y
		}
	}
	return "(none)"
}
