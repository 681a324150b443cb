package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

var catTypes = []string{"config", "index", "snapshot", "key", "masterkey", "lock", "pack", "blob", "tree"}

func newCatCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cat [flags] [masterkey|config|pack ID|blob ID|snapshot ID|index ID|key ID|lock ID|tree snapshot:subfolder]",
		Short: "Print internal objects to stdout",
		Long: `
The "cat" command prints internal objects of the repository to stdout, in
restic's formats: config, snapshot, key, masterkey and lock as indented JSON,
an index as its stored JSON, a pack as its raw bytes, a blob (data or tree)
as its plaintext, and "tree snapshot[:subfolder]" as the tree blob of that
directory. As an extension, "tree" also accepts the full ID of a tree blob.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		ValidArgs:         catTypes,
		RunE: func(c *cobra.Command, args []string) error {
			return runCat(c.Context(), a, args)
		},
	}
}

func validateCatArgs(args []string) error {
	if len(args) < 1 {
		return errors.New("type not specified")
	}
	found := false
	for _, t := range catTypes {
		found = found || t == args[0]
	}
	if !found {
		return fmt.Errorf("invalid type %q, must be one of [%s]", args[0], strings.Join(catTypes, "|"))
	}
	if args[0] != "masterkey" && args[0] != "config" && len(args) != 2 {
		return errors.New("ID not specified")
	}
	return nil
}

// configJSON is the config as restic's cat prints it.
type configJSON struct {
	Version    uint   `json:"version"`
	ID         string `json:"id"`
	Polynomial string `json:"chunker_polynomial"`
}

func runCat(ctx context.Context, a *app, args []string) error {
	if err := validateCatArgs(args); err != nil {
		return err
	}
	ctx, r, done, err := a.openLocked(ctx, false, true)
	if err != nil {
		return err
	}
	defer done()
	p := a.printer()
	kind := args[0]

	var id blob.ID
	switch kind {
	case "masterkey", "config", "snapshot", "tree":
	default:
		if id, err = blob.ParseID(args[1]); err != nil {
			return fmt.Errorf("unable to parse ID: %w", err)
		}
	}

	switch kind {
	case "config":
		cfg := r.Config()
		return printIndented(p, configJSON{Version: cfg.Version, ID: cfg.ID, Polynomial: chunk.FormatPol(cfg.Polynomial)})
	case "masterkey":
		return printIndented(p, r.Key())
	case "index":
		buf, err := r.LoadUnpacked(ctx, backend.IndexFile, id)
		if err != nil {
			return err
		}
		p.S("%s", buf)
		return nil
	case "snapshot":
		sn, _, err := r.FindSnapshot(ctx, args[1], nil)
		if err != nil {
			return fmt.Errorf("could not find snapshot: %w", err)
		}
		return printIndented(p, sn)
	case "key":
		return catKey(ctx, r, id, p)
	case "lock":
		l, err := r.LoadLock(ctx, id)
		if err != nil {
			return err
		}
		return printIndented(p, l)
	case "pack":
		buf, err := backend.LoadAll(ctx, r.Backend(), backend.Handle{Type: backend.PackFile, Name: id.String()})
		if buf == nil {
			// A damaged pack is still printed when it could be read.
			return fmt.Errorf("load pack %s: %w", id.Str(), err)
		}
		if got := blob.ID(sha256.Sum256(buf)); got != id {
			p.E("Warning: hash of data does not match ID, want\n  %v\ngot:\n  %v", id, got)
		}
		_, err = a.term.Raw().Write(buf)
		return err
	case "blob":
		if err := r.LoadIndex(ctx, nil); err != nil {
			return err
		}
		for _, t := range []blob.Type{blob.DataBlob, blob.TreeBlob} {
			if !r.Index().Has(blob.Handle{ID: id, Type: t}) {
				continue
			}
			buf, err := r.LoadBlob(ctx, t, id, nil)
			if err != nil {
				return err
			}
			_, err = a.term.Raw().Write(buf)
			return err
		}
		return errors.New("blob not found")
	case "tree":
		return catTree(ctx, a, r, args[1])
	}
	return errors.New("invalid type")
}

// catTree prints the tree blob of "snapshot[:subfolder]", or of a tree ID.
func catTree(ctx context.Context, a *app, r *repo.Repository, arg string) error {
	if err := r.LoadIndex(ctx, nil); err != nil {
		return err
	}
	var treeID blob.ID
	sn, sub, err := r.FindSnapshot(ctx, arg, nil)
	switch {
	case err == nil:
		if treeID, err = findTreeDirectory(ctx, r, *sn.Tree, sub); err != nil {
			return err
		}
	default:
		id, perr := blob.ParseID(arg)
		if perr != nil || !r.Index().Has(blob.Handle{ID: id, Type: blob.TreeBlob}) {
			return fmt.Errorf("could not find snapshot: %w", err)
		}
		treeID = id
	}
	buf, err := r.LoadBlob(ctx, blob.TreeBlob, treeID, nil)
	if err != nil {
		return err
	}
	_, err = a.term.Raw().Write(buf)
	return err
}

// catKey prints a key file as indented JSON. The stored file is Go's
// compact encoding of restic's key struct, so indenting it gives exactly
// what restic prints; its name is checked against its hash first.
func catKey(ctx context.Context, r *repo.Repository, id blob.ID, p *printer) error {
	buf, err := backend.LoadAll(ctx, r.Backend(), backend.Handle{Type: backend.KeyFile, Name: id.String()})
	if err != nil {
		return fmt.Errorf("load key %s: %w", id.Str(), err)
	}
	if blob.ID(sha256.Sum256(buf)) != id {
		return fmt.Errorf("load key %s: content does not match its name (damaged file)", id.Str())
	}
	var out bytes.Buffer
	if err := json.Indent(&out, buf, "", "  "); err != nil {
		return fmt.Errorf("load key %s: %w", id.Str(), err)
	}
	p.S("%s", out.String())
	return nil
}

func printIndented(p *printer, v any) error {
	buf, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	p.S("%s", buf)
	return nil
}
