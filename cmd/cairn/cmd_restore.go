package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/repo/restore"
	"github.com/cairn-backup/cairn/sources/filter"
)

type restoreOptions struct {
	filter        snapshotFilterFlags
	Target        string
	Include       []string
	IInclude      []string
	IncludeFiles  []string
	IIncludeFiles []string
	Exclude       []string
	IExclude      []string
	ExcludeFiles  []string
	IExcludeFiles []string
	IncludeXattr  []string
	ExcludeXattr  []string
	DryRun        bool
	Sparse        bool
	Verify        bool
	Overwrite     string
	Delete        bool
}

func newRestoreCommand(a *app) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore [flags] snapshotID",
		Short: "Extract the data from a snapshot",
		Long: `
The "restore" command extracts the data from a snapshot from the repository to
a directory.

The special snapshotID "latest" can be used to restore the latest snapshot in
the repository; --host, --path and --tag select which.

To only restore a specific subfolder, you can use the "snapshotID:subfolder"
syntax, where "subfolder" is a path within the snapshot tree as shown by
"cairn ls".

EXIT STATUS
===========

Exit status is 0 if the command was successful.
Exit status is 1 if there was any error (the files that could not be restored are listed).
Exit status is 10 if the repository does not exist.
Exit status is 11 if the repository is already locked.
Exit status is 12 if the password is incorrect.
Exit status is 130 if the restore was interrupted.
`,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runRestore(c.Context(), a, opts, args)
		},
	}
	opts.addFlags(cmd.Flags())
	return cmd
}

func (o *restoreOptions) addFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.Target, "target", "t", "", "directory to extract data to")
	f.StringArrayVarP(&o.Exclude, "exclude", "e", nil, "exclude a `pattern` (can be specified multiple times)")
	f.StringArrayVar(&o.IExclude, "iexclude", nil, "same as --exclude `pattern` but ignores the casing of filenames")
	f.StringArrayVar(&o.ExcludeFiles, "exclude-file", nil, "read exclude patterns from a `file` (can be specified multiple times)")
	f.StringArrayVar(&o.IExcludeFiles, "iexclude-file", nil, "same as --exclude-file but ignores casing of `file`names in patterns")
	f.StringArrayVarP(&o.Include, "include", "i", nil, "include a `pattern` (can be specified multiple times)")
	f.StringArrayVar(&o.IInclude, "iinclude", nil, "same as --include `pattern` but ignores the casing of filenames")
	f.StringArrayVar(&o.IncludeFiles, "include-file", nil, "read include patterns from a `file` (can be specified multiple times)")
	f.StringArrayVar(&o.IIncludeFiles, "iinclude-file", nil, "same as --include-file but ignores casing of `file`names in patterns")
	f.StringArrayVar(&o.ExcludeXattr, "exclude-xattr", nil, "exclude xattr by `pattern` (can be specified multiple times)")
	f.StringArrayVar(&o.IncludeXattr, "include-xattr", nil, "include xattr by `pattern` (can be specified multiple times)")
	o.filter.add(f, true)
	f.BoolVar(&o.DryRun, "dry-run", false, "do not write any data, just show what would be done")
	f.BoolVar(&o.Sparse, "sparse", false, "restore files as sparse")
	f.BoolVar(&o.Verify, "verify", false, "verify restored files content")
	f.StringVar(&o.Overwrite, "overwrite", "always", "overwrite behavior, one of (always|if-changed|if-newer|never)")
	f.BoolVar(&o.Delete, "delete", false, "delete files from target directory if they do not exist in snapshot. Use '--dry-run -vv' to check what would be deleted")
}

// patterns collects the patterns of the flags and of the pattern files.
func patterns(direct, files []string) ([]string, error) {
	fromFiles, err := filter.ReadPatternFiles(files, nil)
	if err != nil {
		return nil, err
	}
	return append(append([]string(nil), direct...), fromFiles...), nil
}

// restore's --json messages, shaped like restic's.
type restoreStatusJSON struct {
	MessageType    string  `json:"message_type"` // "status"
	SecondsElapsed uint64  `json:"seconds_elapsed,omitempty"`
	PercentDone    float64 `json:"percent_done"`
	TotalFiles     uint64  `json:"total_files,omitempty"`
	FilesRestored  uint64  `json:"files_restored,omitempty"`
	FilesSkipped   uint64  `json:"files_skipped,omitempty"`
	FilesDeleted   uint64  `json:"files_deleted,omitempty"`
	TotalBytes     uint64  `json:"total_bytes,omitempty"`
	BytesRestored  uint64  `json:"bytes_restored,omitempty"`
	BytesSkipped   uint64  `json:"bytes_skipped,omitempty"`
}

type restoreSummaryJSON struct {
	MessageType    string `json:"message_type"` // "summary"
	SecondsElapsed uint64 `json:"seconds_elapsed,omitempty"`
	TotalFiles     uint64 `json:"total_files,omitempty"`
	FilesRestored  uint64 `json:"files_restored,omitempty"`
	FilesSkipped   uint64 `json:"files_skipped,omitempty"`
	FilesDeleted   uint64 `json:"files_deleted,omitempty"`
	TotalBytes     uint64 `json:"total_bytes,omitempty"`
	BytesRestored  uint64 `json:"bytes_restored,omitempty"`
	BytesSkipped   uint64 `json:"bytes_skipped,omitempty"`
}

func runRestore(ctx context.Context, a *app, opts restoreOptions, args []string) error {
	switch {
	case len(args) == 0:
		return errors.New("no snapshot ID specified")
	case len(args) > 1:
		return fmt.Errorf("more than one snapshot ID specified: %v", args)
	case opts.Target == "":
		return errors.New("please specify a directory to restore to (--target)")
	}
	ow, err := restore.ParseOverwrite(opts.Overwrite)
	if err != nil {
		return err
	}
	ropts := restore.Options{
		Target: opts.Target, IncludeXattr: opts.IncludeXattr, ExcludeXattr: opts.ExcludeXattr,
		Overwrite: ow, Delete: opts.Delete, Sparse: opts.Sparse, Verify: opts.Verify, DryRun: opts.DryRun,
	}
	if ropts.Include, err = patterns(opts.Include, opts.IncludeFiles); err != nil {
		return err
	}
	if ropts.IInclude, err = patterns(opts.IInclude, opts.IIncludeFiles); err != nil {
		return err
	}
	if ropts.Exclude, err = patterns(opts.Exclude, opts.ExcludeFiles); err != nil {
		return err
	}
	if ropts.IExclude, err = patterns(opts.IExclude, opts.IExcludeFiles); err != nil {
		return err
	}
	if (len(ropts.Include) > 0 || len(ropts.IInclude) > 0) && (len(ropts.Exclude) > 0 || len(ropts.IExclude) > 0) {
		return errors.New("exclude and include patterns are mutually exclusive")
	}
	if opts.DryRun && opts.Verify {
		return errors.New("--dry-run and --verify are mutually exclusive")
	}

	r, err := a.openRepository(ctx, a.mainRepo())
	if err != nil {
		return err
	}
	defer r.Close()
	sn, sub, err := findSnapshot(ctx, r, args[0], &opts.filter)
	if err != nil {
		// restic locks first: a locked repository is reported as such
		// (exit 11) even when the snapshot is not there.
		if !a.gopts.NoLock {
			_, unlock, lerr := a.lockRepository(ctx, r, false, false)
			if lerr != nil {
				return lerr
			}
			unlock()
		}
		return fmt.Errorf("failed to find snapshot: %w", err)
	}

	p := a.printer()
	// restic says what it restores once it holds the lock; a refused lock
	// is the only message then.
	announce := func() {
		if !a.gopts.JSON {
			p.P("restoring %s to %s", sn, opts.Target)
		}
	}
	// restore.Run takes the lock, so that the index and the trees are read
	// while it settles; nothing is written to the target before it is
	// granted. Finding the snapshot above only read: if a forget removed it
	// meanwhile, the lock (which forget holds exclusively) is refused.
	var lockErr error
	if a.gopts.NoLock {
		ropts.NoLock = true
		announce()
	} else {
		ropts.Lock = func(ctx context.Context) (context.Context, func(), error) {
			lctx, unlock, err := a.lockRepository(ctx, r, false, false)
			lockErr = err
			if err == nil {
				announce()
			}
			return lctx, unlock, err
		}
	}
	var progress restore.Progress
	ropts.Progress = &progress
	ropts.Warn = func(path string, err error) { p.E("Warning: %s: %v", path, err) }
	upd := newUpdater(progressInterval(a.gopts.Quiet, a.gopts.JSON, a.term.canStatus), func(d time.Duration, final bool) {
		if final {
			a.term.SetStatus("")
			return
		}
		a.restoreStatus(&progress, d)
	})
	defer upd.done()
	start := time.Now()
	res, err := restore.Run(ctx, r, sn, sub, ropts)
	upd.done()
	if lockErr != nil && errors.Is(err, lockErr) {
		return lockErr // "unable to create lock in backend: …", exit 11
	}
	if res != nil {
		for _, f := range res.Failures {
			if a.gopts.JSON {
				a.term.errorJSON(errorJSON{MessageType: "error", Error: errorObjectJSON{Message: f.Err.Error()}, During: "restore", Item: f.Path})
			} else {
				p.E("ignoring error for %s: %v", f.Path, f.Err)
			}
		}
		a.restoreSummary(res, time.Since(start), opts)
	}
	if errors.Is(err, restore.ErrIncomplete) && res != nil {
		return fmt.Errorf("There were %d errors", len(res.Failures))
	}
	return err
}

// restoreStatus prints one progress update.
func (a *app) restoreStatus(pr *restore.Progress, d time.Duration) {
	filesTotal, bytesTotal := uint64(pr.FilesTotal.Load()), uint64(pr.BytesTotal.Load())
	filesDone, bytesDone := uint64(pr.FilesDone.Load()), uint64(pr.BytesDone.Load())
	if a.gopts.JSON {
		st := restoreStatusJSON{MessageType: "status", SecondsElapsed: uint64(d / time.Second),
			TotalFiles: filesTotal, FilesRestored: filesDone, TotalBytes: bytesTotal, BytesRestored: bytesDone}
		if bytesTotal > 0 {
			st.PercentDone = float64(bytesDone) / float64(bytesTotal)
		}
		_ = a.term.printJSON(st)
		return
	}
	a.term.SetStatus(fmt.Sprintf("[%s] %s  %d files/dirs %s, total %d files/dirs %s",
		formatDuration(d), formatPercent(bytesDone, bytesTotal), filesDone, formatBytes(bytesDone), filesTotal, formatBytes(bytesTotal)))
}

// restoreSummary prints restic's summary line or message.
func (a *app) restoreSummary(res *restore.Result, d time.Duration, opts restoreOptions) {
	done := uint64(res.FilesRestored + res.Dirs + res.Others + res.HardLinks)
	total := done + uint64(len(res.Failures))
	bytes := uint64(res.BytesRestored)
	if a.gopts.JSON {
		_ = a.term.printJSON(restoreSummaryJSON{
			MessageType: "summary", SecondsElapsed: uint64(d / time.Second),
			TotalFiles: total, FilesRestored: done, FilesSkipped: uint64(res.FilesSkipped), FilesDeleted: uint64(res.Deleted),
			TotalBytes: bytes, BytesRestored: bytes, BytesSkipped: uint64(res.BytesSkipped),
		})
		return
	}
	p := a.printer()
	var s string
	if done == total {
		s = fmt.Sprintf("Summary: Restored %d files/dirs (%s) in %s", total, formatBytes(bytes), formatDuration(d))
	} else {
		s = fmt.Sprintf("Summary: Restored %d / %d files/dirs (%s) in %s", done, total, formatBytes(bytes), formatDuration(d))
	}
	if res.FilesSkipped > 0 {
		s += fmt.Sprintf(", skipped %d files/dirs %s", res.FilesSkipped, formatBytes(uint64(res.BytesSkipped)))
	}
	if res.Deleted > 0 {
		s += fmt.Sprintf(", deleted %d files/dirs", res.Deleted)
	}
	p.P("%s", s)
	if opts.Verify {
		p.P("finished verifying %d files in %s", res.Verified, opts.Target)
	}
}
