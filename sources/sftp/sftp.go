package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/cairn-backup/cairn/sources"
)

// Source is a set of paths on one remote host, read over one SSH
// connection. Get one from Open; it is safe for concurrent use, and Open
// functions of its entries may be called concurrently until Close.
type Source struct {
	cfg    Config
	conn   *ssh.Client
	client *sftp.Client
	owners ownerNamer // nil when the server cannot name owners
	info   sources.Info
	closed atomic.Bool
	// dead is closed when the SFTP session ends, by Close or because the
	// connection was lost.
	dead chan struct{}
}

// ErrConnectionLost is wrapped by the errors of every operation that
// failed because the SSH connection ended during the backup (the host
// rebooted, the network dropped). Unlike a file that cannot be read, this
// leaves the rest of the walk unknown: Walk returns it instead of handing
// it to OnError, and a backup should fail rather than write a snapshot
// without the rest of the files.
var ErrConnectionLost = errors.New("connection to the remote host lost")

var _ sources.Source = (*Source)(nil)

// startTimeout bounds the start of the SFTP subsystem once the SSH
// connection is up; a healthy server answers in milliseconds.
var startTimeout = time.Minute

// Open connects to the host cfg names, checking its host key and
// authenticating like the SFTP backend, and makes sure every path exists.
// A missing path fails with an error naming it that wraps fs.ErrNotExist;
// an unknown or changed host key fails with the sshx host key errors
// (wrapping sshx.ErrHostKey), which say how to trust the key.
func Open(ctx context.Context, cfg Config) (*Source, error) {
	if len(cfg.Paths) == 0 {
		return nil, fmt.Errorf("sftp source %s: no paths", cfg)
	}
	for _, p := range cfg.Paths {
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("sftp source %s: path %q is not absolute", cfg, p)
		}
	}
	if cfg.RequestsPerFile <= 0 {
		cfg.RequestsPerFile = DefaultRequestsPerFile
	}
	d, err := cfg.dialer()
	if err != nil {
		return nil, fmt.Errorf("sftp source %s: %w", cfg, err)
	}
	conn, err := d.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("sftp source %s: %w", cfg, err)
	}
	// NewClient has no context: closing the connection aborts it, on
	// cancellation or when the subsystem never answers (a stuck login
	// shell, a ForceCommand), which would otherwise hold the backup.
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	stop := context.AfterFunc(sctx, func() { conn.Close() })
	client, err := sftp.NewClient(conn,
		sftp.UseConcurrentReads(true),
		sftp.MaxConcurrentRequestsPerFile(cfg.RequestsPerFile),
	)
	stopped := stop()
	cancel()
	if !stopped {
		if client != nil {
			client.Close()
		}
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sftp source %s: start the SFTP subsystem: %w", cfg, ctx.Err())
		}
		return nil, fmt.Errorf("sftp source %s: the SFTP subsystem did not answer within %v", cfg, startTimeout)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sftp source %s: start the SFTP subsystem: %w", cfg, err)
	}
	s := &Source{cfg: cfg, conn: conn, client: client, dead: make(chan struct{})}
	go func() {
		_ = client.Wait()
		close(s.dead)
	}()
	for _, p := range cfg.Paths {
		if _, err := client.Lstat(p); err != nil {
			s.Close()
			return nil, fmt.Errorf("sftp source %s: path %s: %w", cfg, p, err)
		}
	}
	s.info = sources.Info{
		Hostname: cfg.Hostname,
		Paths:    make([]string, len(cfg.Paths)),
		// SFTP version 3 carries whole seconds, no inode, no ctime, no
		// device numbers and no extended attributes.
		Has: sources.HasAccessTime,
	}
	if s.info.Hostname == "" {
		s.info.Hostname = cfg.Host
	}
	for i, p := range cfg.Paths {
		s.info.Paths[i] = path.Clean(p)
	}
	if o := s.ownerNames(); o != nil {
		s.owners = o
		s.info.Has |= sources.HasOwnerNames
	}
	return s, nil
}

// testOwnerTable makes ownerNames skip the extension, for tests of the
// fallback against a server that has it.
var testOwnerTable = false

// ownerNames picks how owners are named: the server's extension, else
// the remote /etc/passwd and /etc/group, else not at all (nil).
func (s *Source) ownerNames() ownerNamer {
	warn := func(err error) {
		// Names are a nicety: go on with numeric owners only.
		if s.cfg.Warnf != nil {
			s.cfg.Warnf("sftp source %s: owner names unavailable: %v", s.cfg, err)
		}
	}
	if _, ok := s.client.HasExtension(extUsersGroups); ok && !testOwnerTable {
		o, err := newOwners(s.conn)
		if err != nil {
			warn(err)
			return nil
		}
		return o
	}
	t, err := readOwnerTables(s.client)
	if err != nil {
		// A chrooted or non-Unix server has no such files: nothing to
		// warn about.
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			warn(err)
		}
		return nil
	}
	return t
}

// Info describes the source: the host name (Config.Hostname, else the host
// as written), the cleaned remote paths in the order given, and the
// metadata SFTP carries.
func (s *Source) Info() sources.Info {
	info := s.info
	info.Paths = append([]string(nil), s.info.Paths...)
	return info
}

// Close ends the connection; later Walk and Open calls fail.
func (s *Source) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	if s.owners != nil {
		errs = append(errs, s.owners.close())
	}
	if err := s.client.Close(); err != nil && !errors.Is(err, fs.ErrClosed) {
		errs = append(errs, err)
	}
	if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sftp source %s: close: %w", s.cfg, err)
	}
	return nil
}

// lost wraps err in ErrConnectionLost when the connection is gone. The
// SFTP client reports a lost connection to requests in flight with
// ErrSSHFxConnectionLost, and a request sent after it ended may fail in
// other ways; both count.
func (s *Source) lost(err error) error {
	if err == nil || s.closed.Load() || errors.Is(err, ErrConnectionLost) {
		return err
	}
	if errors.Is(err, sftp.ErrSSHFxConnectionLost) {
		return fmt.Errorf("%w (%s): %w", ErrConnectionLost, s.cfg.Host, err)
	}
	// A status from the server proves the connection alive. Anything else
	// (a failed send, EOF on the transport) may arrive a moment before the
	// client notices that the session ended: give it that moment.
	var status *sftp.StatusError
	if errors.As(err, &status) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || err == io.EOF {
		return err
	}
	select {
	case <-s.dead:
		return fmt.Errorf("%w (%s): %w", ErrConnectionLost, s.cfg.Host, err)
	case <-time.After(deadGrace):
		return err
	}
}

// deadGrace is how long lost waits for the session's end to show after a
// transport error.
const deadGrace = 2 * time.Second

// errClosed is returned after Close.
var errClosed = fmt.Errorf("sftp source: %w", fs.ErrClosed)
