package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	sftpsource "github.com/cairn-backup/cairn/sources/sftp"
)

// Remote sources on the command line:
//
//	cairn backup sftp://[user@]host[:port]/abs/path ...
//
// Paths of the same user@host:port go into one snapshot, whose host name
// is that host (as written, or --host) and whose paths are the remote
// paths. Several hosts give one snapshot each, in the order first named,
// under one repository lock; a host that fails (unreachable, host key
// refused, a path missing) does not stop the others, and the command then
// exits with status 1 naming every failure. SSH options are the SFTP
// backend's "-o sftp.*" ones (sftp.key, sftp.known-hosts, sftp.host-key,
// sftp.password-env, sftp.args, sftp.requests-per-file).

// remoteSources parses the sftp:// arguments into one configuration per
// host; it returns nil when there are none. Local paths and remote sources
// do not mix in one backup: they would make one snapshot of two machines.
func (o *backupOptions) remoteSources(a *app, args []string) ([]sftpsource.Config, error) {
	if o.Stdin || o.StdinFromCommand {
		return nil, nil
	}
	var hosts []sftpsource.Config
	local := 0
	for _, arg := range args {
		if !sftpsource.IsURL(arg) {
			local++
			continue
		}
		cfg, err := sftpsource.ParseURL(arg)
		if err != nil {
			return nil, err
		}
		merged := false
		for i := range hosts {
			if hosts[i].SameHost(cfg) {
				hosts[i].Paths = append(hosts[i].Paths, cfg.Paths...)
				merged = true
				break
			}
		}
		if !merged {
			hosts = append(hosts, cfg)
		}
	}
	if len(hosts) == 0 {
		return nil, nil
	}
	switch {
	case local > 0:
		return nil, errors.New("local paths and sftp:// sources cannot be mixed in one backup: run one backup for each")
	case len(o.FilesFrom)+len(o.FilesFromVerbatim)+len(o.FilesFromRaw) > 0:
		return nil, errors.New("--files-from cannot be combined with sftp:// sources")
	case len(hosts) > 1 && o.Host != "":
		return nil, fmt.Errorf("--host (or $RESTIC_HOST) names one host, but the backup reads %d remote hosts (one snapshot each, named after its host): leave both unset or run one backup per host", len(hosts))
	case len(hosts) > 1 && o.Parent != "":
		return nil, errors.New("--parent names one snapshot, but the backup reads several remote hosts: run one backup per host")
	}
	for i := range hosts {
		for _, key := range slices.Sorted(maps.Keys(a.gopts.extended)) {
			if name, ok := strings.CutPrefix(key, "sftp."); ok {
				if err := hosts[i].SetOption(name, a.gopts.extended[key]); err != nil {
					return nil, fmt.Errorf("option %s: %w", key, err)
				}
			}
		}
		hosts[i].Hostname = o.Host
	}
	return hosts, nil
}

// runRemoteBackup backs up each remote host into its own snapshot.
func runRemoteBackup(ctx context.Context, a *app, opts backupOptions, hosts []sftpsource.Config) error {
	p := a.printer()
	if opts.OneFileSystem {
		p.E("Warning: --one-file-system has no effect on sftp:// sources (SFTP reports no device IDs)")
	}
	when, err := opts.snapshotTime()
	if err != nil {
		return err
	}
	if !a.gopts.JSON {
		p.V("open repository")
	}
	r, err := a.openRepository(ctx, a.mainRepo())
	if err != nil {
		return err
	}
	defer r.Close()
	bctx, unlock := ctx, func() {}
	if !opts.DryRun {
		if bctx, unlock, err = a.lockRepository(ctx, r, false, false); err != nil {
			return err
		}
	}
	defer unlock()

	var failed []error
	incomplete := false
	for _, cfg := range hosts {
		err := backupRemote(ctx, bctx, a, r, opts, cfg, when)
		switch {
		case err == nil:
		case errors.Is(err, errIncomplete):
			incomplete = true
		case ctx.Err() != nil || bctx.Err() != nil:
			// Interrupted, or the lock is lost: no other host may go on.
			return err
		default:
			if len(hosts) > 1 {
				p.E("%v", err)
			}
			failed = append(failed, err)
		}
	}
	switch {
	case len(failed) == 1 && len(hosts) == 1:
		return failed[0]
	case len(failed) > 0:
		return fmt.Errorf("%d of %d hosts not backed up: %w", len(failed), len(hosts), errors.Join(failed...))
	case incomplete:
		return errIncomplete
	}
	return nil
}

// backupRemote makes the snapshot of one host.
func backupRemote(ctx, bctx context.Context, a *app, r *repo.Repository, opts backupOptions, cfg sftpsource.Config, when time.Time) error {
	p := a.printer()
	rep := newBackupReporter(a)
	defer rep.upd.done()
	bopts, err := opts.backupOptions(ctx, r, when, rep)
	if err != nil {
		return err
	}
	excl, err := opts.filter(rep)
	if err != nil {
		return err
	}
	// The repository's cache is a local directory: nothing to leave out
	// on a remote host.
	bopts.Exclude = excl
	bopts.Excludes = opts.Excludes
	cfg.Warnf = func(format string, args ...any) { p.E("Warning: "+format, args...) }
	src, err := sftpsource.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer src.Close()
	info := src.Info()
	if !a.gopts.JSON {
		p.V("start backup of %s on %v", info.Hostname, info.Paths)
	}
	// A lost connection fails every file still to be read: end the backup
	// (no snapshot) instead of saving one without them; the next run
	// reuses what was uploaded.
	runCtx, abort := context.WithCancelCause(bctx)
	defer abort(nil)
	warn := bopts.Warn
	bopts.Warn = func(path string, err error) {
		if errors.Is(err, sftpsource.ErrConnectionLost) {
			abort(err)
			return
		}
		if runCtx.Err() != nil && errors.Is(err, context.Canceled) {
			return // files given up on because of the abort, not problems of their own
		}
		warn(path, err)
	}
	res, err := backup.Run(runCtx, r, src, bopts)
	if err != nil {
		if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(err, cause) {
			if errors.Is(err, context.Canceled) {
				// Whatever stage noticed the abort first only saw it as a
				// cancellation: the lost connection is the error.
				err = cause
			} else {
				err = fmt.Errorf("%w (%v)", err, cause)
			}
		}
		return fmt.Errorf("host %s: unable to save snapshot: %w", info.Hostname, err)
	}
	if res.NoParentHint != "" {
		p.E("Warning: %s", res.NoParentHint)
	}
	if !a.gopts.JSON {
		if res.ParentID != nil {
			p.P("using parent snapshot %s", res.ParentID.Str())
		} else {
			p.P("no parent snapshot found, will read all files")
		}
	}
	if err := rep.finish(res, opts.DryRun); err != nil {
		return err
	}
	if res.Warnings > 0 {
		return errIncomplete
	}
	return nil
}
