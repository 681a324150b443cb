package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
	"github.com/cairn-backup/cairn/repo/dump"
	"github.com/cairn-backup/cairn/repo/tree"
)

type dumpOptions struct {
	filter  snapshotFilterFlags
	Archive string
	Target  string
}

func newDumpCommand(a *app) *cobra.Command {
	var opts dumpOptions
	cmd := &cobra.Command{
		Use:   "dump [flags] snapshotID file",
		Short: "Print backed-up files or folders to stdout",
		Long: `
The "dump" command extracts files from a snapshot. A single file is printed
to stdout as it is; a folder is written as a tar (default) or zip archive of
its contents. Pass "/" as the file name to dump the whole snapshot as an
archive.

The special snapshot ID "latest" is the latest snapshot matching --host,
--path and --tag. "snapshotID:subfolder" puts the contents of subfolder at
the root of the archive.

` + readOnlyExitStatus,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runDump(c.Context(), a, opts, args)
		},
	}
	f := cmd.Flags()
	opts.filter.add(f, true)
	f.StringVarP(&opts.Archive, "archive", "a", "tar", "set archive `format` as \"tar\" or \"zip\"")
	f.StringVarP(&opts.Target, "target", "t", "", "write the output to target `path`")
	return cmd
}

func runDump(ctx context.Context, a *app, opts dumpOptions, args []string) error {
	if len(args) != 2 {
		return errors.New("no file and no snapshot ID specified")
	}
	format, err := dump.ParseFormat(opts.Archive)
	if err != nil {
		return err
	}
	components := dumpPathComponents(path.Clean(args[1]))

	ctx, r, done, err := a.openLocked(ctx, false, true)
	if err != nil {
		return err
	}
	defer done()
	sn, sub, err := findSnapshot(ctx, r, args[0], &opts.filter)
	if err != nil {
		return fmt.Errorf("failed to find snapshot: %v", err)
	}
	if err := r.LoadIndex(ctx, nil); err != nil {
		return err
	}
	root, err := findTreeDirectory(ctx, r, *sn.Tree, sub)
	if err != nil {
		return err
	}
	rootTree, err := r.LoadTree(ctx, root)
	if err != nil {
		return fmt.Errorf("loading tree for snapshot %q failed: %v", args[0], err)
	}

	var out io.Writer = a.term.Raw()
	archiveOK := func() error {
		if a.term.outIsTerm {
			return errors.New("stdout is the terminal, please redirect output")
		}
		return nil
	}
	if opts.Target != "" {
		f, err := os.Create(opts.Target)
		if err != nil {
			return fmt.Errorf("cannot dump to file: %w", err)
		}
		defer f.Close()
		out = f
		archiveOK = func() error { return nil }
	}
	d := dump.New(r, out, dump.Options{Workers: int(r.Backend().Connections())})
	if err := dumpPath(ctx, r, d, format, root, rootTree, "/", components, archiveOK); err != nil {
		return fmt.Errorf("cannot dump file: %v", err)
	}
	if f, ok := out.(*os.File); ok && opts.Target != "" {
		// A full disk may only show when the file is closed.
		if err := f.Close(); err != nil {
			return fmt.Errorf("cannot dump file: %v", err)
		}
	}
	return nil
}

// dumpPathComponents splits a cleaned path into its names; "/" gives
// one empty name, which stands for the whole tree.
func dumpPathComponents(p string) []string {
	dir, file := path.Split(p)
	if dir == "" || dir == "/" {
		return []string{file}
	}
	return append(dumpPathComponents(path.Join("/", dir)), file)
}

// dumpPath follows the path components from tree id and dumps what they
// name: a file's content, or a directory as an archive. t is tree id,
// loaded.
func dumpPath(ctx context.Context, r *repo.Repository, d *dump.Dumper, format dump.Format, id blob.ID, t *tree.Tree, prefix string, comps []string, archiveOK func() error) error {
	if comps[0] == "" {
		if err := archiveOK(); err != nil {
			return err
		}
		return d.WriteTree(ctx, id, "/", format)
	}
	item := path.Join(prefix, comps[0])
	// The first node with the name decides, as in restic.
	for _, n := range t.Nodes() {
		if n.Name != comps[0] {
			continue
		}
		last := len(comps) == 1
		switch {
		case last && n.Type == tree.TypeFile:
			return d.WriteFile(ctx, n)
		case !last && n.Type == tree.TypeDir && n.Subtree != nil:
			sub, err := r.LoadTree(ctx, *n.Subtree)
			if err != nil {
				return fmt.Errorf("cannot load subtree for %q: %w", item, err)
			}
			return dumpPath(ctx, r, d, format, *n.Subtree, sub, item, comps[1:], archiveOK)
		case n.Type == tree.TypeDir && n.Subtree != nil:
			if err := archiveOK(); err != nil {
				return err
			}
			return d.WriteTree(ctx, *n.Subtree, item, format)
		case !last:
			return fmt.Errorf("%q should be a dir, but is a %q", item, n.Type)
		default:
			return fmt.Errorf("%q should be a file, but is a %q", item, n.Type)
		}
	}
	return fmt.Errorf("path %q not found in snapshot", item)
}
