package sftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/internal/sshx"
	"github.com/pkg/sftp"
	"golang.org/x/sync/errgroup"
)

// Backend is a repository in a directory reached over SFTP. Get one from
// Open or Create; it is safe for concurrent use. Close releases its
// connections.
type Backend struct {
	cfg  Config
	root string // cfg.Path, the layout's prefix
	pool *pool

	posixRename bool
	// dirMode and fileMode are the modes of new directories and of files
	// while they are written; saved files end up with fileMode minus the
	// write bits (0400, or 0440 in a group-shared repository).
	dirMode  fs.FileMode
	fileMode fs.FileMode

	// orphans are temporary files a failed Save could not remove because
	// its connection was gone; a later Save removes them.
	orphanMu sync.Mutex
	orphans  []string
}

// Compile-time checks of the capabilities the repository looks for.
var (
	_ backend.Backend  = (*Backend)(nil)
	_ backend.Creator  = (*Backend)(nil)
	_ backend.Replacer = (*Backend)(nil)
)

// Open connects to the repository directory cfg describes. It fails if the
// host cannot be reached or authenticated, its host key is not trusted, or
// the directory does not exist (an error wrapping backend.ErrNoRepository
// and fs.ErrNotExist).
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var fi os.FileInfo
	err = b.pool.do(ctx, func(c *conn, _ bool) error {
		var err error
		fi, err = c.sftp.Stat(b.root)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		b.Close()
		return nil, fmt.Errorf("sftp: open %s: %w: %w", b.Location(), backend.ErrNoRepository, err)
	}
	if err == nil && !fi.IsDir() {
		err = syscall.ENOTDIR
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("sftp: open %s: %w", b.Location(), err)
	}
	return b, nil
}

// Create connects like Open and makes the directory layout of a new
// repository (see Backend.Create). It fails if the location already holds
// a config.
func Create(ctx context.Context, cfg Config) (*Backend, error) {
	b, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Create(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// open validates cfg, dials the first connection (so that a wrong host
// key or password fails here, not at the first file) and reads the modes.
func open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Host == "" {
		return nil, errors.New("sftp: no host given")
	}
	if cfg.Path == "" {
		return nil, fmt.Errorf("sftp: %s: no repository path given", cfg)
	}
	if cfg.Command != "" {
		return nil, fmt.Errorf("sftp: %s: sftp.command is not supported: cairn connects with its built-in SSH client "+
			"and runs no external program; use sftp.args (-i key, -p port, -o UserKnownHostsFile=…), sftp.key, "+
			"sftp.known-hosts or ~/.ssh/config instead", cfg)
	}
	if cfg.Connections == 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.RequestsPerFile <= 0 {
		cfg.RequestsPerFile = DefaultRequestsPerFile
	}
	opts, err := sshx.Settings{Key: cfg.Key, KnownHosts: cfg.KnownHosts, HostKey: cfg.HostKey,
		PasswordEnv: cfg.PasswordEnv, Args: cfg.Args, Warnf: cfg.Warnf}.Options()
	if err != nil {
		return nil, fmt.Errorf("sftp: %s: %w", cfg, err)
	}
	dialer, err := sshx.NewDialer(sshx.Target{Host: cfg.Host, Port: cfg.Port, User: cfg.User}, opts)
	if err != nil {
		return nil, fmt.Errorf("sftp: %s: %w", cfg, err)
	}
	b := &Backend{
		cfg:  cfg,
		root: cfg.Path,
		pool: newPool(dialer, cfg.Connections, []sftp.ClientOption{
			sftp.UseConcurrentWrites(true),
			sftp.UseConcurrentReads(true),
			sftp.MaxConcurrentRequestsPerFile(cfg.RequestsPerFile),
		}, cfg.Warnf),
		dirMode:  0o700,
		fileMode: 0o600,
	}
	var cfgInfo os.FileInfo
	var cfgErr error
	err = b.pool.do(ctx, func(c *conn, _ bool) error {
		_, b.posixRename = c.sftp.HasExtension("posix-rename@openssh.com")
		cfgInfo, cfgErr = c.sftp.Stat(backend.Path(b.root, backend.Handle{Type: backend.ConfigFile}))
		if cfgErr != nil && c.broken(cfgErr) {
			return cfgErr
		}
		return nil
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("sftp: connect to %s: %w", b.Location(), err)
	}
	// Like restic: a group-readable config means a repository shared by a
	// group, whose new files and directories are group-accessible too.
	if cfgErr == nil && cfgInfo.Mode().Perm()&0o040 != 0 {
		b.dirMode |= 0o070
		b.fileMode |= 0o060
	}
	return b, nil
}

// Location returns the repository location in restic's syntax.
func (b *Backend) Location() string { return b.cfg.String() }

// Connections returns the configured number of connections.
func (b *Backend) Connections() uint { return b.cfg.Connections }

// HasAtomicReplace reports whether the server offers posix-rename, which
// replaces an existing file atomically (OpenSSH does).
func (b *Backend) HasAtomicReplace() bool { return b.posixRename }

// Close closes every connection. Operations still running fail.
func (b *Backend) Close() error {
	b.pool.close()
	return nil
}

// Create makes every directory of restic's layout that is missing,
// including the 256 data/XX directories, with mode 0700. It keeps
// existing files but refuses a location that already holds a config, so
// that a repository is never initialised twice.
func (b *Backend) Create(ctx context.Context) error {
	configPath := backend.Path(b.root, backend.Handle{Type: backend.ConfigFile})
	err := b.pool.do(ctx, func(c *conn, _ bool) error {
		_, err := c.sftp.Lstat(configPath)
		return err
	})
	switch {
	case err == nil:
		return fmt.Errorf("sftp: create %s: config file already exists", b.Location())
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sftp: create %s: check for a config file: %w", b.Location(), err)
	}
	// The root and the type directories first, then data/XX in parallel:
	// each is two round trips (mkdir, chmod), so a serial loop over 261
	// directories would be slow on a high-latency link.
	dirs := backend.Dirs(b.root)
	for _, d := range dirs[:6] {
		if err := b.pool.do(ctx, func(c *conn, _ bool) error { return b.mkdirAll(c, d) }); err != nil {
			return fmt.Errorf("sftp: create %s: %w", b.Location(), err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4 * int(b.cfg.Connections))
	for _, d := range dirs[6:] {
		g.Go(func() error {
			return b.pool.do(gctx, func(c *conn, _ bool) error { return b.mkdir(c, d) })
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("sftp: create %s: %w", b.Location(), err)
	}
	return nil
}

// mkdir creates dir (whose parent exists) with the backend's directory
// mode, and accepts a directory that exists already, leaving its mode.
func (b *Backend) mkdir(c *conn, dir string) error {
	if err := c.sftp.Mkdir(dir); err != nil {
		// OpenSSH reports an existing directory as a generic failure;
		// look before deciding.
		if fi, serr := c.sftp.Lstat(dir); serr == nil && fi.IsDir() {
			return nil
		}
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	// pkg/sftp's Mkdir sends no mode, so the server's umask applied.
	if err := c.sftp.Chmod(dir, b.dirMode); err != nil && !errors.Is(err, sftp.ErrSSHFxOpUnsupported) {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// mkdirAll creates dir and its missing parents.
func (b *Backend) mkdirAll(c *conn, dir string) error {
	fi, err := c.sftp.Stat(dir)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return fmt.Errorf("mkdir %s: %w", dir, syscall.ENOTDIR)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("stat %s: %w", dir, err)
	}
	if parent := path.Dir(dir); parent != dir && parent != "." && parent != "/" {
		if err := b.mkdirAll(c, parent); err != nil {
			return err
		}
	}
	return b.mkdir(c, dir)
}

// filename returns the path of h, refusing handles that could name a file
// outside the layout.
func (b *Backend) filename(h backend.Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", err
	}
	if h.Type != backend.ConfigFile {
		if h.Name == "." || h.Name == ".." || strings.ContainsAny(h.Name, "/\\\x00") {
			return "", fmt.Errorf("invalid file name %q", h.Name)
		}
	}
	return backend.Path(b.root, h), nil
}

// Stat returns the size of h.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	name, err := b.filename(h)
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("sftp: stat %v in %s: %w", h, b.Location(), err)
	}
	var fi os.FileInfo
	err = b.pool.do(ctx, func(c *conn, _ bool) error {
		var err error
		fi, err = c.sftp.Lstat(name)
		return err
	})
	if err != nil {
		return backend.FileInfo{}, fmt.Errorf("sftp: stat %s on %s: %w", name, b.host(), err)
	}
	return backend.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// Remove deletes h. Files are read-only (0400), which POSIX servers do
// not mind; servers that refuse (Windows) get a chmod first, as restic
// does.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	name, err := b.filename(h)
	if err != nil {
		return fmt.Errorf("sftp: remove %v in %s: %w", h, b.Location(), err)
	}
	err = b.pool.do(ctx, func(c *conn, _ bool) error {
		err := c.sftp.Remove(name)
		if errors.Is(err, fs.ErrPermission) {
			if cerr := c.sftp.Chmod(name, b.fileMode); cerr == nil {
				err = c.sftp.Remove(name)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sftp: remove %s on %s: %w", name, b.host(), err)
	}
	return nil
}

// host names the server in errors ("user@host:port").
func (b *Backend) host() string { return b.pool.dialer.String() }
