package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/repo"
	repocopy "github.com/cairn-backup/cairn/repo/copy"
)

type copyOptions struct {
	from   secondaryRepoOptions
	filter snapshotFilterFlags
}

func newCopyCommand(a *app) *cobra.Command {
	var opts copyOptions
	cmd := &cobra.Command{
		Use:   "copy [flags] [snapshotID ...]",
		Short: "Copy snapshots from one repository to another",
		Long: `
The "copy" command copies snapshots from the source repository (--from-repo)
into the repository given with -r. Without snapshot IDs, every snapshot that
matches the --host, --tag and --path filters is copied; snapshots that the
destination holds already (copied before, recognised by their "original"
field and their content) are skipped, so running copy again copies only new
snapshots.

The repositories have different keys, so all data is downloaded and uploaded
again; only blobs the destination lacks are copied. Files are not chunked
again: copied data deduplicates with the destination's own backups only when
both repositories use the same chunker parameters ("init
--copy-chunker-params"), and cairn warns when they do not. The destination's
--compression applies to the copied data.

` + exitStatusHelp,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			return runCopy(c.Context(), a, opts, args)
		},
	}
	opts.from.addCopyFlags(cmd.Flags())
	opts.filter.add(cmd.Flags(), false)
	return cmd
}

// addCopyFlags are restic's --from-* flags with copy's help texts.
func (o *secondaryRepoOptions) addCopyFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Repo, "from-repo", os.Getenv("RESTIC_FROM_REPOSITORY"), "source `repository` to copy snapshots from (default: $RESTIC_FROM_REPOSITORY)")
	f.StringVar(&o.RepositoryFile, "from-repository-file", os.Getenv("RESTIC_FROM_REPOSITORY_FILE"), "`file` from which to read the source repository location to copy snapshots from (default: $RESTIC_FROM_REPOSITORY_FILE)")
	f.StringVar(&o.PasswordFile, "from-password-file", os.Getenv("RESTIC_FROM_PASSWORD_FILE"), "`file` to read the source repository password from (default: $RESTIC_FROM_PASSWORD_FILE)")
	f.StringVar(&o.KeyHint, "from-key-hint", os.Getenv("RESTIC_FROM_KEY_HINT"), "key ID of key to try decrypting the source repository first (default: $RESTIC_FROM_KEY_HINT)")
	f.StringVar(&o.PasswordCommand, "from-password-command", os.Getenv("RESTIC_FROM_PASSWORD_COMMAND"), "`command` to obtain the source repository password from, run without a shell (default: $RESTIC_FROM_PASSWORD_COMMAND)")
}

func runCopy(ctx context.Context, a *app, opts copyOptions, args []string) error {
	from := opts.from
	if !from.given() {
		return errors.New("Please specify a source repository location (--from-repo or --from-repository-file)")
	}
	if from.Repo != "" && from.RepositoryFile != "" {
		return errors.New("Options --from-repo and --from-repository-file are mutually exclusive, please specify only one")
	}
	// The source password first, as restic resolves it before opening
	// either repository (a prompt, when there is none, comes on opening).
	pw, err := passwordSource{File: from.PasswordFile, Command: from.PasswordCommand, EnvVar: "RESTIC_FROM_PASSWORD"}.resolve(ctx)
	if err != nil {
		return fmt.Errorf("resolving password failed: %w", err)
	}
	// restic prints this command's messages as text even with --json.
	p := newPrinter(a.term, a.gopts.verbosity, false)

	src, err := a.openRepository(ctx, repoRef{
		Repo: from.Repo, RepositoryFile: from.RepositoryFile, Password: pw, KeyHint: from.KeyHint,
		Prompt: "enter password for source repository: ",
	})
	if err != nil {
		return err
	}
	defer src.Close()
	// A shared lock on the source (none with --no-lock, which restic
	// allows for the source only) and an appending one on the destination.
	ctx, unlockSrc, err := a.lockRepository(ctx, src, false, true)
	if err != nil {
		return err
	}
	defer unlockSrc()

	dst, err := a.openRepository(ctx, a.mainRepo())
	if err != nil {
		return err
	}
	defer dst.Close()
	ctx, unlockDst, err := a.lockRepository(ctx, dst, false, false)
	if err != nil {
		return err
	}
	defer unlockDst()

	if src.Config().Polynomial != dst.Config().Polynomial {
		// restic copies silently; the cost (data stored twice) deserves a
		// word, on stderr where scripts do not parse it.
		p.E("warning: the source and destination repositories use different chunker parameters: copied data will not deduplicate with data the destination already holds (create the destination with `init --copy-chunker-params` to avoid this)")
	}

	srcList, err := selectSnapshots(ctx, src, &opts.filter, args, p)
	if err != nil {
		return err
	}
	// Deterministic where restic's order is random (parallel loading).
	repo.SortSnapshots(srcList)
	dstList, err := selectSnapshots(ctx, dst, &opts.filter, nil, p)
	if err != nil {
		return err
	}
	missing, skipped := repocopy.Missing(srcList, dstList)
	for _, s := range skipped {
		p.V("\n%v", s.Source)
		p.V("skipping source snapshot %s, was already copied to snapshot %s", s.Source.ID().Str(), s.Copy.ID().Str())
	}
	if len(missing) == 0 {
		return ctx.Err()
	}

	var batch int
	_, err = repocopy.Snapshots(ctx, src, dst, missing, repocopy.Options{
		Started: func(sn *repo.Snapshot) {
			batch++
			p.P("\n%v", sn)
			p.P("  copy started, this may take a while...")
		},
		Planned: func(_ *repo.Snapshot, pl repocopy.Plan) {
			p.V("  copy %d blobs with disk size %s in %d packfiles\n", pl.Blobs, formatBytes(uint64(pl.Bytes)), pl.Packs)
		},
		Saved: func(from, to *repo.Snapshot) {
			if batch > 1 {
				// restic separates the saved lines from the copy lines of a
				// batch with more than one snapshot.
				p.P("")
			}
			batch = 0
			p.P("snapshot %s saved, copied from source snapshot %s", to.ID().Str(), from.ID().Str())
		},
	})
	if err != nil {
		return err
	}
	return ctx.Err()
}
