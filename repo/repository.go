package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/crypto"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/cache"
	"github.com/cairn-backup/cairn/repo/index"
)

// Pack size limits, like restic's --pack-size (given there in MiB).
const (
	DefaultPackSize = 16 << 20
	MinPackSize     = 4 << 20
	MaxPackSize     = 128 << 20
)

// Options tune how a repository is used. The zero value means restic's
// defaults.
type Options struct {
	// Compression for data blobs in v2 repositories (default auto).
	Compression Compression
	// PackSize is the target size of new packs in bytes (default 16 MiB,
	// allowed 4–128 MiB).
	PackSize uint
	// KeyHint is a key ID (or prefix) to try first when opening.
	KeyHint string
	// TempDir holds packs while they are assembled (default os.TempDir()).
	TempDir string
	// CacheDir is the base directory of the local cache (see
	// cache.DefaultDir); empty means no cache.
	CacheDir string
}

func (o Options) packSize() (uint, error) {
	switch {
	case o.PackSize == 0:
		return DefaultPackSize, nil
	case o.PackSize < MinPackSize || o.PackSize > MaxPackSize:
		return 0, fmt.Errorf("pack size %d MiB out of range (4–128 MiB)", o.PackSize>>20)
	}
	return o.PackSize, nil
}

// Repository is an open repository. It is safe for concurrent use.
type Repository struct {
	be    backend.Backend
	key   *crypto.Key
	keyID blob.ID
	cfg   Config
	opts  Options
	idx   *index.Index

	indexMu     sync.Mutex
	indexLoaded bool
}

// InitOptions describe a new repository.
type InitOptions struct {
	// Version of the format: 1 or 2; 0 means 2 (restic's "stable").
	Version uint
	// Polynomial to chunk with; 0 picks a random one. Copy another
	// repository's polynomial so that data deduplicates between the two.
	Polynomial chunk.Pol
	// Key describes the first key.
	Key KeyOptions
}

// Init creates a repository in an empty location: it prepares the backend
// (directories, bucket), writes a key for password and the config. It
// refuses a location that already holds a config, keys or snapshots.
func Init(ctx context.Context, be backend.Backend, password string, iopts InitOptions, opts Options) (*Repository, error) {
	if password == "" {
		return nil, errors.New("init: empty password")
	}
	version := iopts.Version
	if version == 0 {
		version = StableVersion
	}
	if _, err := opts.packSize(); err != nil {
		return nil, err
	}
	cfg, err := NewConfig(version, iopts.Polynomial)
	if err != nil {
		return nil, err
	}
	if c, ok := be.(backend.Creator); ok {
		if err := c.Create(ctx); err != nil {
			return nil, fmt.Errorf("create repository at %s: %w", be.Location(), err)
		}
	}
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); err == nil {
		return nil, fmt.Errorf("init %s: config file already exists", be.Location())
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("init %s: stat config: %w", be.Location(), err)
	}
	for _, t := range []backend.FileType{backend.KeyFile, backend.SnapshotFile} {
		found := false
		err := be.List(ctx, t, func(backend.FileInfo) error { found = true; return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return nil, fmt.Errorf("init %s: list %s files: %w", be.Location(), t, err)
		}
		if found {
			// Snapshots without config and keys happen when a retention
			// policy removed them: never paper over such a repository.
			return nil, fmt.Errorf("init %s: location already contains %s files", be.Location(), t)
		}
	}
	master := crypto.NewRandomKey()
	keyID, err := writeKey(ctx, be, password, master, iopts.Key)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", be.Location(), err)
	}
	plain, err := cfg.marshal()
	if err != nil {
		return nil, err
	}
	sealed := master.Seal(nil, plain)
	if err := be.Save(ctx, backend.Handle{Type: backend.ConfigFile}, backend.NewByteReader(sealed, false)); err != nil {
		return nil, fmt.Errorf("init %s: save config: %w", be.Location(), err)
	}
	return &Repository{be: be, key: master, keyID: keyID, cfg: cfg, opts: opts, idx: index.New(), indexLoaded: true}, nil
}

var errStop = errors.New("stop listing")

// Open opens the repository in be with password. It returns an error
// wrapping backend.ErrNoRepository when there is no config file and
// ErrWrongPassword when no key opens. The index is not loaded yet: call
// LoadIndex before working with blobs.
func Open(ctx context.Context, be backend.Backend, password string, opts Options) (*Repository, error) {
	if _, err := opts.packSize(); err != nil {
		return nil, err
	}
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open %s: %w", be.Location(), backend.ErrNoRepository)
		}
		return nil, fmt.Errorf("open %s: %w", be.Location(), err)
	}
	key, keyID, err := findKey(ctx, be, password, opts.KeyHint, maxKeysTried)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", be.Location(), err)
	}
	sealed, err := backend.LoadAll(ctx, be, backend.Handle{Type: backend.ConfigFile})
	if err != nil {
		return nil, fmt.Errorf("open %s: load config: %w", be.Location(), err)
	}
	plain, err := key.OpenInPlace(sealed)
	if err != nil {
		return nil, fmt.Errorf("open %s: config or key %s is damaged: %w", be.Location(), keyID.Str(), err)
	}
	cfg, err := parseConfig(plain)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", be.Location(), err)
	}
	if opts.CacheDir != "" {
		// The cache is named after the config id; a repository whose id is
		// not a valid name simply runs without one.
		if cbe, err := cache.Wrap(be, opts.CacheDir, cfg.ID); err == nil {
			be = cbe
		}
	}
	return &Repository{be: be, key: key, keyID: keyID, cfg: cfg, opts: opts, idx: index.New()}, nil
}

// Config returns the repository's config.
func (r *Repository) Config() Config { return r.cfg }

// Backend returns the storage the repository lives on.
func (r *Repository) Backend() backend.Backend { return r.be }

// Key returns the master key.
func (r *Repository) Key() *crypto.Key { return r.key }

// Index returns the in-memory index (empty until LoadIndex).
func (r *Repository) Index() *index.Index { return r.idx }

// Options returns the options the repository was opened with.
func (r *Repository) Options() Options { return r.opts }

// SetOptions changes compression and pack size for later writes.
func (r *Repository) SetOptions(opts Options) error {
	if _, err := opts.packSize(); err != nil {
		return err
	}
	r.opts = opts
	return nil
}

// Close closes the backend.
func (r *Repository) Close() error { return r.be.Close() }

// UpgradeV2 rewrites the config with version 2, restic's migrate
// upgrade_repo_v2: afterwards new data may be compressed. Existing data
// stays as it is. Only a version 1 repository can be upgraded.
//
// Like restic, the config as stored is first saved to a new temporary
// directory (file "config", mode 0600). On a backend without atomic
// replace the old config must be removed before the new one is written;
// if writing fails, the original is put back, and the error names the
// backup in case that fails too. The backup is removed after success.
func (r *Repository) UpgradeV2(ctx context.Context) error {
	if r.cfg.Version != 1 {
		return fmt.Errorf("repository has version %d, only upgrades from version 1 are supported", r.cfg.Version)
	}
	h := backend.Handle{Type: backend.ConfigFile}
	raw, err := backend.LoadAll(ctx, r.be, h)
	if err != nil {
		return fmt.Errorf("upgrade: load config file: %w", err)
	}
	dir, err := os.MkdirTemp("", "cairn-migrate-upgrade-repo-v2-")
	if err != nil {
		return fmt.Errorf("upgrade: create directory for the config backup: %w", err)
	}
	backup := filepath.Join(dir, "config")
	if err := os.WriteFile(backup, raw, 0o600); err != nil {
		return fmt.Errorf("upgrade: write config backup to %s: %w", dir, err)
	}

	cfg := r.cfg
	cfg.Version = 2
	if err := r.replaceConfig(ctx, cfg); err != nil {
		// An intact original (an atomic replace that failed, or a failure
		// before the removal) stays as it is: removing it to write it
		// again could only lose it.
		if cur, lerr := backend.LoadAll(ctx, r.be, h); lerr == nil && bytes.Equal(cur, raw) {
			_ = os.Remove(backup)
			_ = os.Remove(dir)
			return fmt.Errorf("upgrade: %w; the config is unchanged", err)
		}
		// Put the original back: on a backend without atomic replace the
		// config is gone by now (or half-written), and without it the
		// repository is lost.
		_ = r.be.Remove(ctx, h)
		if rerr := r.be.Save(ctx, h, backend.NewByteReader(raw, false)); rerr != nil {
			return fmt.Errorf("upgrade: %w; putting back the old config failed as well (%v), but there is a backup of the config file in %s", err, rerr, backup)
		}
		return fmt.Errorf("upgrade: %w; the old config was put back, and there is a backup of the config file in %s", err, backup)
	}
	r.cfg = cfg
	_ = os.Remove(backup)
	_ = os.Remove(dir)
	return nil
}

// replaceConfig stores cfg as the config file (never compressed: it is
// read before the version is known).
func (r *Repository) replaceConfig(ctx context.Context, cfg Config) error {
	plain, err := cfg.marshal()
	if err != nil {
		return err
	}
	h := backend.Handle{Type: backend.ConfigFile}
	if rp, ok := r.be.(backend.Replacer); !ok || !rp.HasAtomicReplace() {
		if err := r.be.Remove(ctx, h); err != nil {
			return fmt.Errorf("remove old config: %w", err)
		}
	}
	if err := r.be.Save(ctx, h, backend.NewByteReader(r.key.Seal(nil, plain), false)); err != nil {
		return fmt.Errorf("save new config: %w", err)
	}
	return nil
}
