package sshx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// configLine is one "Keyword args…" line of an ssh_config file, with
// Include directives already replaced by the lines of the included files.
type configLine struct {
	keyword string // lower case
	args    []string
	file    string
	line    int
}

func (l configLine) where() string { return fmt.Sprintf("%s:%d", l.file, l.line) }

// maxIncludeDepth bounds Include recursion as OpenSSH does (it allows 16).
const maxIncludeDepth = 16

// readConfigFile parses the ssh_config file at name. A relative Include is
// resolved against includeBase (~/.ssh for user files, /etc/ssh for the
// system file), as OpenSSH does.
func readConfigFile(name, includeBase, home string) ([]configLine, error) {
	return readConfigDepth(name, includeBase, home, 0)
}

func readConfigDepth(name, includeBase, home string, depth int) ([]configLine, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read ssh config: %w", err)
	}
	return parseConfig(data, name, includeBase, home, depth)
}

// parseConfig parses ssh_config text. Include lines are expanded in place,
// so a Host line inside an included file affects the lines after the
// Include, exactly like OpenSSH's single pass over its configuration.
func parseConfig(data []byte, name, includeBase, home string, depth int) ([]configLine, error) {
	var out []configLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		kw, args, err := splitConfigLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("ssh config %s:%d: %w", name, n, err)
		}
		if kw == "" {
			continue
		}
		l := configLine{keyword: kw, args: args, file: name, line: n}
		if kw != "include" {
			out = append(out, l)
			continue
		}
		if depth >= maxIncludeDepth {
			return nil, fmt.Errorf("ssh config %s: Include nested deeper than %d levels", l.where(), maxIncludeDepth)
		}
		for _, pat := range args {
			pat = expandTilde(pat, home)
			if !filepath.IsAbs(pat) {
				pat = filepath.Join(includeBase, pat)
			}
			matches, err := filepath.Glob(pat)
			if err != nil {
				return nil, fmt.Errorf("ssh config %s: Include %q: %w", l.where(), pat, err)
			}
			slices.Sort(matches) // OpenSSH includes glob matches in lexical order
			for _, m := range matches {
				lines, err := readConfigDepth(m, includeBase, home, depth+1)
				if err != nil {
					return nil, fmt.Errorf("ssh config %s: %w", l.where(), err)
				}
				out = append(out, lines...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", name, err)
	}
	return out, nil
}

// splitConfigLine splits a line into its lower-cased keyword and arguments.
// It accepts "Keyword value", "Keyword=value" and "Keyword = value",
// double- or single-quoted arguments with backslash escapes, and drops an
// unquoted "#" comment.
func splitConfigLine(s string) (string, []string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s[0] == '#' {
		return "", nil, nil
	}
	i := strings.IndexAny(s, " \t=")
	if i < 0 {
		return "", nil, fmt.Errorf("keyword %q without a value", s)
	}
	kw := strings.ToLower(s[:i])
	rest := strings.TrimLeft(s[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	args, err := splitWords(rest, true)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", kw, err)
	}
	if len(args) == 0 {
		return "", nil, fmt.Errorf("keyword %q without a value", kw)
	}
	return kw, args, nil
}

// splitWords splits s at unquoted white space, honouring double and single
// quotes and backslash escapes. With comments set, an unquoted word that
// starts with "#" ends the line.
func splitWords(s string, comments bool) ([]string, error) {
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   byte
		escaped bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			cur.WriteByte(c)
			escaped = false
		case c == '\\' && quote != '\'':
			escaped = true
			inWord = true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '#' && !inWord && comments:
			return words, nil
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if escaped {
		return nil, errors.New("trailing backslash")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// multiKeywords accumulate every value; every other keyword keeps the first
// value obtained, as in OpenSSH.
var multiKeywords = map[string]bool{"identityfile": true, "certificatefile": true}

// hostConfig holds the ssh_config values that apply to one host: for each
// keyword, the argument lists of its active lines in order.
type hostConfig struct {
	vals  map[string][][]string
	where map[string]string // keyword -> file:line of the value used
}

// get returns the first value of kw joined into one string, or "".
func (h hostConfig) get(kw string) string {
	if v := h.vals[kw]; len(v) > 0 {
		return v[0][0]
	}
	return ""
}

// args returns all arguments of the first kw line.
func (h hostConfig) args(kw string) []string {
	if v := h.vals[kw]; len(v) > 0 {
		return v[0]
	}
	return nil
}

// all returns the arguments of every active kw line (for IdentityFile).
func (h hostConfig) all(kw string) []string {
	var out []string
	for _, a := range h.vals[kw] {
		out = append(out, a...)
	}
	return out
}

// matchState is what Host and Match lines are evaluated against.
type matchState struct {
	originalHost string // the host as the user wrote it, lower case
	user         string // remote user if already known
	localUser    string
}

// evaluate walks lines once and collects the values active for st, as
// OpenSSH's readconf does: a Host or Match line switches collection on or
// off for the lines that follow it. Unsupported Match criteria (exec,
// canonical, final, tagged, …) never match, so their settings are not
// applied; warn reports them.
func evaluate(lines []configLine, st matchState, warn func(string, ...any)) hostConfig {
	hc := hostConfig{vals: map[string][][]string{}, where: map[string]string{}}
	active := true
	for _, l := range lines {
		switch l.keyword {
		case "host":
			active = matchHostLine(l.args, st.originalHost)
			continue
		case "match":
			hostname := st.originalHost
			if h := hc.get("hostname"); h != "" {
				hostname = strings.ToLower(expandHostName(h, st.originalHost))
			}
			user := st.user
			if user == "" {
				user = hc.get("user")
			}
			ok, err := evalMatch(l.args, st, hostname, user)
			if err != nil {
				warn("ssh config %s: %v; treating the Match block as not matching", l.where(), err)
			}
			active = ok
			continue
		}
		if !active {
			continue
		}
		if _, seen := hc.vals[l.keyword]; seen && !multiKeywords[l.keyword] {
			continue
		}
		hc.vals[l.keyword] = append(hc.vals[l.keyword], l.args)
		if _, ok := hc.where[l.keyword]; !ok {
			hc.where[l.keyword] = l.where()
		}
	}
	return hc
}

// matchHostLine implements "Host pattern…": true if some pattern matches
// host and no negated ("!") pattern does.
func matchHostLine(patterns []string, host string) bool {
	matched := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if !wildcardMatch(strings.ToLower(p), host) {
			continue
		}
		if neg {
			return false
		}
		matched = true
	}
	return matched
}

// matchPatternList implements OpenSSH's comma-separated pattern lists
// ("a*,!b"), used by Match criteria.
func matchPatternList(list, s string) bool {
	return matchHostLine(strings.Split(list, ","), strings.ToLower(s))
}

// evalMatch evaluates the criteria of a Match line. Supported: all, host,
// originalhost, user, localuser, each optionally negated with "!".
func evalMatch(args []string, st matchState, hostname, user string) (bool, error) {
	if len(args) == 1 && strings.EqualFold(args[0], "all") {
		return true, nil
	}
	result := true
	for i := 0; i < len(args); i++ {
		crit := strings.ToLower(args[i])
		neg := strings.HasPrefix(crit, "!")
		crit = strings.TrimPrefix(crit, "!")
		var subject string
		switch crit {
		case "all":
			continue
		case "host":
			subject = hostname
		case "originalhost":
			subject = st.originalHost
		case "user":
			subject = user
		case "localuser":
			subject = st.localUser
		default:
			return false, fmt.Errorf("unsupported Match criterion %q", args[i])
		}
		if i+1 >= len(args) {
			return false, fmt.Errorf("Match %s without a pattern", crit)
		}
		i++
		if matchPatternList(args[i], subject) == neg {
			result = false
		}
	}
	return result, nil
}

// wildcardMatch matches s against an ssh pattern with "*" (any run) and "?"
// (one character). path.Match would treat "[" specially; ssh does not.
func wildcardMatch(pat, s string) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			pat = strings.TrimLeft(pat, "*")
			if pat == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if wildcardMatch(pat, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			pat, s = pat[1:], s[1:]
		default:
			if s == "" || pat[0] != s[0] {
				return false
			}
			pat, s = pat[1:], s[1:]
		}
	}
	return s == ""
}

// fileExists reports whether p exists, treating errors other than "not
// found" as existence so that a later open reports them.
func fileExists(p string) bool {
	_, err := os.Stat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
