package location

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cairn-backup/cairn/backend"
)

// Scheme describes one kind of repository location for a Registry. C is the
// backend's parsed configuration (sftp.Config, rest.Config, a path …).
type Scheme[C any] struct {
	// Name is the location prefix before the colon ("sftp" for
	// "sftp:host:/repo") and the namespace of the scheme's options
	// ("sftp.connections"). Lower case letters and digits only.
	Name string
	// Parse parses a whole location string, prefix included.
	Parse func(location string) (C, error)
	// SetOption applies one "-o Name.key=value" option to cfg; key comes
	// without the "Name." prefix. nil means the scheme takes no options.
	SetOption func(cfg *C, key, value string) error
	// Open opens the location of an existing repository. A location that
	// does not exist is reported with an error wrapping
	// backend.ErrNoRepository.
	Open func(ctx context.Context, cfg C) (backend.Backend, error)
	// Create returns a backend for a location where a repository is about
	// to be created (the repository's Init prepares it through
	// backend.Creator). nil means Open is used.
	Create func(ctx context.Context, cfg C) (backend.Backend, error)
	// StripPassword returns the location with its secrets replaced, for
	// messages. nil means StripURLPassword.
	StripPassword func(location string) string
}

// entry is a Scheme with its config type erased, so that one Registry can
// hold schemes of different config types.
type entry interface {
	name() string
	parse(location string, opts Options) (any, error)
	open(ctx context.Context, cfg any, create bool) (backend.Backend, error)
	strip(location string) string
}

type schemeEntry[C any] struct{ s Scheme[C] }

func (e schemeEntry[C]) name() string { return e.s.Name }

func (e schemeEntry[C]) parse(location string, opts Options) (any, error) {
	cfg, err := e.s.Parse(location)
	if err != nil {
		return nil, err
	}
	for _, key := range opts.sortedKeys() {
		if namespace(key) != e.s.Name {
			continue
		}
		name := strings.TrimPrefix(key, e.s.Name+".")
		if e.s.SetOption == nil {
			return nil, fmt.Errorf("option %s is not known: the %s backend takes no options", key, e.s.Name)
		}
		if err := e.s.SetOption(&cfg, name, opts[key]); err != nil {
			return nil, fmt.Errorf("option %s: %w", key, err)
		}
	}
	return cfg, nil
}

func (e schemeEntry[C]) open(ctx context.Context, cfg any, create bool) (backend.Backend, error) {
	c, ok := cfg.(C)
	if !ok {
		return nil, fmt.Errorf("%s: config of type %T, want %T (internal error)", e.s.Name, cfg, c)
	}
	if create && e.s.Create != nil {
		return e.s.Create(ctx, c)
	}
	return e.s.Open(ctx, c)
}

func (e schemeEntry[C]) strip(location string) string {
	if e.s.StripPassword != nil {
		return e.s.StripPassword(location)
	}
	return StripURLPassword(location)
}

// Registry maps repository strings to backends. Build one with New and
// Register; it is safe for concurrent use once built.
type Registry struct {
	schemes map[string]entry
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{schemes: make(map[string]entry)}
}

// Register adds a scheme. It fails for an invalid or duplicate name and for
// a scheme without Parse or Open.
func Register[C any](r *Registry, s Scheme[C]) error {
	if !validSchemeName(s.Name) {
		return fmt.Errorf("location: invalid scheme name %q (want lower case letters and digits)", s.Name)
	}
	if s.Parse == nil || s.Open == nil {
		return fmt.Errorf("location: scheme %s needs Parse and Open", s.Name)
	}
	if _, dup := r.schemes[s.Name]; dup {
		return fmt.Errorf("location: scheme %s registered twice", s.Name)
	}
	r.schemes[s.Name] = schemeEntry[C]{s: s}
	return nil
}

func validSchemeName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Schemes returns the registered scheme names, sorted.
func (r *Registry) Schemes() []string {
	names := make([]string, 0, len(r.schemes))
	for n := range r.schemes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// resticSchemes are the location prefixes restic 0.19.1 knows. A location
// using one that is not registered gets a clear "not supported" error
// instead of being taken for a local path, and options in their namespace
// are tolerated.
var resticSchemes = []string{"azure", "b2", "gs", "local", "rclone", "rest", "s3", "sftp", "swift"}

func isResticScheme(name string) bool {
	for _, s := range resticSchemes {
		if s == name {
			return true
		}
	}
	return false
}

// ErrUnsupported is wrapped by the error for a location whose scheme restic
// knows but this registry does not offer.
var ErrUnsupported = errors.New("backend not supported")

// Location is a parsed repository string with its options applied.
type Location struct {
	// Scheme is the registered scheme that handles the location.
	Scheme string
	raw    string // as given: may hold a password, never printed
	cfg    any
	e      entry
}

// String returns the location with any password replaced by "***".
func (l *Location) String() string { return l.e.strip(l.raw) }

// Config returns the scheme's parsed configuration (for example a
// sftp.Config), with the options applied.
func (l *Location) Config() any { return l.cfg }

// Open opens the location of an existing repository. Errors wrap
// backend.ErrNoRepository when the location does not exist.
func (l *Location) Open(ctx context.Context) (backend.Backend, error) {
	be, err := l.e.open(ctx, l.cfg, false)
	if err != nil {
		return nil, scrubError(fmt.Errorf("open %s repository at %s: %w", l.Scheme, l, err), l.raw)
	}
	return be, nil
}

// Create returns a backend for a new repository at the location.
func (l *Location) Create(ctx context.Context) (backend.Backend, error) {
	be, err := l.e.open(ctx, l.cfg, true)
	if err != nil {
		return nil, scrubError(fmt.Errorf("create %s repository at %s: %w", l.Scheme, l, err), l.raw)
	}
	return be, nil
}

// Parse parses a repository string and applies the options that belong to
// its scheme (see the package documentation for the rules).
func (r *Registry) Parse(s string, opts Options) (*Location, error) {
	if s == "" {
		return nil, errors.New("empty repository location")
	}
	name, isScheme := r.scheme(s)
	if err := r.checkOptions(opts); err != nil {
		return nil, err
	}
	var e entry
	raw := s
	switch {
	case isScheme:
		e = r.schemes[name]
	// The two errors below do not quote the location: nothing says
	// which part of an unparsed string is a secret.
	case isResticScheme(name):
		return nil, fmt.Errorf("repository location %q…: %w: cairn has no %s backend (available: %s)",
			name+":", ErrUnsupported, name, strings.Join(r.Schemes(), ", "))
	case !isPath(s) && strings.ContainsRune(s, ':'):
		return nil, fmt.Errorf("repository location %q…: invalid backend %q; if the repository is in a local directory, add a \"local:\" prefix",
			name+":", name)
	default:
		e = r.schemes["local"]
		if e == nil {
			return nil, fmt.Errorf("repository %s: %w: no local backend registered", s, ErrUnsupported)
		}
		name, raw = "local", "local:"+s
	}
	cfg, err := e.parse(raw, opts)
	if err != nil {
		return nil, scrubError(fmt.Errorf("repository %s: %w", e.strip(raw), err), raw)
	}
	return &Location{Scheme: name, raw: raw, cfg: cfg, e: e}, nil
}

// scheme returns the text before the first colon and whether it names a
// registered scheme.
func (r *Registry) scheme(s string) (string, bool) {
	name, _, ok := strings.Cut(s, ":")
	if !ok {
		return "", false
	}
	_, known := r.schemes[name]
	return name, known
}

// checkOptions refuses options whose namespace is neither registered nor
// one of restic's schemes, so that a misspelt option is noticed.
func (r *Registry) checkOptions(opts Options) error {
	for _, key := range opts.sortedKeys() {
		ns := namespace(key)
		if _, ok := r.schemes[ns]; ok || isResticScheme(ns) {
			continue
		}
		return fmt.Errorf("option %s is not known (options are named scheme.option, schemes: %s)", key, strings.Join(r.Schemes(), ", "))
	}
	return nil
}

// Open parses s and opens the existing repository location.
func (r *Registry) Open(ctx context.Context, s string, opts Options) (backend.Backend, error) {
	l, err := r.Parse(s, opts)
	if err != nil {
		return nil, err
	}
	return l.Open(ctx)
}

// Create parses s and returns a backend for a new repository there.
func (r *Registry) Create(ctx context.Context, s string, opts Options) (backend.Backend, error) {
	l, err := r.Parse(s, opts)
	if err != nil {
		return nil, err
	}
	return l.Create(ctx)
}

// StripPassword returns s with its secrets replaced, using the scheme's
// own rule when it is registered and StripURLPassword otherwise. It never
// fails, so it is safe for anything a user typed.
func (r *Registry) StripPassword(s string) string {
	if name, ok := r.scheme(s); ok {
		return r.schemes[name].strip(s)
	}
	return StripURLPassword(s)
}

// isPath reports whether s is unambiguously a local path, with restic's
// rules: relative to the parent ("../"), absolute ("/" or "\"), or a
// Windows drive path ("C:\", "C:/").
func isPath(s string) bool {
	if strings.HasPrefix(s, "../") || strings.HasPrefix(s, `..\`) ||
		strings.HasPrefix(s, "/") || strings.HasPrefix(s, `\`) {
		return true
	}
	if len(s) < 3 || s[1] != ':' || s[2] != '/' && s[2] != '\\' {
		return false
	}
	c := s[0]
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
