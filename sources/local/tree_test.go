//go:build linux

package local

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestComponents(t *testing.T) {
	tests := []struct {
		in   string
		comp []string
		root string
	}{
		{"/srv/app", []string{"srv", "app"}, "/"},
		{"/", nil, "/"},
		{".", nil, "."},
		{"..", nil, ".."},
		{"../..", nil, "../.."},
		{"src", []string{"src"}, "."},
		{"a/b", []string{"a", "b"}, "."},
		{"../b/x", []string{"b", "x"}, ".."},
		{"../../x", []string{"x"}, "../.."},
		{"x/..", nil, "."},
	}
	for _, tt := range tests {
		if got := components(tt.in); !slices.Equal(got, tt.comp) {
			t.Errorf("components(%q) = %q, want %q", tt.in, got, tt.comp)
		}
		if got := rootOf(tt.in); got != tt.root {
			t.Errorf("rootOf(%q) = %q, want %q", tt.in, got, tt.root)
		}
	}
}

// TestBuildTree checks the layout without touching the disk (no target
// contains another, so nothing is listed).
func TestBuildTree(t *testing.T) {
	abs := func(p string) string {
		if p[0] == '/' {
			return p
		}
		return "/cwd/" + p
	}
	root, err := buildTree([]target{
		{"/srv/app", true}, {"/srv/db", true}, {"x", true}, {"../x", true}, {"/x/y", true}, {"/srv/app", true},
	}, abs)
	if err != nil {
		t.Fatal(err)
	}
	if got := root.sortedNames(); !slices.Equal(got, []string{"srv", "x", "x-1", "x-2"}) {
		t.Fatalf("top level %q", got)
	}
	srv := root.children["srv"]
	if srv.leaf() || srv.info != "/srv" || !slices.Equal(srv.sortedNames(), []string{"app", "db"}) {
		t.Errorf("srv: %+v", srv)
	}
	if app := srv.children["app"]; app.host != "/srv/app" || !app.explicit {
		t.Errorf("srv/app: %+v", app)
	}
	if x := root.children["x"]; x.host != "/cwd/x" || x.root != "." {
		t.Errorf("x: %+v", x)
	}
	if x := root.children["x-1"]; x.host != "/cwd/../x" || x.root != ".." {
		t.Errorf("x-1: %+v", x)
	}
	if x := root.children["x-2"]; x.leaf() || x.info != "/x" || x.children["y"].host != "/x/y" {
		t.Errorf("x-2: %+v", x)
	}
	if _, err := buildTree([]target{{"a/b", true}, {"c/../a/b", true}}, abs); err != nil {
		t.Errorf("the same target twice after cleaning: %v", err)
	}
}

func TestTaskQueueOrder(t *testing.T) {
	keys := [][]uint32{
		{0}, {0, 0}, {0, 0, 3}, {0, 1}, {0, 1, 0}, {0, 1, 0, 7}, {0, 1, 2}, {0, 2}, {1}, {1, 0}, {2},
	}
	for i := 1; i < len(keys); i++ {
		if !before(keys[i-1], keys[i]) || before(keys[i], keys[i-1]) {
			t.Fatalf("before(%v, %v) wrong", keys[i-1], keys[i])
		}
	}
	q := newTaskQueue()
	rng := rand.New(rand.NewPCG(1, 2))
	shuffled := slices.Clone(keys)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, k := range shuffled {
		q.push(task{key: k})
	}
	q.close()
	var got [][]uint32
	for {
		tk, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, tk.key)
	}
	if !slices.EqualFunc(got, keys, slices.Equal) {
		t.Errorf("popped %v, want %v", got, keys)
	}
}
