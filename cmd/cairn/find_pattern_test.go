package main

import "testing"

// restic's find enters a directory only while a pattern may match below
// it, and matches with its exclude rules.
func TestFindPattern(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		match, child  bool
	}{
		{"/a/b/c", "/a", false, true},
		{"/a/b/c", "/a/b", false, true},
		{"/a/b/c", "/a/b/c", true, true},
		{"/a/b/c", "/a/b/c/d", true, true},
		{"/a/b/c", "/x", false, false},
		{"/a/b/c", "/a/x", false, false},
		{"/a/*", "/a/x/y", true, true},
		{"/a/**/c", "/a/x/y", false, true},
		{"/a/**/c", "/a/x/c", true, true},
		{"/a/**/c", "/b/x", false, false},
		{"/**", "/anything/below", true, true},
		{"/", "/x", true, true},
		{"b", "/a/b", true, true},
		{"b", "/a/c", false, true},
		{"a/b", "/x/a/b/c", true, true},
		{"*.go", "/src/main.go", true, true},
		{"!main.go", "/src/main.go", true, true}, // find ignores the negation
		{"", "/whatever", true, true},
		{"/a/[bc]", "/a/c", true, true},
		{"/a/[bc]", "/a/d", false, false},
		{"/a/[bc]/x", "/a/d", false, false},
	} {
		p := newFindPattern(tc.pattern)
		m, err := p.Match(tc.path)
		if err != nil || m != tc.match {
			t.Errorf("Match(%q, %q) = %v, %v; want %v", tc.pattern, tc.path, m, err, tc.match)
		}
		c, err := p.ChildMayMatch(tc.path)
		if err != nil || c != tc.child {
			t.Errorf("ChildMayMatch(%q, %q) = %v, %v; want %v", tc.pattern, tc.path, c, err, tc.child)
		}
	}
	if _, err := newFindPattern("[").Match("/a"); err == nil {
		t.Error("a bad glob was accepted")
	}
}
