package local

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The snapshot layout follows restic's archiver (internal/archiver/tree.go
// in restic 0.19.1): every target is split into path components; all but
// the last become directories in the snapshot carrying the metadata of the
// real directories; targets whose first components collide but live in
// different places get "name", "name-1", …; "." and "/" (any target
// without components) are replaced by their entries; a target that
// contains another target is listed so that both fit.

// vnode is one node of the snapshot's top part, above and at the targets.
type vnode struct {
	children map[string]*vnode
	// host is set on a leaf: the absolute path whose entry (and, for a
	// directory, everything below it) goes here.
	host string
	// info is set on an inner node: the absolute path of the directory
	// whose metadata the node carries.
	info string
	// root identifies where a top-level node's first component lives
	// ("/", ".", "..", "../..", …), to tell same-named targets apart.
	root string
	// explicit marks a target the user named: excludes never apply to it.
	explicit bool
}

func (n *vnode) leaf() bool { return n.host != "" }

// sortedNames returns the child names in raw byte order.
func (n *vnode) sortedNames() []string {
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// target is a resolved backup target.
type target struct {
	path     string // cleaned, relative or absolute as given
	explicit bool
}

// components splits a cleaned path into its components, with a relative
// path taken as if it started at the root ("../b/x" gives "b", "x"; "."
// and ".." give none).
func components(p string) []string {
	if !filepath.IsAbs(p) {
		p = "/" + p
	}
	p = filepath.Clean(p)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// rootOf returns the directory holding the first component of a target: "/" for absolute paths, otherwise "." followed by the target's
// leading ".." components.
func rootOf(p string) string {
	if filepath.IsAbs(p) {
		return "/"
	}
	p = filepath.Clean(p)
	root := "."
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			root = filepath.Join(root, "..")
		}
	}
	return root
}

// resolveTargets cleans the targets and replaces those without components
// ("." "/" "..") by their directory entries, which are not explicit. abs
// makes a path absolute for listing.
func resolveTargets(targets []string, abs func(string) string) ([]target, error) {
	var out []target
	for _, t := range targets {
		t = filepath.Clean(t)
		if len(components(t)) > 0 {
			out = append(out, target{t, true})
			continue
		}
		names, err := readDirNames(abs(t))
		if err != nil {
			return nil, err
		}
		slices.Sort(names)
		for _, name := range names {
			out = append(out, target{filepath.Join(t, name), false})
		}
	}
	return out, nil
}

// readDirNames lists a directory, following a symlink to it (restic lists
// top-level targets with a plain open).
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("list target %s: %w", dir, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list target %s: %w", dir, err)
	}
	return names, nil
}

// buildTree lays the targets out like restic. abs turns a cleaned path
// into an absolute one (the working directory of the backup).
func buildTree(targets []target, abs func(string) string) (*vnode, error) {
	root := &vnode{children: map[string]*vnode{}}
	seen := map[string]bool{}
	for _, t := range targets {
		t.path = filepath.Clean(t.path)
		if seen[t.path] {
			continue
		}
		seen[t.path] = true
		if err := root.addTop(t, abs); err != nil {
			return nil, err
		}
	}
	if err := root.unroll(); err != nil {
		return nil, err
	}
	return root, nil
}

// addTop adds a target below the snapshot root, renaming on collisions.
func (n *vnode) addTop(t target, abs func(string) string) error {
	pc := components(t.path)
	if len(pc) == 0 {
		return fmt.Errorf("target %q has no path components", t.path)
	}
	first, root := pc[0], rootOf(t.path)
	name := first
	node := &vnode{root: root}
	for i := 1; ; i++ {
		other, ok := n.children[name]
		if !ok {
			break
		}
		if other.root == root {
			node = other
			break
		}
		name = first + "-" + strconv.Itoa(i)
	}
	if len(pc) == 1 {
		node.host, node.explicit = abs(t.path), t.explicit
	} else {
		sub := filepath.Join(root, first)
		if err := node.add(t, abs, sub, pc[1:]); err != nil {
			return err
		}
		node.info = abs(sub)
	}
	n.children[name] = node
	return nil
}

// add places a target's remaining components pc below n, which stands for
// the directory dir.
func (n *vnode) add(t target, abs func(string) string, dir string, pc []string) error {
	if n.children == nil {
		n.children = map[string]*vnode{}
	}
	name := pc[0]
	child := n.children[name]
	if len(pc) == 1 {
		if child == nil {
			n.children[name] = &vnode{host: abs(t.path), explicit: t.explicit}
			return nil
		}
		if child.host != "" {
			return fmt.Errorf("target %q collides with another target", t.path)
		}
		child.host, child.explicit = abs(t.path), t.explicit
		return nil
	}
	if child == nil {
		child = &vnode{}
		n.children[name] = child
	}
	sub := filepath.Join(dir, name)
	child.info = abs(sub)
	return child.add(t, abs, sub, pc[1:])
}

// unroll turns a leaf that also has children (a target containing another
// target) into an inner node listing the leaf's directory entries.
func (n *vnode) unroll() error {
	if n.host != "" && len(n.children) > 0 {
		names, err := readDirNames(n.host)
		if err != nil {
			return err
		}
		for _, name := range names {
			p := filepath.Join(n.host, name)
			child, ok := n.children[name]
			switch {
			case !ok:
				n.children[name] = &vnode{host: p}
			case child.host == "":
				child.host = p
			case child.host != p:
				return fmt.Errorf("targets collide at %s", p)
			}
		}
		n.host, n.explicit = "", false
	}
	for _, child := range n.children {
		if err := child.unroll(); err != nil {
			return err
		}
	}
	return nil
}
