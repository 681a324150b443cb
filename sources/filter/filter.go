package filter

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/cairn-backup/cairn/internal/units"
	"github.com/cairn-backup/cairn/sources"
)

// CacheDirTag is the marker --exclude-caches looks for, with the signature
// its content must start with (https://bford.info/cachedir/).
const CacheDirTag = "CACHEDIR.TAG:Signature: 8a477f597d28d172789f06886806bc55"

// Options are restic's exclude options, by the name of their flags. The
// zero value excludes nothing.
type Options struct {
	// Excludes are --exclude patterns.
	Excludes []string
	// InsensitiveExcludes are --iexclude patterns, matched ignoring case.
	InsensitiveExcludes []string
	// ExcludeFiles are --exclude-file files: one pattern a line, blank
	// lines and lines starting with "#" ignored, leading and trailing space
	// trimmed, $VAR and ${VAR} expanded ($$ is a dollar sign). Their
	// patterns follow Excludes, so a "!" pattern in a file can cancel an
	// --exclude.
	ExcludeFiles []string
	// InsensitiveExcludeFiles are --iexclude-file files.
	InsensitiveExcludeFiles []string
	// ExcludeIfPresent are --exclude-if-present specs, "name" or
	// "name:header": a directory holding a file called name (that starts
	// with header, when given) keeps only that file.
	ExcludeIfPresent []string
	// ExcludeCaches is --exclude-caches: ExcludeIfPresent with CacheDirTag.
	ExcludeCaches bool
	// ExcludeLargerThan is --exclude-larger-than in restic's size syntax
	// ("2048", "10k", "20M", "1G", "2T"); "" means no limit.
	ExcludeLargerThan string

	// Warn receives problems that do not stop a backup (a marker file that
	// cannot be read or carries the wrong header), as restic prints them.
	// nil discards them. It may be called from several goroutines.
	Warn func(msg string)
	// Getenv expands variables in exclude files; nil means os.Getenv.
	Getenv func(key string) string
}

// Filter is restic's exclude logic as a sources.Excluder. It is safe for
// concurrent use: a source may consult it from several goroutines.
type Filter struct {
	exclude, iexclude patternList
	markers           []marker
	maxSize           int64 // -1: no limit
	warn              func(string)
}

var _ sources.Excluder = (*Filter)(nil)

// marker is one --exclude-if-present rule.
type marker struct {
	name   string
	header []byte
}

// New builds a Filter, reading the exclude files and checking every
// pattern and size; the error names the first option that is wrong.
func New(opts Options) (*Filter, error) {
	f := &Filter{maxSize: -1, warn: opts.Warn}
	if f.warn == nil {
		f.warn = func(string) {}
	}
	excludes := append([]string(nil), opts.Excludes...)
	fromFiles, err := ReadPatternFiles(opts.ExcludeFiles, opts.Getenv)
	if err != nil {
		return nil, err
	}
	excludes = append(excludes, fromFiles...)
	iexcludes := append([]string(nil), opts.InsensitiveExcludes...)
	fromFiles, err = ReadPatternFiles(opts.InsensitiveExcludeFiles, opts.Getenv)
	if err != nil {
		return nil, err
	}
	iexcludes = append(iexcludes, fromFiles...)

	if f.exclude, err = newPatternList(excludes, false); err != nil {
		return nil, fmt.Errorf("--exclude: %w", err)
	}
	if f.iexclude, err = newPatternList(iexcludes, true); err != nil {
		return nil, fmt.Errorf("--iexclude: %w", err)
	}

	specs := opts.ExcludeIfPresent
	if opts.ExcludeCaches {
		specs = append(append([]string(nil), specs...), CacheDirTag)
	}
	for _, spec := range specs {
		m, err := parseMarker(spec)
		if err != nil {
			return nil, fmt.Errorf("--exclude-if-present %q: %w", spec, err)
		}
		f.markers = append(f.markers, m)
	}

	if opts.ExcludeLargerThan != "" {
		if f.maxSize, err = units.ParseBytes(opts.ExcludeLargerThan); err != nil {
			return nil, fmt.Errorf("--exclude-larger-than: %w", err)
		}
	}
	return f, nil
}

// parseMarker splits "name[:header]" at the first colon.
func parseMarker(spec string) (marker, error) {
	name, header, _ := strings.Cut(spec, ":")
	if name == "" {
		return marker{}, errors.New("no name for the marker file")
	}
	if strings.Contains(name, "/") {
		return marker{}, errors.New("the marker must be a file name, not a path")
	}
	return marker{name: name, header: []byte(header)}, nil
}

// Excluded reports whether e is left out by a pattern or by its size.
func (f *Filter) Excluded(e *sources.Entry) bool {
	return f.ExcludedByName(e.HostPath) || f.ExcludedByMetadata(e)
}

// ExcludedByName reports whether the patterns leave hostPath out. Sources
// call it before reading an entry's metadata, as restic does, so excluded
// entries cost no system call and raise no errors.
func (f *Filter) ExcludedByName(hostPath string) bool {
	return f.exclude.matches(hostPath) || f.iexclude.matches(hostPath)
}

// ExcludedByMetadata reports whether e is left out by the rules that need
// its metadata: --exclude-larger-than, which restic applies to everything
// but directories (a symlink's size is the length of its target).
func (f *Filter) ExcludedByMetadata(e *sources.Entry) bool {
	if f.maxSize < 0 || e.Type == sources.Dir {
		return false
	}
	size := e.Size
	if e.Type == sources.Symlink {
		size = int64(len(e.LinkTarget))
	}
	return size > f.maxSize
}

// ExcludedByContents reports whether a marker file leaves the contents of
// directory dir out. restic keeps the directory and the marker itself; see
// ExcludedContents for sources that can do the same.
func (f *Filter) ExcludedByContents(dir *sources.Entry, peek func(name string, n int) ([]byte, error)) bool {
	excluded, _ := f.ExcludedContents(dir, peek)
	return excluded
}

// ExcludedContents reports whether the children of directory dir are left
// out because of --exclude-if-present or --exclude-caches markers inside
// it, and which children stay: like restic, a marker never excludes
// itself, so a directory with one kind of marker keeps that marker file
// (with two different markers present, each excludes the other). Problems
// with a marker (unreadable, too short, wrong header) are warnings, and
// that marker does not count.
func (f *Filter) ExcludedContents(dir *sources.Entry, peek func(name string, n int) ([]byte, error)) (excluded bool, keep []string) {
	var hit []string
	for _, m := range f.markers {
		if f.markerValid(dir, m, peek) {
			hit = append(hit, m.name)
		}
	}
	if len(hit) == 0 {
		return false, nil
	}
	for _, name := range hit[1:] {
		if name != hit[0] {
			return true, nil
		}
	}
	return true, hit[:1]
}

// markerValid checks one marker rule in dir.
func (f *Filter) markerValid(dir *sources.Entry, m marker, peek func(string, int) ([]byte, error)) bool {
	where := dir.HostPath + "/" + m.name
	data, err := peek(m.name, len(m.header))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false
	case err != nil:
		f.warn(fmt.Sprintf("could not read exclusion tagfile %s: %v", where, err))
		return false
	case len(m.header) == 0:
		return true // presence alone excludes
	case len(data) < len(m.header):
		f.warn(fmt.Sprintf("invalid (too short) signature in exclusion tagfile %s", where))
		return false
	case !bytes.Equal(data[:len(m.header)], m.header):
		f.warn(fmt.Sprintf("invalid signature in exclusion tagfile %s", where))
		return false
	}
	return true
}

// HasMarkers reports whether any --exclude-if-present rule is set, so a
// source can skip the per-directory check entirely.
func (f *Filter) HasMarkers() bool { return len(f.markers) > 0 }
