package oracle

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"
)

// The structs below mirror the JSON restic 0.19.1 prints or stores; field
// names and tags follow restic's sources (cmd/restic/cmd_*.go,
// internal/ui/backup/json.go, internal/ui/restore/json.go, internal/data).

// InitResult is the message of `restic init --json`.
type InitResult struct {
	MessageType string `json:"message_type"` // "initialized"
	ID          string `json:"id"`           // the repository (config) ID
	Repository  string `json:"repository"`
}

// BackupSummary is the final message of `restic backup --json`, together
// with the error messages restic printed on stderr during the run.
type BackupSummary struct {
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
	TotalDuration       float64   `json:"total_duration"` // seconds
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	SnapshotID          string    `json:"snapshot_id,omitempty"` // empty when no snapshot was written
	DryRun              bool      `json:"dry_run,omitempty"`

	// Errors holds the "error" messages restic printed while scanning or
	// reading the source; it is not part of restic's summary message.
	Errors []BackupError `json:"-"`
}

// BackupError is an "error" message of `restic backup --json` (on stderr).
type BackupError struct {
	MessageType string `json:"message_type"` // "error"
	Error       struct {
		Message string `json:"message"`
	} `json:"error"`
	During string `json:"during"` // "scan" or "archival"
	Item   string `json:"item"`
}

// ExitError is the message restic prints on stderr with --json when it exits
// with a non-zero status.
type ExitError struct {
	MessageType string `json:"message_type"` // "exit_error"
	Code        int    `json:"code"`
	Message     string `json:"message"`
}

// Snapshot is a snapshot as printed by `restic snapshots --json` (and in the
// keep/remove lists of forget): the stored snapshot plus its ID.
type Snapshot struct {
	Time           time.Time        `json:"time"`
	Parent         string           `json:"parent,omitempty"`
	Tree           string           `json:"tree"`
	Paths          []string         `json:"paths"`
	Hostname       string           `json:"hostname,omitempty"`
	Username       string           `json:"username,omitempty"`
	UID            uint32           `json:"uid,omitempty"`
	GID            uint32           `json:"gid,omitempty"`
	Excludes       []string         `json:"excludes,omitempty"`
	Tags           []string         `json:"tags,omitempty"`
	Original       string           `json:"original,omitempty"`
	ProgramVersion string           `json:"program_version,omitempty"`
	Summary        *SnapshotSummary `json:"summary,omitempty"`
	ID             string           `json:"id"`
	ShortID        string           `json:"short_id"`
}

// SnapshotSummary is the "summary" object restic ≥0.17 stores in a snapshot.
type SnapshotSummary struct {
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
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
}

// LsNode is one "node" message of `restic ls --json`.
type LsNode struct {
	Name        string      `json:"name"`
	Type        string      `json:"type"` // file, dir, symlink, dev, chardev, fifo, socket
	Path        string      `json:"path"` // absolute within the snapshot, e.g. "/src/a.txt"
	UID         uint32      `json:"uid"`
	GID         uint32      `json:"gid"`
	Size        *uint64     `json:"size,omitempty"` // set for regular files only, even when 0
	Mode        os.FileMode `json:"mode,omitempty"`
	Permissions string      `json:"permissions,omitempty"`
	ModTime     time.Time   `json:"mtime"`
	AccessTime  time.Time   `json:"atime"`
	ChangeTime  time.Time   `json:"ctime"`
	Inode       uint64      `json:"inode,omitempty"`
	MessageType string      `json:"message_type"` // "node"
}

// LsResult is the output of `restic ls --json SNAPSHOT`: the snapshot line
// followed by every node in tree order.
type LsResult struct {
	Snapshot Snapshot
	Nodes    []LsNode
}

// RestoreSummary is the final message of `restic restore --json`.
type RestoreSummary struct {
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

// Key is one entry of `restic key list --json`.
type Key struct {
	Current  bool   `json:"current"` // the key that opened the repository
	ID       string `json:"id"`
	UserName string `json:"userName"`
	HostName string `json:"hostName"`
	Created  string `json:"created"` // restic's "2006-01-02 15:04:05" in local time
}

// ForgetGroup is one group of `restic forget --json`.
type ForgetGroup struct {
	Tags    []string     `json:"tags"`
	Host    string       `json:"host"`
	Paths   []string     `json:"paths"`
	Keep    []Snapshot   `json:"keep"`
	Remove  []Snapshot   `json:"remove"`
	Reasons []KeepReason `json:"reasons"`
}

// KeepReason says why forget keeps a snapshot.
type KeepReason struct {
	Snapshot Snapshot `json:"snapshot"`
	Matches  []string `json:"matches"`
}

// Config is the repository config as printed by `restic cat config`.
type Config struct {
	Version           uint   `json:"version"`
	ID                string `json:"id"`
	ChunkerPolynomial string `json:"chunker_polynomial"`
}

// Tree is a tree blob as printed by `restic cat tree` or `restic cat blob`.
type Tree struct {
	Nodes []TreeNode `json:"nodes"`
}

// TreeNode is one node of a tree blob, as restic stores it. Name is kept as
// stored: restic escapes it like a Go string literal without the quotes (so
// non-UTF-8 bytes survive JSON); Unquoted returns the real name.
type TreeNode struct {
	Name               string                     `json:"name"`
	Type               string                     `json:"type"`
	Mode               os.FileMode                `json:"mode,omitempty"`
	ModTime            time.Time                  `json:"mtime"`
	AccessTime         time.Time                  `json:"atime"`
	ChangeTime         time.Time                  `json:"ctime"`
	UID                uint32                     `json:"uid"`
	GID                uint32                     `json:"gid"`
	User               string                     `json:"user,omitempty"`
	Group              string                     `json:"group,omitempty"`
	Inode              uint64                     `json:"inode,omitempty"`
	DeviceID           uint64                     `json:"device_id,omitempty"`
	Size               uint64                     `json:"size,omitempty"`
	Links              uint64                     `json:"links,omitempty"`
	LinkTarget         string                     `json:"linktarget,omitempty"`
	LinkTargetRaw      []byte                     `json:"linktarget_raw,omitempty"`
	ExtendedAttributes []ExtendedAttribute        `json:"extended_attributes,omitempty"`
	GenericAttributes  map[string]json.RawMessage `json:"generic_attributes,omitempty"`
	Device             uint64                     `json:"device,omitempty"`
	Content            []string                   `json:"content"`
	Subtree            string                     `json:"subtree,omitempty"`
	Error              string                     `json:"error,omitempty"`
}

// ExtendedAttribute is an extended attribute stored in a tree node.
type ExtendedAttribute struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Index is an index file as printed by `restic cat index`.
type Index struct {
	Supersedes []string    `json:"supersedes,omitempty"` // legacy, written by restic < 0.14
	Packs      []IndexPack `json:"packs"`
}

// IndexPack is one pack of an index file.
type IndexPack struct {
	ID    string      `json:"id"`
	Blobs []IndexBlob `json:"blobs"`
}

// IndexBlob is one blob of an index pack.
type IndexBlob struct {
	ID                 string `json:"id"`
	Type               string `json:"type"` // "data" or "tree"
	Offset             uint   `json:"offset"`
	Length             uint   `json:"length"`
	UncompressedLength uint   `json:"uncompressed_length,omitempty"`
}

// Unquoted returns the node's real file name, undoing restic's escaping.
func (n TreeNode) Unquoted() (string, error) {
	name, err := strconv.Unquote(`"` + n.Name + `"`)
	if err != nil {
		return "", fmt.Errorf("tree node name %q: %w", n.Name, err)
	}
	return name, nil
}
