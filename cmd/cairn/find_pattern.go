package main

import (
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/sources/filter"
)

// findPattern is one PATTERN of restic's find: matched against a node's
// path with restic's filter rules (sources/filter), where a directory is
// entered only while something below it may still match.
type findPattern struct {
	all   bool // the empty pattern matches everything
	match filter.Pattern
	// comps are the cleaned components; comps[0] is "/" when the pattern
	// is absolute, and "**" (or "" from a bare "/") is the double star.
	comps []string
	err   error // a glob that does not parse; reported when first used
}

func newFindPattern(s string) findPattern {
	if s == "" {
		return findPattern{all: true}
	}
	p := findPattern{}
	p.match, p.err = filter.ParsePattern(s)
	// Negation means nothing to find: restic's Match drops the "!".
	s = strings.TrimPrefix(s, "!")
	p.comps = strings.Split(filepath.Clean(s), "/")
	if p.comps[0] == "" {
		p.comps[0] = "/"
	}
	return p
}

// Match reports whether the pattern matches path p.
func (f findPattern) Match(p string) (bool, error) {
	if f.all {
		return true, nil
	}
	if f.err != nil {
		return false, f.err
	}
	return f.match.Match(p), nil
}

// ChildMayMatch reports whether something below directory p may match: a
// relative pattern always may; an absolute one when its part before the
// first "**" matches p as far as both go.
func (f findPattern) ChildMayMatch(p string) (bool, error) {
	if f.all || f.comps[0] != "/" {
		return true, nil
	}
	if f.err != nil {
		return false, f.err
	}
	strs := strings.Split(p, "/")
	if strs[0] == "" {
		strs[0] = "/"
	}
	for i, c := range f.comps {
		if c == "**" || c == "" {
			if len(strs) >= i {
				strs = strs[:i]
			}
			break
		}
	}
	n := min(len(strs), len(f.comps))
	if n <= 1 {
		// Only the root is left to compare, and it always matches.
		return len(strs) >= 1 && strs[0] == "/", nil
	}
	prefix, err := filter.ParsePattern("/" + strings.Join(f.comps[1:n], "/"))
	if err != nil {
		return false, err
	}
	return prefix.Match(strings.Join(strs[:n], "/")[1:]), nil
}
