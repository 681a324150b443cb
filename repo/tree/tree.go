package tree

import "sort"

// Tree is a decoded tree blob: the nodes of one directory in the order they
// were stored.
type Tree struct {
	nodes []*Node
	// ordered records whether the names are strictly increasing, as every
	// writer must store them. restic does not check this when reading, so
	// neither does Decode; Find falls back to a scan for a tree that is not.
	ordered bool
}

func newTree(nodes []*Node) *Tree {
	t := &Tree{nodes: nodes, ordered: true}
	for i := 1; i < len(nodes); i++ {
		if nodes[i-1].Name >= nodes[i].Name {
			t.ordered = false
			break
		}
	}
	return t
}

// Nodes returns the nodes in stored order. The slice belongs to the Tree:
// callers may change a node's fields other than Name, but must not rename,
// reorder or replace nodes, which Find relies on.
func (t *Tree) Nodes() []*Node { return t.nodes }

// Len returns the number of nodes.
func (t *Tree) Len() int { return len(t.nodes) }

// Ordered reports whether the node names are strictly increasing (sorted, no
// duplicates), as restic and cairn write them. A tree that is not can still be
// read and restored, but `restic rewrite` refuses it and restic's lookups in it
// go wrong.
func (t *Tree) Ordered() bool { return t.ordered }

// Find returns the node called name (raw bytes), or nil. It uses binary search
// on an ordered tree and a linear scan, returning the first match, otherwise.
func (t *Tree) Find(name string) *Node {
	if !t.ordered {
		for _, n := range t.nodes {
			if n.Name == name {
				return n
			}
		}
		return nil
	}
	i := sort.Search(len(t.nodes), func(i int) bool { return t.nodes[i].Name >= name })
	if i < len(t.nodes) && t.nodes[i].Name == name {
		return t.nodes[i]
	}
	return nil
}
