package restore

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cairn-backup/cairn/sources/filter"
)

// patternList is an ordered list of restic patterns, as restic's restore
// applies them: a path matches when a pattern matches it and no later
// negated ("!") pattern matches it too. Matching itself is
// sources/filter's; what restore adds is the "may a child match" question
// that lets it skip subtrees an include list can never select.
type patternList struct {
	pats []filter.Pattern
	// prefix holds, for each absolute pattern, its components (the first
	// is "/") up to its first "**"; nil for a relative pattern, which may
	// match below any directory.
	prefix [][]string
	hasNeg bool
	lower  bool // lower-case paths before matching (--iinclude, --iexclude)
}

func newPatternList(strs []string, lower bool, flag string) (*patternList, error) {
	l := &patternList{lower: lower}
	var bad []string
	for _, s := range strs {
		if s == "" {
			continue // restic ignores empty patterns
		}
		if lower {
			s = strings.ToLower(s)
		}
		p, err := filter.ParsePattern(s)
		if err != nil {
			bad = append(bad, s)
			continue
		}
		l.pats = append(l.pats, p)
		l.prefix = append(l.prefix, absolutePrefix(strings.TrimPrefix(s, "!")))
		l.hasNeg = l.hasNeg || p.Negated()
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%s: invalid pattern(s): %q", flag, bad)
	}
	if len(l.pats) == 0 {
		return nil, nil
	}
	return l, nil
}

// absolutePrefix returns the components of an absolute pattern before its
// first "**", or nil for a relative pattern.
func absolutePrefix(s string) []string {
	parts := strings.Split(filepath.Clean(s), "/")
	if parts[0] != "" || len(parts) < 2 {
		return nil
	}
	out := []string{"/"}
	for _, p := range parts[1:] {
		// Clean leaves an empty component only for the pattern "/", which
		// restic reads as "/**".
		if p == "**" || p == "" {
			break
		}
		out = append(out, p)
	}
	return out
}

// childMayMatch reports whether something below the directory with
// components comps could match pattern i: always for a relative pattern,
// and for an absolute one when the directory agrees with the pattern's
// components as far as both go (up to the first "**").
func (l *patternList) childMayMatch(i int, comps []string) bool {
	prefix := l.prefix[i]
	if prefix == nil {
		return true
	}
	n := min(len(prefix), len(comps))
	for j := 1; j < n; j++ {
		if !componentMatch(prefix[j], comps[j]) {
			return false
		}
	}
	return true
}

func componentMatch(pattern, name string) bool {
	if !strings.ContainsAny(pattern, `\[]*?`) {
		return pattern == name
	}
	ok, err := filepath.Match(pattern, name)
	return err == nil && ok
}

// match reports whether path (absolute, slash-separated) matches the list
// and, when withChild is set, whether a path below it might.
func (l *patternList) match(path string, withChild bool) (matched, childMay bool) {
	if l.lower {
		path = strings.ToLower(path)
	}
	var comps []string
	if withChild {
		comps = strings.Split(path, "/")
		comps[0] = "/"
	}
	for i, p := range l.pats {
		m := p.Match(path)
		c := true
		if withChild {
			c = l.childMayMatch(i, comps)
		}
		if p.Negated() {
			matched = matched && !m
			childMay = childMay && !m
			continue
		}
		matched = matched || m
		childMay = childMay || c
		if matched && childMay && !l.hasNeg {
			break // nothing later can change the answer
		}
	}
	return matched, childMay
}

// selector decides which nodes are restored, with restic's rules: an
// exclude list restores everything it does not match (and does not look
// below an excluded directory); an include list restores what it matches
// and looks below every directory under which something might match.
type selector struct {
	include, exclude []*patternList
}

func newSelector(o *Options) (*selector, error) {
	s := &selector{}
	add := func(dst *[]*patternList, strs []string, lower bool, flag string) error {
		l, err := newPatternList(strs, lower, flag)
		if err != nil {
			return err
		}
		if l != nil {
			*dst = append(*dst, l)
		}
		return nil
	}
	for _, a := range []struct {
		dst   *[]*patternList
		strs  []string
		lower bool
		flag  string
	}{
		{&s.exclude, o.Exclude, false, "--exclude"},
		{&s.exclude, o.IExclude, true, "--iexclude"},
		{&s.include, o.IInclude, true, "--iinclude"},
		{&s.include, o.Include, false, "--include"},
	} {
		if err := add(a.dst, a.strs, a.lower, a.flag); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	return s, nil
}

// selects reports whether the node at path (inside the restored tree, with
// a leading "/") is restored, and whether a directory's children may be.
func (s *selector) selects(path string, isDir bool) (selected, childMay bool) {
	switch {
	case len(s.exclude) > 0:
		for _, l := range s.exclude {
			if m, _ := l.match(path, false); m {
				return false, false
			}
		}
		return true, isDir
	case len(s.include) > 0:
		for _, l := range s.include {
			m, c := l.match(path, true)
			selected = selected || m
			childMay = childMay || c
			if selected && childMay {
				break
			}
		}
		return selected, childMay && isDir
	}
	return true, isDir
}

// xattrSelector decides which extended attributes are restored.
type xattrSelector struct {
	include, exclude *patternList
}

func newXattrSelector(o *Options) (*xattrSelector, error) {
	inc, err := newPatternList(o.IncludeXattr, false, "--include-xattr")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	exc, err := newPatternList(o.ExcludeXattr, false, "--exclude-xattr")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	return &xattrSelector{include: inc, exclude: exc}, nil
}

func (x *xattrSelector) selects(name string) bool {
	switch {
	case x.exclude != nil:
		m, _ := x.exclude.match(name, false)
		return !m
	case x.include != nil:
		m, _ := x.include.match(name, false)
		return m
	}
	return true
}
