package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
)

// initOptions are the flags of `init`.
type initOptions struct {
	secondary         secondaryRepoOptions
	CopyChunkerParams bool
	RepositoryVersion string
}

// secondaryRepoOptions name the repository to copy the chunker parameters
// from, with restic's --from-* flags and RESTIC_FROM_* variables.
type secondaryRepoOptions struct {
	Repo            string
	RepositoryFile  string
	PasswordFile    string
	PasswordCommand string
	KeyHint         string
}

func (o *secondaryRepoOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Repo, "from-repo", os.Getenv("RESTIC_FROM_REPOSITORY"), "source `repository` to copy chunker parameters from (default: $RESTIC_FROM_REPOSITORY)")
	f.StringVar(&o.RepositoryFile, "from-repository-file", os.Getenv("RESTIC_FROM_REPOSITORY_FILE"), "`file` from which to read the source repository location to copy chunker parameters from (default: $RESTIC_FROM_REPOSITORY_FILE)")
	f.StringVar(&o.PasswordFile, "from-password-file", os.Getenv("RESTIC_FROM_PASSWORD_FILE"), "`file` to read the source repository password from (default: $RESTIC_FROM_PASSWORD_FILE)")
	f.StringVar(&o.KeyHint, "from-key-hint", os.Getenv("RESTIC_FROM_KEY_HINT"), "key ID of key to try decrypting the source repository first (default: $RESTIC_FROM_KEY_HINT)")
	f.StringVar(&o.PasswordCommand, "from-password-command", os.Getenv("RESTIC_FROM_PASSWORD_COMMAND"), "`command` to obtain the source repository password from (default: $RESTIC_FROM_PASSWORD_COMMAND)")
}

func (o *secondaryRepoOptions) given() bool {
	return o.Repo != "" || o.RepositoryFile != ""
}

// initJSON is `init --json`, shaped like restic's.
type initJSON struct {
	MessageType string `json:"message_type"` // "initialized"
	ID          string `json:"id"`
	Repository  string `json:"repository"`
}

func newInitCommand(a *app) *cobra.Command {
	var opts initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new repository",
		Long: `
The "init" command initializes a new repository.

EXIT STATUS
===========

Exit status is 0 if the command was successful.
Exit status is 1 if there was any error.
`,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("the init command expects no arguments, only options - please see `cairn help init` for usage and flags")
			}
			return runInit(c.Context(), a, opts)
		},
	}
	opts.secondary.addFlags(cmd.Flags())
	cmd.Flags().BoolVar(&opts.CopyChunkerParams, "copy-chunker-params", false, "copy chunker parameters from the secondary repository (useful with the copy command)")
	cmd.Flags().StringVar(&opts.RepositoryVersion, "repository-version", "stable", "repository format version to use, allowed values are a format version, 'latest' and 'stable'")
	return cmd
}

func runInit(ctx context.Context, a *app, opts initOptions) error {
	p := a.printer()
	var version uint
	switch opts.RepositoryVersion {
	case "latest", "":
		version = repo.MaxVersion
	case "stable":
		version = repo.StableVersion
	default:
		v, err := strconv.ParseUint(opts.RepositoryVersion, 10, 32)
		if err != nil {
			return fmt.Errorf("invalid repository version %q", opts.RepositoryVersion)
		}
		if v < repo.MinVersion || v > repo.MaxVersion {
			return fmt.Errorf("only repository versions between %d and %d are allowed", repo.MinVersion, repo.MaxVersion)
		}
		version = uint(v)
	}
	var pol chunk.Pol
	switch {
	case opts.CopyChunkerParams:
		var err error
		if pol, err = a.secondaryPolynomial(ctx, opts.secondary); err != nil {
			return err
		}
	case opts.secondary.given():
		return errors.New("secondary repository must only be specified when copying the chunker parameters")
	}

	r, loc, err := a.createRepository(ctx, repo.InitOptions{Version: version, Polynomial: pol})
	if err != nil {
		return err
	}
	defer r.Close()
	id := r.Config().ID
	if a.gopts.JSON {
		return a.term.printJSON(initJSON{MessageType: "initialized", ID: id, Repository: loc})
	}
	p.P("created restic repository %s at %s", id[:10], loc)
	if opts.CopyChunkerParams {
		p.P(" with chunker parameters copied from secondary repository")
	}
	p.P("")
	p.P("Please note that knowledge of your password is required to access")
	p.P("the repository. Losing your password means that your data is")
	p.P("irrecoverably lost.")
	return nil
}

// secondaryPolynomial opens the --from-repo repository and returns its
// chunker polynomial.
func (a *app) secondaryPolynomial(ctx context.Context, o secondaryRepoOptions) (chunk.Pol, error) {
	if !o.given() {
		return 0, errors.New("please specify a source repository location (--from-repo or --from-repository-file)")
	}
	if o.Repo != "" && o.RepositoryFile != "" {
		return 0, errors.New("options --from-repo and --from-repository-file are mutually exclusive, please specify only one")
	}
	pw, err := passwordSource{File: o.PasswordFile, Command: o.PasswordCommand, EnvVar: "RESTIC_FROM_PASSWORD"}.resolve(ctx)
	if err != nil {
		return 0, fmt.Errorf("source repository password: %w", err)
	}
	r, err := a.openRepository(ctx, repoRef{
		Repo: o.Repo, RepositoryFile: o.RepositoryFile, Password: pw, KeyHint: o.KeyHint,
		Prompt: "enter password for source repository: ",
	})
	if err != nil {
		return 0, fmt.Errorf("source repository: %w", err)
	}
	defer r.Close()
	return r.Config().Polynomial, nil
}
