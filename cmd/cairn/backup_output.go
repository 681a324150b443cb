package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/cairn-backup/cairn/repo/backup"
	"github.com/cairn-backup/cairn/repo/blob"
)

// The --json messages of backup, shaped like restic 0.19.1's.

type backupStatusJSON struct {
	MessageType      string   `json:"message_type"` // "status"
	SecondsElapsed   uint64   `json:"seconds_elapsed,omitempty"`
	SecondsRemaining uint64   `json:"seconds_remaining,omitempty"`
	PercentDone      float64  `json:"percent_done"`
	TotalFiles       uint64   `json:"total_files,omitempty"`
	FilesDone        uint64   `json:"files_done,omitempty"`
	TotalBytes       uint64   `json:"total_bytes,omitempty"`
	BytesDone        uint64   `json:"bytes_done,omitempty"`
	ErrorCount       uint     `json:"error_count,omitempty"`
	CurrentFiles     []string `json:"current_files,omitempty"`
}

type errorObjectJSON struct {
	Message string `json:"message"`
}

type errorJSON struct {
	MessageType string          `json:"message_type"` // "error"
	Error       errorObjectJSON `json:"error"`
	During      string          `json:"during"`
	Item        string          `json:"item"`
}

type verboseStatusJSON struct {
	MessageType        string  `json:"message_type"` // "verbose_status"
	Action             string  `json:"action"`
	Item               string  `json:"item"`
	Duration           float64 `json:"duration"`
	DataSize           uint64  `json:"data_size"`
	DataSizeInRepo     uint64  `json:"data_size_in_repo"`
	MetadataSize       uint64  `json:"metadata_size"`
	MetadataSizeInRepo uint64  `json:"metadata_size_in_repo"`
	TotalFiles         uint    `json:"total_files"`
}

type backupSummaryJSON struct {
	MessageType         string    `json:"message_type"` // "summary"
	FilesNew            uint      `json:"files_new"`
	FilesChanged        uint      `json:"files_changed"`
	FilesUnmodified     uint      `json:"files_unmodified"`
	DirsNew             uint      `json:"dirs_new"`
	DirsChanged         uint      `json:"dirs_changed"`
	DirsUnmodified      uint      `json:"dirs_unmodified"`
	DataBlobs           int       `json:"data_blobs"`
	TreeBlobs           int       `json:"tree_blobs"`
	DataAdded           uint64    `json:"data_added"`
	DataAddedPacked     uint64    `json:"data_added_packed"`
	TotalFilesProcessed uint      `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
	TotalDuration       float64   `json:"total_duration"`
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	SnapshotID          string    `json:"snapshot_id,omitempty"`
	DryRun              bool      `json:"dry_run,omitempty"`
}

// backupReporter prints a backup's progress, warnings and summary, as text
// or as --json messages.
type backupReporter struct {
	a        *app
	p        *printer
	json     bool
	progress backup.Progress
	upd      *updater

	mu       sync.Mutex
	warnings int
}

func newBackupReporter(a *app) *backupReporter {
	r := &backupReporter{a: a, p: a.printer(), json: a.gopts.JSON}
	interval := progressInterval(a.gopts.Quiet, r.json, a.term.canStatus)
	r.upd = newUpdater(interval, r.update)
	return r
}

func (r *backupReporter) update(elapsed time.Duration, final bool) {
	if final {
		r.a.term.SetStatus("")
		return
	}
	files, bytes, errs := r.progress.Files.Load(), r.progress.Bytes.Load(), r.progress.Errors.Load()
	if r.json {
		_ = r.a.term.printJSON(backupStatusJSON{
			MessageType: "status", SecondsElapsed: uint64(elapsed / time.Second),
			FilesDone: uint64(files), BytesDone: uint64(bytes), ErrorCount: uint(errs),
		})
		return
	}
	// No scan runs ahead of the backup, so there are no totals: restic's
	// status line for that case.
	r.a.term.SetStatus(fmt.Sprintf("[%s] %d files, %s, %d errors",
		formatDuration(elapsed), files, formatBytes(uint64(bytes)), errs))
}

// warn reports an entry that could not be backed up.
func (r *backupReporter) warn(path string, err error) {
	r.mu.Lock()
	r.warnings++
	r.mu.Unlock()
	msg := describeWarning(path, err)
	if r.json {
		r.a.term.errorJSON(errorJSON{MessageType: "error", Error: errorObjectJSON{Message: msg}, During: "archival", Item: path})
		return
	}
	r.p.E("error: %s", msg)
}

// describeWarning names the path in the message unless the error already
// does (an *fs.PathError does).
func describeWarning(path string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) || strings.Contains(err.Error(), path) {
		return err.Error()
	}
	return path + ": " + err.Error()
}

// finish prints the summary.
func (r *backupReporter) finish(res *backup.Result, dryRun bool) error {
	r.upd.done()
	s := res.Summary
	var id blob.ID
	if res.Snapshot != nil {
		id = res.Snapshot.ID()
	}
	if r.json {
		out := backupSummaryJSON{
			MessageType: "summary",
			FilesNew:    s.FilesNew, FilesChanged: s.FilesChanged, FilesUnmodified: s.FilesUnmodified,
			DirsNew: s.DirsNew, DirsChanged: s.DirsChanged, DirsUnmodified: s.DirsUnmodified,
			DataBlobs: s.DataBlobs, TreeBlobs: s.TreeBlobs,
			DataAdded: s.DataAdded, DataAddedPacked: s.DataAddedPacked,
			TotalFilesProcessed: s.TotalFilesProcessed, TotalBytesProcessed: s.TotalBytesProcessed,
			TotalDuration: s.BackupEnd.Sub(s.BackupStart).Seconds(),
			BackupStart:   s.BackupStart, BackupEnd: s.BackupEnd,
			DryRun: dryRun,
		}
		if !id.IsNull() {
			out.SnapshotID = id.String()
		}
		return r.a.term.printJSON(out)
	}
	p := r.p
	p.P("")
	p.P("Files:       %5d new, %5d changed, %5d unmodified", s.FilesNew, s.FilesChanged, s.FilesUnmodified)
	p.P("Dirs:        %5d new, %5d changed, %5d unmodified", s.DirsNew, s.DirsChanged, s.DirsUnmodified)
	p.V("Data Blobs:  %5d new", s.DataBlobs)
	p.V("Tree Blobs:  %5d new", s.TreeBlobs)
	verb := "Added"
	if dryRun {
		verb = "Would add"
	}
	p.P("%s to the repository: %-5s (%-5s stored)", verb, formatBytes(s.DataAdded), formatBytes(s.DataAddedPacked))
	p.P("")
	p.P("processed %d files, %s in %s", s.TotalFilesProcessed, formatBytes(s.TotalBytesProcessed),
		formatDuration(s.BackupEnd.Sub(s.BackupStart)))
	if !dryRun {
		p.P("snapshot %s saved", id.Str())
	}
	return nil
}
