package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/text/encoding/unicode"
)

// decodeText strips a UTF-8 byte-order mark and converts UTF-16 with a
// byte-order mark to UTF-8; anything else is taken as UTF-8 (or raw
// bytes), as restic reads its list files.
func decodeText(data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xef, 0xbb, 0xbf}):
		return data[3:], nil
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}), bytes.HasPrefix(data, []byte{0xff, 0xfe}):
		out, err := unicode.UTF16(unicode.BigEndian, unicode.UseBOM).NewDecoder().Bytes(data)
		if err != nil {
			return nil, fmt.Errorf("decode UTF-16: %w", err)
		}
		return out, nil
	}
	return data, nil
}

// readTextLines returns the lines of a text list, after decodeText.
// Trailing carriage returns are dropped.
func readTextLines(r io.Reader) ([]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if data, err = decodeText(data); err != nil {
		return nil, err
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// ReadPatternFiles reads exclude patterns from files the way restic reads
// --exclude-file: leading and trailing white space trimmed, empty lines and
// lines starting with "#" skipped, environment variables expanded with
// getenv (nil means os.Getenv; "$$" stands for "$").
func ReadPatternFiles(names []string, getenv func(string) string) ([]string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	expand := func(key string) string {
		if key == "$" {
			return "$"
		}
		return getenv(key)
	}
	var patterns []string
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("read patterns from %q: %w", name, err)
		}
		lines, err := readTextLines(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read patterns from %q: %w", name, err)
		}
		for _, line := range lines {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			patterns = append(patterns, os.Expand(line, expand))
		}
	}
	return patterns, nil
}

// FilesFrom collects backup targets from list files like restic's
// --files-from, --files-from-verbatim and --files-from-raw. A list named
// "-" is read from Stdin.
type FilesFrom struct {
	// Patterns are --files-from lists: one glob pattern a line (expanded
	// with filepath.Glob), white space trimmed, empty lines and lines
	// starting with "#" ignored.
	Patterns []string
	// Verbatim are --files-from-verbatim lists: one path a line, taken as
	// is; only empty lines are ignored.
	Verbatim []string
	// Raw are --files-from-raw lists: paths each terminated by a NUL byte,
	// so they may hold newlines and bytes that are not UTF-8.
	Raw []string
	// Stdin is read for a list named "-".
	Stdin io.Reader
	// Warn receives patterns that match nothing; nil discards them.
	Warn func(msg string)
}

// Targets returns the targets of all lists followed by args, in restic's
// order: pattern lists, verbatim lists, raw lists, then the arguments.
// Whether the targets exist is checked later, by the source.
func (ff FilesFrom) Targets(args []string) ([]string, error) {
	var targets []string
	for _, name := range ff.Patterns {
		r, closeFn, err := ff.open(name)
		if err != nil {
			return nil, err
		}
		got, err := ReadFilesFrom(r, ff.Warn)
		closeFn()
		if err != nil {
			return nil, fmt.Errorf("--files-from %s: %w", name, err)
		}
		targets = append(targets, got...)
	}
	for _, name := range ff.Verbatim {
		r, closeFn, err := ff.open(name)
		if err != nil {
			return nil, err
		}
		got, err := ReadFilesFromVerbatim(r)
		closeFn()
		if err != nil {
			return nil, fmt.Errorf("--files-from-verbatim %s: %w", name, err)
		}
		targets = append(targets, got...)
	}
	for _, name := range ff.Raw {
		r, closeFn, err := ff.open(name)
		if err != nil {
			return nil, err
		}
		got, err := ReadFilesFromRaw(r)
		closeFn()
		if err != nil {
			return nil, fmt.Errorf("--files-from-raw %s: %w", name, err)
		}
		targets = append(targets, got...)
	}
	return append(targets, args...), nil
}

func (ff FilesFrom) open(name string) (io.Reader, func(), error) {
	if name == "-" {
		if ff.Stdin == nil {
			return nil, nil, errors.New(`list "-" given but no standard input`)
		}
		return ff.Stdin, func() {}, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("open list of files: %w", err)
	}
	return f, func() { f.Close() }, nil
}

// ReadFilesFrom reads a --files-from list and expands each pattern with
// filepath.Glob; a pattern that matches nothing is reported to warn and
// skipped.
func ReadFilesFrom(r io.Reader, warn func(string)) ([]string, error) {
	lines, err := readTextLines(r)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		matches, err := filepath.Glob(line)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", line, err)
		}
		if len(matches) == 0 && warn != nil {
			warn(fmt.Sprintf("pattern %q does not match any files, skipping", line))
		}
		out = append(out, matches...)
	}
	return out, nil
}

// ReadFilesFromVerbatim reads a --files-from-verbatim list: every non-empty
// line is a path, white space and "#" included.
func ReadFilesFromVerbatim(r io.Reader) ([]string, error) {
	lines, err := readTextLines(r)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range lines {
		if line != "" {
			out = append(out, line)
		}
	}
	return out, nil
}

// ReadFilesFromRaw reads a --files-from-raw list: paths each terminated by
// a NUL byte. A missing final NUL or an empty path is an error, as in
// restic (an empty path would otherwise mean the current directory).
func ReadFilesFromRaw(r io.Reader) ([]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, 0)
		switch {
		case i < 0:
			return nil, errors.New("trailing zero byte missing")
		case i == 0:
			return nil, errors.New("empty file name in listing")
		}
		out = append(out, string(data[:i]))
		data = data[i+1:]
	}
	return out, nil
}
