package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/repo/cache"
	"github.com/cairn-backup/cairn/sources"
	"github.com/cairn-backup/cairn/sources/filter"
	"github.com/cairn-backup/cairn/sources/local"
	"github.com/cairn-backup/cairn/sources/stdin"
)

// backupOptions are the flags of `backup`, named like restic's.
type backupOptions struct {
	Parent            string
	Force             bool
	Excludes          []string
	InsensitiveExcl   []string
	ExcludeFiles      []string
	InsensitiveFiles  []string
	ExcludeIfPresent  []string
	ExcludeCaches     bool
	ExcludeLargerThan string
	OneFileSystem     bool
	Stdin             bool
	StdinFilename     string
	StdinFromCommand  bool
	Tags              []string
	Host              string
	FilesFrom         []string
	FilesFromVerbatim []string
	FilesFromRaw      []string
	Time              string
	WithAtime         bool
	IgnoreInode       bool
	IgnoreCtime       bool
	DryRun            bool
	ReadConcurrency   uint
	tarFlags
}

const backupLong = `
The "backup" command creates a new snapshot and saves the files and directories
given as the arguments.

With --stdin the snapshot holds one file read from standard input (named by
--stdin-filename); with --stdin-from-command the arguments are a command, run
without a shell, whose standard output is stored, and the backup fails if the
command fails.

REMOTE SOURCES (sftp://)
=======================

Arguments of the form sftp://[user@]host[:port]/absolute/path back up that
path of a remote host over SSH, file by file, with nothing but sshd on the
host. Paths of the same host go into one snapshot, named after the host as
written (or --host) with the remote paths as its paths; several hosts give
one snapshot each. Unchanged files (same size, mtime and mode as in the
parent snapshot) are not read again. SSH settings come from ~/.ssh (config,
known_hosts, keys, agent) or the SFTP backend's options: -o sftp.key=FILE,
-o sftp.known-hosts=FILE, -o sftp.host-key=SHA256:..., -o sftp.args=...
Unknown host keys are refused. Local paths and sftp:// sources do not mix.

TAR STREAMS (--stdin-tar)
=========================

With --stdin-tar, standard input is a tar archive (ustar, GNU or PAX, as
written by "tar -cf -"), or, with --stdin-from-command, the output of the
command given as the arguments ("-- ssh host tar -cf - /srv/app"). Every
member becomes its own file in the snapshot, at the place its name gives it
(GNU tar drops the leading "/", so /srv/app/x is stored as /srv/app/x), so
files deduplicate one by one and restore one by one. Names with ".." are
refused with a warning; hard links are stored as hard links, as restic
stores them.
A malformed or truncated archive, or a failing command, creates no
snapshot. --stdin-tar-path names the snapshot's paths (default "/"): give
the directories the archive holds, so that the next backup of the same
stream finds its parent and skips files whose size, modification time and
mode are unchanged (their bytes still cross the stream, but are neither
chunked nor stored again). Exclude patterns match "/" + the member name.

HOST NAMES AND PARENT SNAPSHOTS (Kubernetes CronJobs and containers)
=====================================================================

The snapshot's host name is --host, else $RESTIC_HOST, else the machine's
host name. The parent snapshot, which lets unchanged files be skipped without
reading them, is the latest snapshot with the same host name and the same
paths. A pod gets a new host name on every run, so without a stable --host
or RESTIC_HOST every run finds no parent and reads everything again (and
"forget" groups every run separately). Set RESTIC_HOST (or --host) to a
fixed name in the CronJob. When a backup finds no parent although snapshots
of the same paths exist under other host names, cairn prints a warning
naming those hosts.

EXIT STATUS
===========

Exit status is 0 if the command was successful.
Exit status is 1 if there was a fatal error (no snapshot created).
Exit status is 3 if some source data could not be read (incomplete snapshot created).
Exit status is 10 if the repository does not exist.
Exit status is 11 if the repository is already locked.
Exit status is 12 if the password is incorrect.
Exit status is 130 if the backup was interrupted (no snapshot created).
`

func newBackupCommand(a *app) *cobra.Command {
	var opts backupOptions
	cmd := &cobra.Command{
		Use:               "backup [flags] [FILE/DIR] ...",
		Short:             "Create a new backup of files and/or directories",
		Long:              backupLong,
		DisableAutoGenTag: true,
		PreRunE: func(c *cobra.Command, _ []string) error {
			return opts.applyEnv(c.Flags())
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runBackup(c.Context(), a, opts, args)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func (o *backupOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Parent, "parent", "", "use this parent `snapshot` (default: latest snapshot with the same host and paths, not newer than --time)")
	f.BoolVarP(&o.Force, "force", "f", false, `force re-reading the source files/directories (overrides the "parent" flag)`)
	f.StringArrayVarP(&o.Excludes, "exclude", "e", nil, "exclude a `pattern` (can be specified multiple times)")
	f.StringArrayVar(&o.InsensitiveExcl, "iexclude", nil, "same as --exclude `pattern` but ignores the casing of filenames")
	f.StringArrayVar(&o.ExcludeFiles, "exclude-file", nil, "read exclude patterns from a `file` (can be specified multiple times)")
	f.StringArrayVar(&o.InsensitiveFiles, "iexclude-file", nil, "same as --exclude-file but ignores casing of `file`names in patterns")
	f.StringArrayVar(&o.ExcludeIfPresent, "exclude-if-present", nil, "takes `filename[:header]`, exclude contents of directories containing filename (except filename itself) if header of that file is as provided (can be specified multiple times)")
	f.BoolVar(&o.ExcludeCaches, "exclude-caches", false, `excludes cache directories that are marked with a CACHEDIR.TAG file`)
	f.StringVar(&o.ExcludeLargerThan, "exclude-larger-than", "", "max `size` of the files to be backed up (allowed suffixes: k/K, m/M, g/G, t/T)")
	f.BoolVarP(&o.OneFileSystem, "one-file-system", "x", false, "exclude other file systems, don't cross filesystem boundaries and subvolumes")
	f.BoolVar(&o.Stdin, "stdin", false, "read backup from stdin")
	f.StringVar(&o.StdinFilename, "stdin-filename", stdin.DefaultFilename, "`filename` to use when reading from stdin")
	f.BoolVar(&o.StdinFromCommand, "stdin-from-command", false, "interpret arguments as command to execute and store its stdout")
	f.StringArrayVar(&o.Tags, "tag", nil, "add `tags` for the new snapshot in the format `tag[,tag,...]` (can be specified multiple times)")
	f.StringVarP(&o.Host, "host", "H", os.Getenv("RESTIC_HOST"), "set the `hostname` for the snapshot manually (default: $RESTIC_HOST, else the machine's host name; see HOST NAMES above)")
	f.StringArrayVar(&o.FilesFrom, "files-from", nil, "read the files to backup from `file` (can be combined with file args; can be specified multiple times)")
	f.StringArrayVar(&o.FilesFromVerbatim, "files-from-verbatim", nil, "read the files to backup from `file` (can be combined with file args; can be specified multiple times)")
	f.StringArrayVar(&o.FilesFromRaw, "files-from-raw", nil, "read the files to backup from `file` (can be combined with file args; can be specified multiple times)")
	f.StringVar(&o.Time, "time", "", "`time` of the backup (ex. '2012-11-01 22:08:41') (default: now)")
	f.BoolVar(&o.WithAtime, "with-atime", false, "store the atime for all files and directories")
	f.BoolVar(&o.IgnoreInode, "ignore-inode", false, "ignore inode number and ctime changes when checking for modified files")
	f.BoolVar(&o.IgnoreCtime, "ignore-ctime", false, "ignore ctime changes when checking for modified files")
	f.BoolVarP(&o.DryRun, "dry-run", "n", false, "do not upload or write any data, just show what would be done")
	f.UintVar(&o.ReadConcurrency, "read-concurrency", 0, "read `n` files concurrently (default: $RESTIC_READ_CONCURRENCY or 2)")
	o.tarFlags.add(f)
}

func (o *backupOptions) applyEnv(f *pflag.FlagSet) error {
	if v := os.Getenv("RESTIC_READ_CONCURRENCY"); v != "" && !f.Changed("read-concurrency") {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("invalid value for RESTIC_READ_CONCURRENCY %q: %w", v, err)
		}
		o.ReadConcurrency = uint(n)
	}
	return nil
}

// check refuses the combinations restic refuses.
func (o *backupOptions) check(a *app, args []string) error {
	if err := o.checkTar(a, args); err != nil {
		return err
	}
	if a.password == "" {
		if o.Stdin {
			return errors.New("cannot read both password and data from stdin")
		}
		for _, name := range append(append(append([]string(nil), o.FilesFrom...), o.FilesFromVerbatim...), o.FilesFromRaw...) {
			if name == "-" {
				return errors.New("unable to read password from stdin when data is to be read from stdin, use --password-file or $RESTIC_PASSWORD")
			}
		}
	}
	if o.Stdin || o.StdinFromCommand {
		switch {
		case len(o.FilesFrom) > 0:
			return errors.New("--stdin and --files-from cannot be used together")
		case len(o.FilesFromVerbatim) > 0:
			return errors.New("--stdin and --files-from-verbatim cannot be used together")
		case len(o.FilesFromRaw) > 0:
			return errors.New("--stdin and --files-from-raw cannot be used together")
		case len(args) > 0 && !o.StdinFromCommand:
			return errors.New("--stdin was specified and files/dirs were listed as arguments")
		case o.StdinFromCommand && len(args) == 0:
			return errors.New("--stdin-from-command needs the command to run as arguments")
		}
	}
	return nil
}

// snapshotTime parses --time in the local zone, restic's format.
func (o *backupOptions) snapshotTime() (time.Time, error) {
	if o.Time == "" {
		return time.Now(), nil
	}
	t, err := time.ParseInLocation(timeFormat, o.Time, time.Local)
	if err != nil {
		return time.Time{}, fmt.Errorf("error in time option: %w", err)
	}
	return t, nil
}

func runBackup(ctx context.Context, a *app, opts backupOptions, args []string) error {
	if err := opts.check(a, args); err != nil {
		return err
	}
	p := a.printer()
	if remote, err := opts.remoteSources(a, args); err != nil || remote != nil {
		if err != nil {
			return err
		}
		return runRemoteBackup(ctx, a, opts, remote)
	}

	incomplete := false
	var targets []string
	if !opts.Stdin && !opts.StdinFromCommand && !opts.StdinTar {
		var err error
		if targets, incomplete, err = opts.targets(a, args, p); err != nil {
			return err
		}
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
	rep := newBackupReporter(a)
	defer rep.upd.done()
	src, bopts, err := opts.source(ctx, a, r, targets, args, when, rep)
	if err != nil {
		return err
	}
	defer src.Close()
	// backup.Run takes the lock itself, so that it can read and pack files
	// while the lock settles; nothing is stored before it is granted.
	var lockErr error
	if !opts.DryRun {
		bopts.NoLock = false
		bopts.Lock = func(ctx context.Context) (context.Context, func(), error) {
			lctx, unlock, err := a.lockRepository(ctx, r, false, false)
			lockErr = err
			return lctx, unlock, err
		}
	}
	if !a.gopts.JSON {
		p.V("start backup on %v", src.Info().Paths)
	}
	res, err := backup.Run(ctx, r, src, bopts)
	if err != nil {
		if lockErr != nil && errors.Is(err, lockErr) {
			return err // "unable to create lock in backend: …", exit 11
		}
		return fmt.Errorf("unable to save snapshot: %w", err)
	}
	for _, msg := range res.SkippedSnapshots {
		p.E("Warning: %s", msg)
	}
	if res.NoParentHint != "" {
		p.E("Warning: %s", res.NoParentHint)
	}
	if !a.gopts.JSON {
		if res.ParentID != nil {
			p.P("using parent snapshot %s", res.ParentID.Str())
		} else if !opts.Stdin {
			p.P("no parent snapshot found, will read all files")
		}
	}
	if err := rep.finish(res, opts.DryRun); err != nil {
		return err
	}
	if incomplete || res.Warnings > 0 {
		return errIncomplete
	}
	return nil
}

// targets collects the targets from --files-from* and the arguments and
// drops the missing ones with a warning, like restic (the backup then
// exits with status 3; it fails when none is left).
func (o *backupOptions) targets(a *app, args []string, p *printer) ([]string, bool, error) {
	ff := filter.FilesFrom{
		Patterns: o.FilesFrom, Verbatim: o.FilesFromVerbatim, Raw: o.FilesFromRaw,
		Stdin: a.stdin, Warn: func(msg string) { p.E("%s", msg) },
	}
	targets, err := ff.Targets(args)
	if err != nil {
		return nil, false, err
	}
	if len(targets) == 0 {
		return nil, false, errors.New("nothing to backup, please specify source files/dirs")
	}
	existing, missing := local.Existing(targets)
	for _, err := range missing {
		p.E("%v, skipping", err)
	}
	if len(existing) == 0 {
		return nil, false, errors.New("all source directories/files do not exist")
	}
	return existing, len(missing) > 0, nil
}

// source builds the source and the backup options.
func (o *backupOptions) source(ctx context.Context, a *app, r *repo.Repository, targets, args []string, when time.Time, rep *backupReporter) (sources.Source, backup.Options, error) {
	bopts, err := o.backupOptions(ctx, r, when, rep)
	if err != nil {
		return nil, bopts, err
	}
	if o.StdinTar {
		return o.tarSource(a, r, args, when, rep, bopts)
	}
	if o.Stdin || o.StdinFromCommand {
		sopts := stdin.Options{Filename: o.StdinFilename, Time: when, Hostname: o.Host}
		if o.Stdin {
			// restic never uses a parent for --stdin.
			bopts.NoParent = true
			src, err := stdin.New(a.stdin, sopts)
			return src, bopts, err
		}
		name := args[0]
		sopts.Stderr = func(line string) { rep.p.E("subprocess %s: %s", name, line) }
		src, err := stdin.FromCommand(args, sopts)
		return src, bopts, err
	}
	excl, err := o.filter(rep)
	if err != nil {
		return nil, bopts, err
	}
	bopts.Exclude = withoutCache(excl, r)
	bopts.Excludes = o.Excludes
	bopts.OneFileSystem = o.OneFileSystem
	src, err := local.New(targets, local.Options{Hostname: o.Host})
	return src, bopts, err
}

// backupOptions returns the options every kind of source shares.
func (o *backupOptions) backupOptions(ctx context.Context, r *repo.Repository, when time.Time, rep *backupReporter) (backup.Options, error) {
	bopts := backup.Options{
		Hostname:       o.Host,
		Tags:           flattenTags(o.Tags),
		Time:           when,
		Force:          o.Force,
		NoParent:       o.Force, // restic: --force uses no parent at all
		IgnoreInode:    o.IgnoreInode,
		IgnoreCtime:    o.IgnoreCtime || o.IgnoreInode,
		WithAtime:      o.WithAtime,
		DryRun:         o.DryRun,
		NoLock:         true, // runBackup holds the lock (or none for a dry run)
		ProgramVersion: "cairn " + version,
		FileReaders:    int(o.ReadConcurrency),
		Warn:           rep.warn,
		Progress:       &rep.progress,
	}
	if o.Parent != "" && !o.Force {
		id, err := r.FindID(ctx, backend.SnapshotFile, o.Parent)
		if err != nil {
			return bopts, fmt.Errorf("parent snapshot %s: %w", o.Parent, err)
		}
		bopts.Parent = &id
	}
	return bopts, nil
}

// filter builds the exclude rules from the flags.
func (o *backupOptions) filter(rep *backupReporter) (*filter.Filter, error) {
	return filter.New(filter.Options{
		Excludes: o.Excludes, InsensitiveExcludes: o.InsensitiveExcl,
		ExcludeFiles: o.ExcludeFiles, InsensitiveExcludeFiles: o.InsensitiveFiles,
		ExcludeIfPresent: o.ExcludeIfPresent, ExcludeCaches: o.ExcludeCaches,
		ExcludeLargerThan: o.ExcludeLargerThan,
		Warn:              func(msg string) { rep.p.E("%s", msg) },
	})
}

// flattenTags turns "--tag a,b --tag c" into [a b c], dropping empty tags.
func flattenTags(values []string) []string {
	var out []string
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// cacheExcluder leaves the repository's own cache directory out of a
// backup, like restic: backing up $HOME must not store the cache of the
// repository being written. It embeds the *filter.Filter (not just the
// sources.Excluder interface) so that the optional methods a source looks
// for, such as the marker files kept by --exclude-if-present, still work.
type cacheExcluder struct {
	*filter.Filter
	dir string
}

func (c cacheExcluder) inCache(hostPath string) bool {
	return hostPath == c.dir || strings.HasPrefix(hostPath, c.dir+string(filepath.Separator))
}

// Excluded adds the cache directory to the filter's rules.
func (c cacheExcluder) Excluded(e *sources.Entry) bool {
	return c.inCache(e.HostPath) || c.Filter.Excluded(e)
}

// ExcludedByName adds the cache directory to the filter's name rules, so
// that it is left out before it is even stat'ed.
func (c cacheExcluder) ExcludedByName(hostPath string) bool {
	return c.inCache(hostPath) || c.Filter.ExcludedByName(hostPath)
}

func withoutCache(excl *filter.Filter, r *repo.Repository) sources.Excluder {
	c, ok := r.Backend().(*cache.Backend)
	if !ok || c.Dir() == "" {
		return excl
	}
	dir, err := filepath.Abs(c.Dir())
	if err != nil {
		return excl
	}
	return cacheExcluder{Filter: excl, dir: dir}
}
