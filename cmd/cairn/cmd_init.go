package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/chunk"
	"github.com/cairn-backup/cairn/repo"
)

// initOptions are the flags of `init`.
type initOptions struct {
	secondary         secondaryRepoOptions
	CopyChunkerParams bool
	RepositoryVersion string
	versionGiven      bool // --repository-version was set explicitly
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

// initJSON is `init --json`, shaped like restic's. A repository that
// existed already adds already_initialized and its version (restic has no
// such message: it fails instead).
type initJSON struct {
	MessageType        string `json:"message_type"` // "initialized"
	ID                 string `json:"id"`
	Repository         string `json:"repository"`
	AlreadyInitialized bool   `json:"already_initialized,omitempty"`
	Version            uint   `json:"version,omitempty"`
}

func newInitCommand(a *app) *cobra.Command {
	var opts initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new repository",
		Long: `
The "init" command initializes a new repository.

Unlike restic, init is idempotent: when the location already holds a
repository that opens with the given password, it says so and exits 0
without changing anything (so it can run on every deployment).

EXIT STATUS
===========

Exit status is 0 if the command was successful (also when the repository
already existed).
Exit status is 1 if there was any error.
Exit status is 12 if the repository already exists and the password is incorrect.
`,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("the init command expects no arguments, only options - please see `cairn help init` for usage and flags")
			}
			opts.versionGiven = c.Flags().Changed("repository-version")
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
	if !opts.CopyChunkerParams && opts.secondary.given() {
		return errors.New("secondary repository must only be specified when copying the chunker parameters")
	}
	existing, loc, err := a.openExistingRepository(ctx)
	if err != nil {
		return err
	}
	if existing != nil {
		defer existing.Close()
		return reportExisting(a, existing, loc, opts, version)
	}
	var pol chunk.Pol
	if opts.CopyChunkerParams {
		if pol, err = a.secondaryPolynomial(ctx, opts.secondary); err != nil {
			return err
		}
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

// openExistingRepository opens the main repository if its location holds a
// config already, and returns nil (and no error) when there is none yet.
// A wrong password keeps repo.ErrWrongPassword (exit 12); a location that
// cannot be read is a fatal error that never reads as "no repository".
func (a *app) openExistingRepository(ctx context.Context) (*repo.Repository, string, error) {
	ref := a.mainRepo()
	loc, err := ref.location()
	if err != nil {
		return nil, "", err
	}
	shown := a.backends.StripPassword(loc)
	be, _, err := a.openBackend(ctx, loc, false)
	if errors.Is(err, backend.ErrNoRepository) {
		return nil, shown, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("unable to read repository location %s: %s", shown, err)
	}
	if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); errors.Is(err, fs.ErrNotExist) {
		be.Close()
		return nil, shown, nil
	} else if err != nil {
		be.Close()
		return nil, "", fmt.Errorf("unable to read repository config at %s: %s", shown, err)
	}
	r, err := a.unlockRepository(ctx, be, ref)
	if err != nil {
		be.Close()
		if errors.Is(err, repo.ErrWrongPassword) {
			return nil, "", fmt.Errorf("repository at %s already exists: %w", shown, err)
		}
		return nil, "", fmt.Errorf("repository at %s already exists but cannot be opened: %s", shown, err)
	}
	return r, shown, nil
}

// reportExisting tells that the repository existed already, and which of
// the requested settings it does not have: init never changes it.
func reportExisting(a *app, r *repo.Repository, loc string, opts initOptions, version uint) error {
	cfg := r.Config()
	if a.gopts.JSON {
		return a.term.printJSON(initJSON{MessageType: "initialized", ID: cfg.ID, Repository: loc, AlreadyInitialized: true, Version: cfg.Version})
	}
	p := a.printer()
	p.P("repository %s at %s already initialized", shortID(cfg.ID), loc)
	if opts.versionGiven && cfg.Version != version {
		p.P("note: the repository has version %d, not the requested version %d; it was left unchanged", cfg.Version, version)
	}
	if opts.CopyChunkerParams {
		p.P("note: chunker parameters were not copied; the existing repository was left unchanged")
	}
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
