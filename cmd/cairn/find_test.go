package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// find prints the same matches as restic, as text and JSON, with restic's
// pattern rules and every selection flag.
func TestFindLikeRestic(t *testing.T) {
	t.Parallel()
	f := inspectFixture(t)
	x := newInspectRun(t, f.v2)
	s0, s1 := f.v2IDs[0], f.v2IDs[1]

	for _, args := range [][]string{
		{"tiny"},
		{"*.txt", "small*"},
		{"-i", "*.LOG"},
		{"star*"},
		{"percent*"}, // restic formats the line with the name as format string
		{"new*line", "tab*"},
		{f.src + "/names/*"},
		{f.src + "/**/leaf"},
		{"/**/hardlinks/*"},
		{"**/d3?"},
		{"!relative"},
		{"links/*", "--snapshot", s0[:8], "--snapshot", s1},
		{"*", "--host", "h2"},
		{"*", "--tag", "a", "--newest", "2021-03-04 05:06:08", "--oldest", "1901-01-01"},
		{"*", "--tag", "c", "--oldest", "02.01.2100"},
		{"*o*", "--reverse"},
		{"nothing-matches-this"},
	} {
		mine := x.same(append([]string{"--json", "find"}, args...)...)
		x.same(append([]string{"find"}, args...)...)
		x.same(append([]string{"find", "--long"}, args...)...)
		var res []map[string]any
		if err := json.Unmarshal([]byte(mine), &res); err != nil {
			t.Errorf("find --json %v: %v\n%s", args, err, mine)
		}
		if len(res) == 0 && args[0] != "nothing-matches-this" {
			t.Errorf("find %v found nothing", args)
		}
	}
	x.same("find", "--long", "--human-readable", "*.bin", "*.img")
	newInspectRun(t, f.v1).same("--json", "find", "*")
	if out := x.same("find", "percent*"); !strings.Contains(out, "%!s(MISSING)") {
		t.Errorf("find percent* printed\n%s", out)
	}

	// Object IDs: data blobs, trees (the snapshot's root too) and packs.
	files := x.o.CatTree(f.v2, s0+":"+f.src+"/files")
	var blobID, treeID string
	for _, n := range files.Nodes {
		if n.Name == "random.bin" && len(n.Content) > 0 {
			blobID = n.Content[len(n.Content)-1]
		}
	}
	dirs := x.o.CatTree(f.v2, s0+":"+f.src)
	for _, n := range dirs.Nodes {
		if n.Name == "links" {
			treeID = n.Subtree
		}
	}
	if blobID == "" || treeID == "" {
		t.Fatalf("no blob or tree to look for: %q %q", blobID, treeID)
	}
	var sn struct{ Tree string }
	x.o.CatJSON(f.v2, &sn, "snapshot", s1)
	x.same("--json", "find", "--blob", blobID)
	x.same("find", "--blob", blobID[:8], "--show-pack-id")
	x.same("--json", "find", "--tree", treeID[:8], sn.Tree)
	x.same("find", "--tree", treeID, "--show-pack-id")
	packs := x.o.List(f.v2, "packs")
	x.same("--json", "find", "--pack", packs[0][:8])
	x.same("find", "--pack", packs[len(packs)-1])

	for _, args := range [][]string{
		{"find"},
		{"find", "--blob", "--tree", "x"},
		{"find", "--oldest", "2024-01-02", "--newest", "2023-01-01", "x"},
		{"find", "--oldest", "yesterday", "x"},
		{"find", "--pack", "deadbeef"},
	} {
		if c, _ := x.both(args...); c.code != 1 {
			t.Errorf("%v: want exit 1: %s", args, c)
		}
	}
}
