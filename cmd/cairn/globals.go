package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/pflag"

	"github.com/cairn-backup/cairn/backend/location"
	"github.com/cairn-backup/cairn/repo"
)

// globalOptions are the flags every command shares, with restic's names,
// environment variables and precedence (a flag beats its variable).
type globalOptions struct {
	Repo            string
	RepositoryFile  string
	PasswordFile    string
	PasswordCommand string
	KeyHint         string
	Quiet           bool
	Verbose         int
	NoLock          bool
	RetryLock       time.Duration
	JSON            bool
	CacheDir        string
	NoCache         bool
	Compression     string
	PackSize        uint
	Options         []string
	LimitUpload     int
	LimitDownload   int
	StuckTimeout    time.Duration
	CACerts         []string
	TLSClientCert   string
	LogFormat       string

	// Derived by finish.
	verbosity   uint
	compression repo.Compression
	extended    location.Options
}

func (o *globalOptions) addFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.Repo, "repo", "r", os.Getenv("RESTIC_REPOSITORY"), "`repository` to back up to or restore from (default: $RESTIC_REPOSITORY)")
	f.StringVar(&o.RepositoryFile, "repository-file", os.Getenv("RESTIC_REPOSITORY_FILE"), "`file` to read the repository location from (default: $RESTIC_REPOSITORY_FILE)")
	f.StringVarP(&o.PasswordFile, "password-file", "p", os.Getenv("RESTIC_PASSWORD_FILE"), "`file` to read the repository password from (default: $RESTIC_PASSWORD_FILE)")
	f.StringVar(&o.KeyHint, "key-hint", os.Getenv("RESTIC_KEY_HINT"), "`key` ID of key to try decrypting first (default: $RESTIC_KEY_HINT)")
	f.StringVar(&o.PasswordCommand, "password-command", os.Getenv("RESTIC_PASSWORD_COMMAND"), "`command` to obtain the repository password from, run without a shell (default: $RESTIC_PASSWORD_COMMAND)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "do not output comprehensive progress report")
	f.CountVarP(&o.Verbose, "verbose", "v", "be verbose (specify multiple times or a level using --verbose=n``, max level/times is 2)")
	f.BoolVar(&o.NoLock, "no-lock", false, "do not lock the repository, this allows some operations on read-only repositories")
	f.DurationVar(&o.RetryLock, "retry-lock", 0, "retry to lock the repository if it is already locked, takes a value like 5m or 2h (default: no retries)")
	f.BoolVar(&o.JSON, "json", false, "set output mode to JSON for commands that support it")
	f.StringVar(&o.CacheDir, "cache-dir", "", "set the cache `directory` (default: $RESTIC_CACHE_DIR, else the system's cache directory)")
	f.BoolVar(&o.NoCache, "no-cache", false, "do not use a local cache")
	f.StringVar(&o.Compression, "compression", "", "compression mode (only available for repository format version 2), one of (auto|off|fastest|better|max) (default: $RESTIC_COMPRESSION)")
	f.UintVar(&o.PackSize, "pack-size", 0, "set target pack `size` in MiB, created pack files may be larger (default: $RESTIC_PACK_SIZE)")
	f.StringSliceVarP(&o.Options, "option", "o", nil, "set extended option (`key=value`, can be specified multiple times)")
	f.IntVar(&o.LimitUpload, "limit-upload", 0, "limits uploads to a maximum `rate` in KiB/s. (default: unlimited)")
	f.IntVar(&o.LimitDownload, "limit-download", 0, "limits downloads to a maximum `rate` in KiB/s. (default: unlimited)")
	f.DurationVar(&o.StuckTimeout, "stuck-request-timeout", 5*time.Minute, "`duration` after which to retry stuck requests")
	var cacerts []string
	if v := os.Getenv("RESTIC_CACERT"); v != "" {
		cacerts = strings.Split(v, ",")
	}
	f.StringSliceVar(&o.CACerts, "cacert", cacerts, "`file` to load root certificates from (default: use system certificates or $RESTIC_CACERT)")
	logFormat := os.Getenv(logFormatEnv)
	if logFormat == "" {
		logFormat = logFormatAuto
	}
	f.StringVar(&o.LogFormat, "log-format", logFormat, "how stderr messages are written: auto (restic's plain lines; JSON records for `cairn run` when stderr is not a terminal), json or text (default: $CAIRN_LOG_FORMAT, else auto)")
	f.StringVar(&o.TLSClientCert, "tls-client-cert", os.Getenv("RESTIC_TLS_CLIENT_CERT"), "path to a `file` containing PEM encoded TLS client certificate and private key (default: $RESTIC_TLS_CLIENT_CERT)")
}

// finish applies the environment defaults that a flag overrides and checks
// the combinations, like restic's PreRun.
func (o *globalOptions) finish(f *pflag.FlagSet) error {
	if v := os.Getenv("RESTIC_PACK_SIZE"); v != "" && !f.Changed("pack-size") {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return fmt.Errorf("invalid value for RESTIC_PACK_SIZE %q: %w", v, err)
		}
		o.PackSize = uint(n)
	}
	if v := os.Getenv("RESTIC_COMPRESSION"); v != "" && !f.Changed("compression") {
		o.Compression = v
	}
	c, err := repo.ParseCompression(o.Compression)
	if err != nil {
		if f.Changed("compression") {
			return fmt.Errorf("--compression: %w", err)
		}
		return fmt.Errorf("invalid value for RESTIC_COMPRESSION: %w", err)
	}
	o.compression = c
	if o.PackSize != 0 && (o.PackSize < repo.MinPackSize>>20 || o.PackSize > repo.MaxPackSize>>20) {
		return fmt.Errorf("pack size %d MiB out of range (%d–%d MiB)", o.PackSize, repo.MinPackSize>>20, repo.MaxPackSize>>20)
	}
	if o.Quiet && o.Verbose > 0 {
		return errors.New("--quiet and --verbose cannot be specified at the same time")
	}
	switch {
	case o.Verbose >= 2:
		o.verbosity = 3
	case o.Verbose == 1:
		o.verbosity = 2
	case o.Quiet:
		o.verbosity = 0
	default:
		o.verbosity = 1
	}
	if o.LimitUpload < 0 || o.LimitDownload < 0 {
		return errors.New("--limit-upload and --limit-download must not be negative")
	}
	o.extended, err = location.ParseOptions(o.Options)
	if err != nil {
		return err
	}
	if o.StuckTimeout <= 0 {
		return errors.New("--stuck-request-timeout must be positive")
	}
	if f.Changed("stuck-request-timeout") {
		// The HTTP backends take the watchdog's timeout as an option of
		// their own; the flag sets it for whichever one is used.
		for _, scheme := range []string{"rest", "s3"} {
			o.extended[scheme+".stuck-request-timeout"] = o.StuckTimeout.String()
		}
	}
	return nil
}

// app is one run of the binary: its streams, options and registry.
type app struct {
	stdin     io.Reader
	stdinFile *os.File // for terminal checks and prompts; nil in tests
	term      *terminal
	gopts     globalOptions
	backends  *location.Registry

	// parsed is set once the command line parsed and the command starts:
	// errors before that are cobra's usage errors (unknown flag or
	// command), which restic prints without "Fatal: ".
	parsed bool

	// log is the structured logger when the log format asks for one
	// (setupLogging); atomic because the signal handler reads it.
	log atomic.Pointer[slog.Logger]

	// password is the repository password once resolved (flag, file,
	// command or environment); "" until then or when a prompt is needed.
	password string
}

func (a *app) printer() *printer { return newPrinter(a.term, a.gopts.verbosity, a.gopts.JSON) }

// resolvePassword looks up the password from --password-command,
// --password-file or $RESTIC_PASSWORD before the command runs, as restic
// does (commands that never open a repository skip this).
func (a *app) resolvePassword(ctx context.Context) error {
	pw, err := passwordSource{File: a.gopts.PasswordFile, Command: a.gopts.PasswordCommand, EnvVar: "RESTIC_PASSWORD"}.resolve(ctx)
	if err != nil {
		return fmt.Errorf("resolving password failed: %w", err)
	}
	a.password = pw
	return nil
}
