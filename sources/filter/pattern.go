package filter

import (
	"fmt"
	"path/filepath"
	"strings"
)

// partKind says how a pattern component matches a path component.
type partKind uint8

const (
	literal    partKind = iota // compared as bytes
	glob                       // filepath.Match syntax
	doubleStar                 // "**": any number of components
	rootMarker                 // the leading "/" of an absolute pattern
	anyOne                     // "*" produced by expanding "**"
)

type part struct {
	text string
	kind partKind
}

// Pattern is one parsed exclude pattern in restic's language: components
// separated by "/", each a filepath.Match pattern or "**"; a leading "/"
// anchors it at the root, otherwise it may match any run of consecutive
// components of a path (so "foo" matches "/a/foo/b"); a leading "!" negates
// it.
type Pattern struct {
	original string
	negated  bool
	parts    []part
}

// ParsePattern parses one pattern. The empty pattern is invalid here;
// restic ignores empty patterns, and so does New.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty pattern")
	}
	p := Pattern{original: s}
	if s[0] == '!' {
		p.negated = true
		s = s[1:]
	}
	comps := strings.Split(filepath.Clean(s), "/")
	for i, c := range comps {
		var pt part
		switch {
		case i == 0 && c == "" && len(comps) > 1:
			pt = part{"/", rootMarker}
		case c == "**" || c == "":
			// Clean leaves an empty component only in "/", which restic
			// then treats like "/**".
			pt = part{kind: doubleStar}
		case strings.ContainsAny(c, `\[]*?`):
			if _, err := filepath.Match(c, c); err != nil {
				return Pattern{}, fmt.Errorf("invalid pattern %q: %w", p.original, err)
			}
			pt = part{c, glob}
		default:
			pt = part{c, literal}
		}
		p.parts = append(p.parts, pt)
	}
	return p, nil
}

// String returns the pattern as it was given.
func (p Pattern) String() string { return p.original }

// Negated reports whether the pattern started with "!".
func (p Pattern) Negated() bool { return p.negated }

// Match reports whether the pattern (ignoring negation) matches path, a
// slash-separated path; absolute paths start with "/".
func (p Pattern) Match(path string) bool {
	if path == "" {
		return false
	}
	return matchParts(p.parts, splitPath(path))
}

// splitPath splits a cleaned path into components; an absolute path starts
// with the component "/".
func splitPath(path string) []string {
	comps := strings.Split(path, "/")
	if comps[0] == "" {
		comps[0] = "/"
	}
	return comps
}

// matchParts is restic's matching rule. A pattern with "**" is tried with
// the first "**" replaced by 0, 1, … single-component wildcards, up to one
// more than the path has room for beside the other pattern components (the
// bound restic uses: it makes "/**/a/**" miss "/x/y/a" while matching
// "/x/y/a/b", and copying it keeps tree shapes identical). Without "**" the
// pattern must match a run of consecutive components: starting at the root
// for an absolute pattern, anywhere after the root for a relative one, and
// not necessarily reaching the end of the path.
func matchParts(parts []part, strs []string) bool {
	for i, pt := range parts {
		if pt.kind != doubleStar {
			continue
		}
		expanded := make([]part, 0, len(strs)+len(parts))
		for k := 0; k <= len(strs)-len(parts)+1; k++ {
			expanded = append(expanded[:0], parts[:i]...)
			for range k {
				expanded = append(expanded, part{kind: anyOne})
			}
			expanded = append(expanded, parts[i+1:]...)
			if matchParts(expanded, strs) {
				return true
			}
		}
		return false
	}

	switch {
	case len(parts) == 0:
		return len(strs) == 0
	case len(parts) > len(strs):
		return false
	}
	first, last := 0, len(strs)-len(parts)
	if parts[0].kind == rootMarker {
		last = 0
	} else if strs[0] == "/" {
		first = 1
	}
	// restic tries the last possible position first; the result is the
	// same in any order.
	for off := last; off >= first; off-- {
		if matchAt(parts, strs[off:]) {
			return true
		}
	}
	return false
}

// matchAt reports whether parts match the first len(parts) components.
func matchAt(parts []part, strs []string) bool {
	for i := len(parts) - 1; i >= 0; i-- {
		pt, s := parts[i], strs[i]
		switch pt.kind {
		case literal, rootMarker:
			if pt.text != s {
				return false
			}
		case anyOne:
			// "*" matches any component; components never contain "/".
		case glob:
			if ok, _ := filepath.Match(pt.text, s); !ok {
				return false
			}
		}
	}
	return true
}

// patternList is an ordered list of patterns with restic's negation rule:
// a path is excluded when the last pattern that matches it is not negated.
type patternList struct {
	patterns    []Pattern
	hasNegation bool
	lower       bool // compare lower-cased (--iexclude)
}

func newPatternList(strs []string, lower bool) (patternList, error) {
	l := patternList{lower: lower}
	var bad []string
	for _, s := range strs {
		if s == "" {
			continue
		}
		if lower {
			s = strings.ToLower(s)
		}
		p, err := ParsePattern(s)
		if err != nil {
			bad = append(bad, s)
			continue
		}
		l.hasNegation = l.hasNegation || p.negated
		l.patterns = append(l.patterns, p)
	}
	if len(bad) > 0 {
		return l, fmt.Errorf("invalid pattern(s): %q", bad)
	}
	return l, nil
}

// matches reports whether the list excludes path.
func (l *patternList) matches(path string) bool {
	if len(l.patterns) == 0 || path == "" {
		return false
	}
	if l.lower {
		path = strings.ToLower(path)
	}
	strs := splitPath(path)
	matched := false
	for i := range l.patterns {
		p := &l.patterns[i]
		if p.negated {
			if matched && matchParts(p.parts, strs) {
				matched = false
			}
			continue
		}
		if !matched && matchParts(p.parts, strs) {
			matched = true
			if !l.hasNegation {
				return true
			}
		}
	}
	return matched
}
