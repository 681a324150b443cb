package restore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/cairn-backup/cairn/repo/blob"
)

// Overwrite says what happens to files that already exist in the target,
// like restic's --overwrite.
type Overwrite uint8

// The overwrite modes. The zero value is OverwriteAlways, restic's default.
const (
	// OverwriteAlways rewrites every existing file, but like restic only
	// the parts whose content differs: the existing file is read and every
	// blob that already hashes right is left alone.
	OverwriteAlways Overwrite = iota
	// OverwriteIfChanged trusts a file whose size and modification time
	// match the snapshot (only its metadata is restored) and otherwise
	// behaves like OverwriteAlways.
	OverwriteIfChanged
	// OverwriteIfNewer replaces an existing entry only when the snapshot's
	// modification time is newer than the entry's.
	OverwriteIfNewer
	// OverwriteNever leaves every existing entry untouched.
	OverwriteNever
)

// ParseOverwrite parses restic's names: always, if-changed, if-newer, never.
func ParseOverwrite(s string) (Overwrite, error) {
	switch s {
	case "always", "":
		return OverwriteAlways, nil
	case "if-changed":
		return OverwriteIfChanged, nil
	case "if-newer":
		return OverwriteIfNewer, nil
	case "never":
		return OverwriteNever, nil
	}
	return 0, fmt.Errorf("invalid overwrite behavior %q, must be one of (always|if-changed|if-newer|never)", s)
}

// String returns restic's name for the mode.
func (o Overwrite) String() string {
	switch o {
	case OverwriteAlways:
		return "always"
	case OverwriteIfChanged:
		return "if-changed"
	case OverwriteIfNewer:
		return "if-newer"
	case OverwriteNever:
		return "never"
	}
	return fmt.Sprintf("invalid(%d)", uint8(o))
}

// Options control a restore. The zero value restores everything with
// restic's defaults; only Target is required.
type Options struct {
	// Target is the directory to restore into; it is created if missing.
	Target string

	// Include and Exclude select what is restored with restic's pattern
	// language (see sources/filter), matched against the path inside the
	// restored tree with a leading "/" ("/etc/passwd"). IInclude and
	// IExclude do the same ignoring case. Includes and excludes cannot be
	// combined, as in restic.
	Include, Exclude, IInclude, IExclude []string
	// IncludeXattr and ExcludeXattr select extended attributes by name
	// with the same pattern language (restic's --include-xattr and
	// --exclude-xattr); by default all are restored.
	IncludeXattr, ExcludeXattr []string

	// Overwrite decides what happens to files that exist in the target.
	Overwrite Overwrite
	// Delete removes entries of the target that the snapshot does not hold
	// (restic's --delete), in every directory the restore writes, subject
	// to the include and exclude patterns.
	Delete bool
	// Sparse writes all-zero blobs as holes.
	Sparse bool
	// Verify reads every restored file back afterwards and checks the hash
	// of each blob; mismatches are failures.
	Verify bool
	// DryRun decides everything and counts it, but changes nothing in the
	// target (existing files are still read to decide what would change).
	DryRun bool
	// NoLock skips the shared repository lock (the caller holds one, or the
	// repository is read-only).
	NoLock bool
	// Lock, if set, takes the shared lock instead of r.Lock with restic's
	// defaults (for instance with --retry-lock or a message for stale
	// locks). It returns the context to restore under, cancelled with the
	// cause when the lock is lost, and the function that releases it. Run
	// calls it in the background while it reads the index and the trees,
	// and writes nothing to the target before it has returned; its error
	// is wrapped in Run's error.
	Lock func(ctx context.Context) (context.Context, func(), error)

	// Workers is how many pack ranges and file operations are in flight at
	// once (default: 8, or the backend's connections if more). Each worker
	// streams its pack range through a 512 KiB buffer and holds at most
	// two blobs (sealed and plain, 8 MiB each for restic's largest
	// chunks), so memory stays bounded whatever the file sizes.
	Workers int

	// Warn is told about problems that do not make a file wrong, such as
	// an extended attribute the target file system refuses. path is the
	// path inside the restored tree. It may be called from several
	// goroutines at once.
	Warn func(path string, err error)
	// Progress, if set, is updated while the restore runs.
	Progress *Progress
}

// validate checks the option combinations restic refuses.
func (o *Options) validate() error {
	if o.Target == "" {
		return errors.New("restore: no target directory given")
	}
	if (len(o.Include) > 0 || len(o.IInclude) > 0) && (len(o.Exclude) > 0 || len(o.IExclude) > 0) {
		return errors.New("restore: exclude and include patterns are mutually exclusive")
	}
	if len(o.IncludeXattr) > 0 && len(o.ExcludeXattr) > 0 {
		return errors.New("restore: exclude and include xattr patterns are mutually exclusive")
	}
	if o.DryRun && o.Verify {
		return errors.New("restore: dry run and verify are mutually exclusive")
	}
	if o.Overwrite > OverwriteNever {
		return fmt.Errorf("restore: invalid overwrite mode %d", o.Overwrite)
	}
	return nil
}

// workers returns the number of workers: restore is bound by syscalls and
// I/O, not CPU, so it pays to have more operations in flight than cores.
func (o *Options) workers(connections uint) int {
	if o.Workers > 0 {
		return o.Workers
	}
	return max(8, int(connections), runtime.GOMAXPROCS(0))
}

// Progress counts what a running restore has done. Read it with the
// methods of its fields from any goroutine. The totals are known once the
// snapshot's trees are read (TotalsKnown is then set).
type Progress struct {
	FilesTotal, BytesTotal atomic.Int64
	TotalsKnown            atomic.Bool
	// FilesDone counts files finished (restored, skipped or failed);
	// BytesDone counts bytes written or found already correct.
	FilesDone, BytesDone atomic.Int64
	// Errors counts failures so far.
	Errors atomic.Int64
}

func (p *Progress) addBytes(n int64) {
	if p != nil {
		p.BytesDone.Add(n)
	}
}

func (p *Progress) fileDone() {
	if p != nil {
		p.FilesDone.Add(1)
	}
}

// Result describes a finished restore.
type Result struct {
	// FilesRestored counts regular files whose content was written (empty
	// files included); BytesRestored their size.
	FilesRestored, BytesRestored int64
	// FilesSkipped counts existing files left as they were: already correct
	// (only metadata restored) or kept by the overwrite mode; BytesSkipped
	// their size.
	FilesSkipped, BytesSkipped int64
	// Dirs counts directories restored; Others symlinks, FIFOs and devices;
	// HardLinks the extra names created for an already restored node.
	Dirs, Others, HardLinks int64
	// Deleted counts entries removed from the target by Delete (a
	// directory counts once, with everything in it).
	Deleted int64
	// Verified counts files read back and found correct by Verify.
	Verified int64
	// Warnings counts problems reported through Options.Warn.
	Warnings int64
	// Failures lists every entry that could not be restored (or failed
	// verification), in no particular order.
	Failures []Failure
}

// Failure is one path that could not be restored and why.
type Failure struct {
	// Path is the entry's path inside the restored tree, with a leading
	// "/", as restic prints it.
	Path string
	// Err says what went wrong. Damaged repository data is a *BlobError
	// (use errors.As); a refused node name wraps ErrInvalidName.
	Err error
}

func (f Failure) Error() string { return f.Path + ": " + f.Err.Error() }

// BlobError reports a data blob that could not be loaded: from which pack,
// and why (missing pack, short read, failed MAC, wrong hash, bad
// compression).
type BlobError struct {
	Blob blob.ID
	// Pack is the pack the blob was read from; zero if the index lists none.
	Pack blob.ID
	Err  error
}

func (e *BlobError) Error() string {
	if e.Pack.IsNull() {
		return fmt.Sprintf("blob %s: %v", e.Blob, e.Err)
	}
	return fmt.Sprintf("blob %s in pack %s: %v", e.Blob, e.Pack, e.Err)
}

func (e *BlobError) Unwrap() error { return e.Err }

// ErrIncomplete is wrapped by the error Run returns when some entries could
// not be restored; Result.Failures lists them.
var ErrIncomplete = errors.New("restore incomplete")

// ErrInvalidName is wrapped by the failure for a node whose name is not a
// single path component (empty, ".", "..", or containing "/" or NUL).
var ErrInvalidName = errors.New("invalid node name")
