package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/tree"
	"github.com/cairn-backup/cairn/repo/walk"
)

// The counting modes of restic's stats command.
const (
	statsRestoreSize     = "restore-size"
	statsFilesByContents = "files-by-contents"
	statsBlobsPerFile    = "blobs-per-file"
	statsRawData         = "raw-data"
)

// readOnlyExitStatus ends the help of the commands that only read a
// repository (stats, diff, find, dump): restic's exit codes for them.
const readOnlyExitStatus = `` + exitStatusHelp

type statsOptions struct {
	filter snapshotFilterFlags
	Mode   string
}

func newStatsCommand(a *app) *cobra.Command {
	var opts statsOptions
	cmd := &cobra.Command{
		Use:   "stats [flags] [snapshot ID] [...]",
		Short: "Scan the repository and show basic statistics",
		Long: `
The "stats" command walks one or multiple snapshots in a repository and
accumulates statistics about the data stored therein, counted in one of the
modes chosen with --mode:

* restore-size: (default) the size of the files as restored; hard links to
  one inode count once per snapshot.
* files-by-contents: the size of unique files, a file being unique by its
  content.
* raw-data: the size of the blobs the snapshots reference, each blob once,
  as stored (compressed and encrypted), with compression figures for
  repository version 2.
* blobs-per-file: the size of the blobs of each unique file, a file being
  unique by its path and its content.

Without snapshot IDs all snapshots matching --host, --tag and --path are
counted; the special ID "latest" is the latest of them.

` + readOnlyExitStatus,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runStats(c.Context(), a, opts, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Mode, "mode", statsRestoreSize, "counting mode: restore-size (default), files-by-contents, blobs-per-file or raw-data")
	opts.filter.add(f, false)
	return cmd
}

// statsJSON is restic's stats JSON document.
type statsJSON struct {
	TotalSize              uint64  `json:"total_size"`
	TotalUncompressedSize  uint64  `json:"total_uncompressed_size,omitempty"`
	CompressionRatio       float64 `json:"compression_ratio,omitempty"`
	CompressionProgress    float64 `json:"compression_progress,omitempty"`
	CompressionSpaceSaving float64 `json:"compression_space_saving,omitempty"`
	TotalFileCount         uint64  `json:"total_file_count,omitempty"`
	TotalBlobCount         uint64  `json:"total_blob_count,omitempty"`
	SnapshotsCount         int     `json:"snapshots_count"`
}

// statsCounter accumulates one stats run. The progress counters are what
// restic's final progress line shows: files, blobs and bytes of the last
// snapshot walked (they restart with each snapshot).
type statsCounter struct {
	out  statsJSON
	mode string
	r    *repo.Repository

	uniqueFiles map[[32]byte]struct{}           // content hashes seen
	fileBlobs   map[string]map[blob.ID]struct{} // blobs-per-file: blobs counted per path
	blobs       map[blob.Handle]struct{}        // raw-data: blobs referenced
	progFiles   uint64
	progBlobs   uint64
	progBytes   uint64
}

func runStats(ctx context.Context, a *app, opts statsOptions, args []string) error {
	switch opts.Mode {
	case statsRestoreSize, statsFilesByContents, statsBlobsPerFile, statsRawData:
	default:
		return fmt.Errorf("unknown counting mode: %s (use the -h flag to get a list of supported modes)", opts.Mode)
	}
	p := a.printer()
	ctx, r, done, err := a.openLocked(ctx, false, true)
	if err != nil {
		return err
	}
	defer done()
	if err := r.LoadIndex(ctx, nil); err != nil {
		return err
	}
	if !a.gopts.JSON {
		p.S("scanning...")
	}
	list, err := selectSnapshots(ctx, r, &opts.filter, args, p)
	if err != nil {
		return err
	}
	start := time.Now()
	c := &statsCounter{
		mode: opts.Mode, r: r,
		uniqueFiles: map[[32]byte]struct{}{},
		fileBlobs:   map[string]map[blob.ID]struct{}{},
		blobs:       map[blob.Handle]struct{}{},
	}
	progressLine := func() {
		if !a.gopts.JSON {
			p.S("%s", statsProgressLine(time.Since(start), c, len(list)))
		}
	}
	for _, sn := range list {
		if err := c.addSnapshot(ctx, sn); err != nil {
			progressLine()
			return fmt.Errorf("error walking snapshot: %v", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if opts.Mode == statsRawData {
		if err := c.countBlobs(); err != nil {
			return err
		}
	}
	progressLine()
	if a.gopts.JSON {
		return a.term.printJSON(c.out)
	}
	printStatsText(p, opts.Mode, c.out)
	return nil
}

// statsProgressLine is restic's final progress line of stats.
func statsProgressLine(d time.Duration, c *statsCounter, total int) string {
	done := uint64(c.out.SnapshotsCount)
	s := fmt.Sprintf("[%s] %s  %d / %d snapshots", formatDuration(d), formatPercent(done, uint64(total)), done, total)
	if c.progFiles > 0 {
		s += fmt.Sprintf(", %v files", c.progFiles)
	}
	if c.progBlobs > 0 {
		s += fmt.Sprintf(", %d blobs", c.progBlobs)
	}
	return s + ", " + formatBytes(c.progBytes)
}

func printStatsText(p *printer, mode string, s statsJSON) {
	p.S("Stats in %s mode:", mode)
	p.S("     Snapshots processed:  %d", s.SnapshotsCount)
	if s.TotalBlobCount > 0 {
		p.S("        Total Blob Count:  %d", s.TotalBlobCount)
	}
	if s.TotalFileCount > 0 {
		p.S("        Total File Count:  %d", s.TotalFileCount)
	}
	if s.TotalUncompressedSize > 0 {
		p.S(" Total Uncompressed Size:  %-5s", formatBytes(s.TotalUncompressedSize))
	}
	p.S("              Total Size:  %-5s", formatBytes(s.TotalSize))
	if s.CompressionProgress > 0 {
		p.S("    Compression Progress:  %.2f%%", s.CompressionProgress)
	}
	if s.CompressionRatio > 0 {
		p.S("       Compression Ratio:  %.2fx", s.CompressionRatio)
	}
	if s.CompressionSpaceSaving > 0 {
		p.S("Compression Space Saving:  %.2f%%", s.CompressionSpaceSaving)
	}
}

// hardLinkKey identifies an inode for restore-size's hard-link rule.
type hardLinkKey struct{ inode, device uint64 }

func (c *statsCounter) addSnapshot(ctx context.Context, sn *repo.Snapshot) error {
	c.progFiles, c.progBlobs, c.progBytes = 0, 0, 0
	if sn.Tree == nil {
		return fmt.Errorf("snapshot %s has nil tree", sn.ID().Str())
	}
	c.out.SnapshotsCount++
	if c.mode == statsRawData {
		// Only the set of blobs matters; it is counted after all snapshots.
		return walk.UsedBlobs(ctx, c.r, []blob.ID{*sn.Tree}, c.blobs)
	}
	links := map[hardLinkKey]struct{}{} // per snapshot, like a restore
	err := walk.Walk(ctx, c.r, *sn.Tree, func(parent blob.ID, p string, n *tree.Node, loadErr error) error {
		if loadErr != nil {
			return loadErr
		}
		if n == nil {
			return nil
		}
		c.progFiles++
		c.progBytes += n.Size
		switch c.mode {
		case statsFilesByContents, statsBlobsPerFile:
			// Every node counts, directories and empty files as one
			// "file" with no content, as in restic.
			key := contentKey(n)
			if _, seen := c.uniqueFiles[key]; seen {
				return nil
			}
			c.uniqueFiles[key] = struct{}{}
			if c.mode == statsFilesByContents {
				c.out.TotalSize += n.Size
				c.out.TotalFileCount++
				return nil
			}
			return c.addFileBlobs(parent, p, n)
		case statsRestoreSize:
			c.out.TotalFileCount++
			if n.Links == 1 || n.Type == tree.TypeDir {
				c.out.TotalSize += n.Size
				return nil
			}
			k := hardLinkKey{n.Inode, n.DeviceID}
			if _, seen := links[k]; !seen || n.Inode == 0 {
				links[k] = struct{}{}
				c.out.TotalSize += n.Size
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walking tree %s: %v", *sn.Tree, err)
	}
	return nil
}

// addFileBlobs counts the blobs of a file not yet counted for its path.
// restic keys the map by the node's path joined with its name again; the
// key only has to be unique per path, which it is.
func (c *statsCounter) addFileBlobs(parent blob.ID, p string, n *tree.Node) error {
	key := path.Join(p, n.Name)
	for _, id := range n.Content {
		c.progBlobs++
		seen := c.fileBlobs[key]
		if seen == nil {
			seen = map[blob.ID]struct{}{}
			c.fileBlobs[key] = seen
			c.out.TotalFileCount++
		}
		if _, ok := seen[id]; ok {
			continue
		}
		size, ok := c.r.Index().PlaintextLength(blob.Handle{ID: id, Type: blob.DataBlob})
		if !ok {
			return fmt.Errorf("blob %s not found for tree %s", id, parent)
		}
		c.out.TotalSize += uint64(size)
		seen[id] = struct{}{}
		c.out.TotalBlobCount++
	}
	return nil
}

// contentKey hashes the sequence of a file's blob IDs.
func contentKey(n *tree.Node) [32]byte {
	h := sha256.New()
	for _, id := range n.Content {
		h.Write(id[:])
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// cryptoOverhead is what encryption adds to a blob: IV and MAC.
const cryptoOverhead = 32

// countBlobs sums the stored and uncompressed sizes of the collected blobs.
func (c *statsCounter) countBlobs() error {
	var compressed, compressedPlain uint64
	v2 := c.r.Config().Version >= 2
	for h := range c.blobs {
		locs := c.r.Index().Lookup(h)
		if len(locs) == 0 {
			return fmt.Errorf("blob %v not found", h)
		}
		b := locs[0]
		c.out.TotalSize += uint64(b.Length)
		if v2 {
			plain := uint64(b.Length) // stored length of an uncompressed blob
			if b.UncompressedLength != 0 {
				plain = uint64(b.UncompressedLength) + cryptoOverhead
				compressed += uint64(b.Length)
				compressedPlain += plain
			}
			c.out.TotalUncompressedSize += plain
		}
		c.out.TotalBlobCount++
		c.progBlobs++
		c.progBytes += uint64(b.Length)
	}
	if compressed > 0 {
		c.out.CompressionRatio = float64(compressedPlain) / float64(compressed)
	}
	if c.out.TotalUncompressedSize > 0 {
		c.out.CompressionProgress = float64(compressedPlain) / float64(c.out.TotalUncompressedSize) * 100
		c.out.CompressionSpaceSaving = (1 - float64(c.out.TotalSize)/float64(c.out.TotalUncompressedSize)) * 100
	}
	return nil
}
