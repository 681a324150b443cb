package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/location"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/cache"
)

// repoRef says which repository to open and how to get its password: the
// main repository from the global flags, or the secondary repository of
// `init --copy-chunker-params`.
type repoRef struct {
	Repo, RepositoryFile string
	Password             string // resolved already; "" means prompt
	KeyHint              string
	// Prompt is what to ask on a terminal.
	Prompt string
}

// mainRepo describes the repository named by the global flags.
func (a *app) mainRepo() repoRef {
	return repoRef{
		Repo: a.gopts.Repo, RepositoryFile: a.gopts.RepositoryFile,
		Password: a.password, KeyHint: a.gopts.KeyHint,
		Prompt: "enter password for repository: ",
	}
}

// location returns the repository string, from -r or --repository-file
// (whose content is trimmed), like restic.
func (r repoRef) location() (string, error) {
	if r.Repo == "" && r.RepositoryFile == "" {
		return "", errors.New("please specify repository location (-r or --repository-file)")
	}
	if r.RepositoryFile == "" {
		return r.Repo, nil
	}
	if r.Repo != "" {
		return "", errors.New("options -r and --repository-file are mutually exclusive, please specify only one")
	}
	data, err := readTextFile(r.RepositoryFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("repository file %s does not exist", r.RepositoryFile)
	}
	if err != nil {
		return "", fmt.Errorf("read repository file: %w", err)
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("repository file %s is empty", r.RepositoryFile)
	}
	return s, nil
}

// repoOptions are the repository options from the global flags.
func (a *app) repoOptions(keyHint string) (repo.Options, error) {
	opts := repo.Options{
		Compression: a.gopts.compression,
		PackSize:    a.gopts.PackSize << 20,
		KeyHint:     keyHint,
	}
	if !a.gopts.NoCache {
		dir := a.gopts.CacheDir
		if dir == "" {
			var err error
			if dir, err = cache.DefaultDir(); err != nil {
				// restic runs without a cache when it has no place for one.
				a.printer().E("unable to open cache: %v", err)
			}
		}
		opts.CacheDir = dir
	}
	return opts, nil
}

// openBackend parses the location and opens its backend, rate-limited as
// the flags ask.
func (a *app) openBackend(ctx context.Context, loc string, create bool) (backend.Backend, *location.Location, error) {
	a.term.addSecrets(location.Passwords(loc)...)
	l, err := a.backends.Parse(loc, a.gopts.extended)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing repository location failed: %w", err)
	}
	var be backend.Backend
	if create {
		be, err = l.Create(ctx)
	} else {
		be, err = l.Open(ctx)
	}
	if err != nil {
		return nil, nil, err
	}
	limited, err := location.Limit(be, location.Limits{UploadKiB: a.gopts.LimitUpload, DownloadKiB: a.gopts.LimitDownload})
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	return limited, l, nil
}

// openRepository opens an existing repository: the location, then the key
// (with up to three prompts on a terminal when no password was given,
// like restic), then the config.
func (a *app) openRepository(ctx context.Context, ref repoRef) (*repo.Repository, error) {
	loc, err := ref.location()
	if err != nil {
		return nil, err
	}
	be, l, err := a.openBackend(ctx, loc, false)
	if err != nil {
		if errors.Is(err, backend.ErrNoRepository) {
			return nil, &noRepoError{err: err, loc: a.backends.StripPassword(loc)}
		}
		return nil, err
	}
	r, err := a.unlockRepository(ctx, be, ref)
	if err != nil {
		be.Close()
		if errors.Is(err, backend.ErrNoRepository) {
			return nil, &noRepoError{err: fmt.Errorf("%w: unable to open config file", err), loc: l.String()}
		}
		return nil, err
	}
	p := a.printer()
	extra := ""
	if r.Config().Version >= 2 {
		extra = ", compression level " + a.gopts.compression.String()
	}
	p.PT("repository %s opened (version %d%s)", shortID(r.Config().ID), r.Config().Version, extra)
	return r, nil
}

// unlockRepository tries the password, prompting when there is none.
func (a *app) unlockRepository(ctx context.Context, be backend.Backend, ref repoRef) (*repo.Repository, error) {
	opts, err := a.repoOptions(ref.KeyHint)
	if err != nil {
		return nil, err
	}
	tries := 1
	if ref.Password == "" && a.term.inIsTerm {
		tries = 3
	}
	for i := 0; ; i++ {
		pw := ref.Password
		if pw == "" {
			// A missing repository must be reported before a prompt.
			if _, err := be.Stat(ctx, backend.Handle{Type: backend.ConfigFile}); errors.Is(err, fs.ErrNotExist) {
				return nil, backend.ErrNoRepository
			}
			if pw, err = a.promptPassword(ctx, ref.Prompt); err != nil {
				if errors.Is(err, errEmptyPassword) && i+1 < tries {
					a.printer().E("%v. Try again", err)
					continue
				}
				return nil, err
			}
		}
		r, err := repo.Open(ctx, be, pw, opts)
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, repo.ErrWrongPassword) || i+1 >= tries || ctx.Err() != nil {
			return nil, err
		}
		a.printer().E("%v. Try again", repo.ErrWrongPassword)
	}
}

// createRepository initialises a new repository at the main location.
func (a *app) createRepository(ctx context.Context, iopts repo.InitOptions) (*repo.Repository, string, error) {
	loc, err := a.mainRepo().location()
	if err != nil {
		return nil, "", err
	}
	pw := a.password
	if pw == "" {
		if pw, err = a.promptPasswordTwice(ctx, "enter password for new repository: ", "enter password again: "); err != nil {
			return nil, "", err
		}
	}
	be, l, err := a.openBackend(ctx, loc, true)
	if err != nil {
		return nil, "", fmt.Errorf("create repository at %s failed: %w", a.backends.StripPassword(loc), err)
	}
	opts, err := a.repoOptions("")
	if err != nil {
		be.Close()
		return nil, "", err
	}
	r, err := repo.Init(ctx, be, pw, iopts, opts)
	if err != nil {
		be.Close()
		return nil, "", fmt.Errorf("create key in repository at %s failed: %w", l, err)
	}
	// Named as the user wrote it (without an added "local:"), like restic.
	return r, a.backends.StripPassword(loc), nil
}

// lockRepository takes a shared or exclusive lock unless --no-lock (for
// commands that allow it). The returned context ends if the lock is lost;
// unlock releases it, also after cancellation.
func (a *app) lockRepository(ctx context.Context, r *repo.Repository, exclusive, allowNoLock bool) (context.Context, func(), error) {
	if allowNoLock && a.gopts.NoLock {
		return ctx, func() {}, nil
	}
	// A killed run's lock is stale and removed on the way (see
	// repo.Lock.Stale); it was another process's file, so say so.
	stale := func(l *repo.Lock) { a.printer().E("removed stale %v", l) }
	lctx, held, err := r.Lock(ctx, exclusive, repo.LockOptions{StaleRemoved: stale})
	var locked *repo.LockedError
	if errors.As(err, &locked) && a.gopts.RetryLock > 0 {
		if !a.gopts.JSON {
			a.printer().P("repo already locked, waiting up to %s for the lock", a.gopts.RetryLock)
		}
		lctx, held, err = r.Lock(ctx, exclusive, repo.LockOptions{RetryLock: a.gopts.RetryLock, StaleRemoved: stale})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("unable to create lock in backend: %w", err)
	}
	unlock := func() {
		if err := held.Unlock(); err != nil {
			a.printer().E("error releasing the repository lock: %v", err)
		}
	}
	return lctx, unlock, nil
}

// openLocked opens the main repository and locks it; close releases both.
func (a *app) openLocked(ctx context.Context, exclusive, allowNoLock bool) (context.Context, *repo.Repository, func(), error) {
	r, err := a.openRepository(ctx, a.mainRepo())
	if err != nil {
		return nil, nil, nil, err
	}
	lctx, unlock, err := a.lockRepository(ctx, r, exclusive, allowNoLock)
	if err != nil {
		r.Close()
		return nil, nil, nil, err
	}
	return lctx, r, func() { unlock(); r.Close() }, nil
}

// shortID is the first eight characters of an ID, restic's short form.
func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// noRepoError is restic's "repository does not exist" message with the
// hint naming the location (password redacted).
type noRepoError struct {
	err error
	loc string
}

func (e *noRepoError) Error() string {
	return e.err.Error() + "\nIs there a repository at the following location?\n" + e.loc
}

func (e *noRepoError) Unwrap() error { return e.err }
