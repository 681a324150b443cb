package backup

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/sources"
)

// Options control a backup. The zero value backs up with restic's defaults.
type Options struct {
	// Hostname recorded in the snapshot (--host); default the source's host.
	Hostname string
	// Tags recorded in the snapshot, in order.
	Tags []string
	// Time of the snapshot (--time); default now.
	Time time.Time
	// Parent is the snapshot to compare with. nil selects the latest snapshot
	// with the same host and paths, taken before Time.
	Parent *blob.ID
	// NoParent backs up without a parent (every file is read).
	NoParent bool
	// Force re-reads every file even when the parent says it is unchanged
	// (the parent is still recorded).
	Force bool
	// IgnoreInode and IgnoreCtime relax the change detection like restic's
	// --ignore-inode and --ignore-ctime.
	IgnoreInode, IgnoreCtime bool
	// WithAtime records access times; by default atime = mtime, which keeps
	// trees stable when files are only read.
	WithAtime bool
	// Location renders node times; default time.Local, like restic. Trees
	// only deduplicate with restic's when both use the same zone.
	Location *time.Location

	// Exclude and OneFileSystem are passed to the source's walk; Excludes is
	// the list of patterns recorded in the snapshot.
	Exclude       sources.Excluder
	OneFileSystem bool
	Excludes      []string

	// DryRun reads everything but writes nothing.
	DryRun bool
	// NoLock skips the shared repository lock (the caller holds one).
	NoLock bool
	// Lock, if set, takes the shared lock instead of r.Lock with restic's
	// defaults (for instance with --retry-lock or a message for stale
	// locks). It returns the context to run under, cancelled with the
	// cause when the lock is lost, and the function that releases it. Run
	// calls it in the background while the backup starts, and stores
	// nothing before it has returned; its error is Run's error.
	Lock func(ctx context.Context) (context.Context, func(), error)
	// ProgramVersion is recorded in the snapshot ("cairn 0.1.0").
	ProgramVersion string

	// FileReaders is how many files are read at once (default 2, or 8 for
	// sources without local disks where latency dominates).
	FileReaders int
	// BlobWorkers hash, compress and encrypt chunks (default GOMAXPROCS).
	BlobWorkers int

	// Warn is called for every entry that could not be backed up (the
	// backup goes on; such a run should exit with status 3). It may be
	// called from several goroutines at once.
	Warn func(path string, err error)
	// Progress, if set, is updated while the backup runs.
	Progress *Progress
}

// Progress counts what a running backup has done; read it with its methods
// from any goroutine.
type Progress struct {
	Files, Dirs, Bytes, Errors atomic.Int64
}

// Result describes a finished backup.
type Result struct {
	// Snapshot is the saved snapshot (not saved in a dry run; then its ID is
	// zero).
	Snapshot *repo.Snapshot
	// ParentID is the parent snapshot used for change detection, if any.
	ParentID *blob.ID
	// Warnings counts entries that could not be backed up.
	Warnings int
	// Summary is the snapshot's summary (also set for dry runs).
	Summary repo.SnapshotSummary
	// NoParentHint is set when no parent was found although snapshots of the
	// same paths exist under other host names: the usual sign of a CronJob
	// without a stable --host.
	NoParentHint string
	// SkippedSnapshots names the snapshots that could not be loaded while
	// the parent was chosen, one message each ("snapshot 1a2b3c4d: …").
	// They were not considered; restic fails the backup instead, cairn
	// goes on so a damaged snapshot does not stop scheduled backups, but
	// the caller should show these as warnings.
	SkippedSnapshots []string
}

// Run backs up src into r and saves a snapshot. It takes a shared lock
// unless opts.NoLock is set, and loads the index if needed.
func Run(ctx context.Context, r *repo.Repository, src sources.Source, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.Time.IsZero() {
		opts.Time = start
	}
	info := src.Info()
	host := opts.Hostname
	if host == "" {
		host = info.Hostname
	}
	// Taking a lock means waiting (200 ms, like restic) to see whether a
	// competing lock appears. Nothing waits for it: the index is loaded,
	// the parent chosen and the first files read, chunked and packed
	// meanwhile, but the writer holds every pack (and so every index file)
	// back until the lock is granted, and the snapshot is saved only
	// after that. An exclusive operation (prune) that changed the
	// repository in that time would have had to hold its lock across it,
	// failing ours, and a failed lock cancels the run with its error.
	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	var granted, lockDone chan struct{}
	var lockErr error
	if !opts.NoLock && !opts.DryRun {
		granted, lockDone = make(chan struct{}), make(chan struct{})
		release := func() {}
		go func() {
			defer close(lockDone)
			var lctx context.Context
			var unlock func()
			var err error
			if opts.Lock != nil {
				lctx, unlock, err = opts.Lock(runCtx)
			} else {
				var held *repo.HeldLock
				lctx, held, err = r.Lock(runCtx, false, repo.LockOptions{})
				unlock = func() { _ = held.Unlock() }
			}
			if err != nil {
				lockErr = err
				cancelRun(err)
				return
			}
			release = unlock
			// A lost lock cancels the run with ErrLockLost.
			context.AfterFunc(lctx, func() { cancelRun(context.Cause(lctx)) })
			close(granted)
		}()
		defer func() {
			// Stop a lock still waiting (--retry-lock) before waiting for it.
			cancelRun(errors.New("backup finished"))
			<-lockDone
			release()
		}()
	}
	// fail prefers the reason the run was cancelled (a refused or lost
	// lock) over the cancellation errors it caused.
	fail := func(err error) (*Result, error) {
		if cause := context.Cause(runCtx); cause != nil && ctx.Err() == nil && errors.Is(err, context.Canceled) {
			return nil, cause
		}
		return nil, err
	}
	waitLock := func() error {
		if lockDone == nil {
			return nil
		}
		<-lockDone
		return lockErr
	}

	res := &Result{}
	if err := r.EnsureIndex(runCtx, nil); err != nil {
		return fail(fmt.Errorf("load index: %w", err))
	}
	parent, hint, skipped, err := findParent(runCtx, r, host, info.Paths, opts)
	if err != nil {
		return fail(err)
	}
	res.NoParentHint = hint
	res.SkippedSnapshots = skipped
	var parentTree *blob.ID
	if parent != nil {
		id := parent.ID()
		res.ParentID = &id
		parentTree = parent.Tree
	}

	var saver blobSaver
	var writer *repo.BlobWriter
	if opts.DryRun {
		saver = newDryRunSaver(r)
	} else {
		writer, err = r.NewBlobWriter(runCtx)
		if err != nil {
			return fail(err)
		}
		if granted != nil {
			writer.HoldUploads(granted)
		}
		saver = writer
	}

	b := newBackuper(r, saver, info, opts, parentTree)
	rootID, err := b.run(runCtx, src)
	if err == nil {
		err = waitLock()
	}
	if err != nil {
		if writer != nil {
			// Keep what was uploaded usable for the next run: write its
			// index, even though the context may be cancelled. Nothing was
			// uploaded unless the lock was granted.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			_ = writer.Abort(actx)
			cancel()
		}
		return fail(err)
	}
	if writer != nil {
		if err := writer.Flush(runCtx); err != nil {
			return fail(fmt.Errorf("finish packs and index: %w", err))
		}
	}
	var ws repo.WriterStats
	if writer != nil {
		ws = writer.Stats()
	} else {
		ws = saver.(*dryRunSaver).stats()
	}
	end := time.Now()
	res.Warnings = int(b.warnings.Load())
	res.Summary = repo.SnapshotSummary{
		BackupStart: start.In(opts.Location), BackupEnd: end.In(opts.Location),
		FilesNew: uint(b.filesNew.Load()), FilesChanged: uint(b.filesChanged.Load()), FilesUnmodified: uint(b.filesUnmodified.Load()),
		DirsNew: uint(b.dirsNew.Load()), DirsChanged: uint(b.dirsChanged.Load()), DirsUnmodified: uint(b.dirsUnmodified.Load()),
		DataBlobs: int(ws.DataBlobs), TreeBlobs: int(ws.TreeBlobs),
		DataAdded: uint64(ws.DataAdded), DataAddedPacked: uint64(ws.DataAddedPacked),
		TotalFilesProcessed: uint(b.filesNew.Load() + b.filesChanged.Load() + b.filesUnmodified.Load()),
		TotalBytesProcessed: uint64(b.bytesProcessed.Load()),
	}
	sn := &repo.Snapshot{
		Time:           opts.Time,
		Parent:         res.ParentID,
		Tree:           &rootID,
		Paths:          append([]string{}, info.Paths...),
		Hostname:       host,
		Excludes:       opts.Excludes,
		Tags:           opts.Tags,
		ProgramVersion: opts.ProgramVersion,
		Summary:        &res.Summary,
	}
	fillUser(sn)
	res.Snapshot = sn
	if opts.DryRun {
		return res, nil
	}
	if _, err := r.SaveSnapshot(runCtx, sn); err != nil {
		return fail(err)
	}
	return res, nil
}

func fillUser(sn *repo.Snapshot) {
	u, err := user.Current()
	if err != nil {
		return
	}
	sn.Username = u.Username
	if v, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
		sn.UID = uint32(v)
	}
	if v, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
		sn.GID = uint32(v)
	}
}

// findParent returns the parent snapshot: the one named in opts, or the
// latest with the same host whose paths include all of ours, taken before
// the new snapshot. If none is found but snapshots of the same paths exist
// under other host names, the hint explains it. Snapshots that fail to load
// are skipped and reported in skipped.
func findParent(ctx context.Context, r *repo.Repository, host string, paths []string, opts Options) (_ *repo.Snapshot, hint string, skipped []string, _ error) {
	if opts.NoParent {
		return nil, "", nil, nil
	}
	if opts.Parent != nil {
		sn, err := r.LoadSnapshot(ctx, *opts.Parent)
		if err != nil {
			return nil, "", nil, fmt.Errorf("parent snapshot: %w", err)
		}
		return sn, "", nil, nil
	}
	var latest *repo.Snapshot
	otherHosts := map[string]bool{}
	f := &repo.SnapshotFilter{Hosts: []string{host}, Paths: paths, Before: opts.Time}
	samePaths := &repo.SnapshotFilter{Paths: paths, Before: opts.Time}
	err := r.ForEachSnapshot(ctx, func(id blob.ID, sn *repo.Snapshot, err error) error {
		if err != nil {
			// A damaged snapshot must not stop backups; it is only not a
			// candidate parent, and the caller is told which one it was.
			skipped = append(skipped, fmt.Sprintf("snapshot %s could not be loaded and is not considered as parent: %v", id.Str(), err))
			return nil
		}
		if f.Matches(sn) {
			if latest == nil || sn.Time.After(latest.Time) {
				latest = sn
			}
		} else if samePaths.Matches(sn) {
			otherHosts[sn.Hostname] = true
		}
		return nil
	})
	if err != nil {
		return nil, "", nil, fmt.Errorf("find parent snapshot: %w", err)
	}
	slices.Sort(skipped) // ForEachSnapshot's order is random
	if latest == nil && len(otherHosts) > 0 {
		var hosts []string
		for h := range otherHosts {
			hosts = append(hosts, strconv.Quote(h))
		}
		return nil, fmt.Sprintf("no parent snapshot for host %q, but snapshots of the same paths exist for host(s) %v: every file is read again; pass a stable --host (or RESTIC_HOST) so that runs on changing machines (e.g. Kubernetes pods) find their parent", host, hosts), skipped, nil
	}
	return latest, "", skipped, nil
}

func defaultWorkers(opts *Options, info sources.Info) {
	if opts.BlobWorkers <= 0 {
		opts.BlobWorkers = runtime.GOMAXPROCS(0)
	}
	if opts.FileReaders <= 0 {
		opts.FileReaders = 2
		if info.Has&sources.HasInode == 0 {
			// Remote sources: hide round trips with more files in flight.
			opts.FileReaders = 8
		}
	}
}

// errAbort wraps an error that ends the backup (as opposed to a warning).
var errAbort = errors.New("backup aborted")

var _ = errgroup.Group{}
var _ sync.Mutex
