package sftp

import (
	"path"
	"slices"
	"strings"
)

// The snapshot layout is restic's for absolute targets: /srv/app appears
// as srv/app, with srv carrying the metadata of the remote /srv; "/" puts
// the remote root's entries at the snapshot root. Remote paths are always
// absolute, so restic's renaming of same-named targets from different
// working directories ("name-1") never applies. A target inside another
// target adds nothing (its entries are already below the outer one) and is
// dropped.

// vnode is one node of the snapshot's top part, above and at the targets.
type vnode struct {
	children map[string]*vnode
	// host is set on a leaf: the remote path whose entry (and, for a
	// directory, everything below it) goes here.
	host string
	// info is set on an inner node: the remote directory whose metadata
	// the node carries.
	info string
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

// layout builds the top part for cleaned absolute targets. rootTarget is
// true when "/" is among them: the walk then lists the remote root itself
// and the tree is empty.
func layout(targets []string) (root *vnode, rootTarget bool) {
	root = &vnode{children: map[string]*vnode{}}
	sorted := slices.Clone(targets)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var kept []string
	for _, t := range sorted {
		if t == "/" {
			return root, true
		}
		// Sorted order puts /a before /a/b, though not always right
		// before it ("/a b" sorts between them).
		if !slices.ContainsFunc(kept, func(k string) bool { return strings.HasPrefix(t, k+"/") }) {
			kept = append(kept, t)
		}
	}
	for _, t := range kept {
		n := root
		comps := strings.Split(t[1:], "/")
		for i, c := range comps {
			child := n.children[c]
			if child == nil {
				child = &vnode{}
				n.children[c] = child
			}
			if i == len(comps)-1 {
				child.host = t
			} else {
				if child.children == nil {
					child.children = map[string]*vnode{}
				}
				child.info = "/" + path.Join(comps[:i+1]...)
			}
			n = child
		}
	}
	return root, false
}
