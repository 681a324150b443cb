package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
)

// jobConfig is the file `cairn run --config` reads: what one scheduled run
// does, in order. Unknown keys are refused, so a typo never drops a step.
type jobConfig struct {
	// Name names the run: the Pushgateway group of its job-wide metrics
	// (job="cairn",run=NAME) and their run label, so that several runs
	// (one per source, a check) do not overwrite each other.
	Name string `yaml:"name"`
	// Sources are backed up one after the other, one snapshot each.
	Sources []jobSource `yaml:"sources"`
	// Hooks run before the backups and after everything else.
	Hooks struct {
		Pre  []jobHook `yaml:"pre"`
		Post []jobHook `yaml:"post"`
		// OnPreFailure is "abort" (default: no backup, the run fails) or
		// "continue" (back up anyway; the run still fails).
		OnPreFailure string `yaml:"onPreFailure"`
	} `yaml:"hooks"`
	// Forget, when it has arguments, runs `cairn forget ARGS` after the
	// backups succeeded (e.g. [--keep-daily, "7", --prune]).
	Forget []string `yaml:"forget"`
	// Prune, when present, runs `cairn prune ARGS` after forget, when
	// everything before it succeeded.
	Prune *jobStep `yaml:"prune"`
	// Check, when present, runs `cairn check ARGS` after the backups,
	// forget and prune succeeded (alone in a check-only run); its error
	// count becomes cairn_check_errors.
	Check *jobStep `yaml:"check"`
	// Webhook is notified of the outcome.
	Webhook jobWebhook `yaml:"webhook"`
	// Metrics are written in Prometheus' text format.
	Metrics struct {
		// Textfile is written atomically for node-exporter's textfile collector.
		Textfile string `yaml:"textfile"`
		// Pushgateway is a Pushgateway base URL (job "cairn"); default
		// $CAIRN_PUSHGATEWAY_URL.
		Pushgateway string `yaml:"pushgateway"`
	} `yaml:"metrics"`
}

// jobSource is one backup: local paths or sftp:// URLs, with a stable host.
type jobSource struct {
	Name     string   `yaml:"name"`
	Host     string   `yaml:"host"`
	Paths    []string `yaml:"paths"`
	Tags     []string `yaml:"tags"`
	Excludes []string `yaml:"excludes"`
	// Args are further backup flags.
	Args []string `yaml:"args"`
}

// jobHook is a command run without a shell.
type jobHook struct {
	Name    string        `yaml:"name"`
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"`
}

func loadJobConfig(path string) (*jobConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read job config: %w", err)
	}
	var cfg jobConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("job config %s: %w", path, err)
	}
	if len(cfg.Sources) == 0 && cfg.Check == nil && cfg.Prune == nil && len(cfg.Forget) == 0 {
		return nil, fmt.Errorf("job config %s: no sources, and no forget, prune or check step", path)
	}
	if strings.ContainsAny(cfg.Name, "/\n") {
		return nil, fmt.Errorf("job config %s: name %q: no slashes or line breaks", path, cfg.Name)
	}
	seen := map[string]bool{}
	for i, s := range cfg.Sources {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("job config %s: source %d has no name", path, i+1)
		case strings.ContainsAny(s.Name, "/\n"):
			return nil, fmt.Errorf("job config %s: source name %q: no slashes or line breaks", path, s.Name)
		case seen[s.Name]:
			return nil, fmt.Errorf("job config %s: source name %q used twice", path, s.Name)
		case len(s.Paths) == 0:
			return nil, fmt.Errorf("job config %s: source %q has no paths", path, s.Name)
		}
		seen[s.Name] = true
	}
	for _, h := range append(cfg.Hooks.Pre, cfg.Hooks.Post...) {
		if len(h.Command) == 0 {
			return nil, fmt.Errorf("job config %s: hook %q has no command", path, h.Name)
		}
	}
	switch cfg.Hooks.OnPreFailure {
	case "", "abort", "continue":
	default:
		return nil, fmt.Errorf("job config %s: hooks.onPreFailure %q: want abort or continue", path, cfg.Hooks.OnPreFailure)
	}
	return &cfg, nil
}

func newRunCommand(a *app) *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run a scheduled job: hooks, backups, forget, notification, metrics",
		Long: `
The "run" command is cairn's job mode for CronJobs. It reads a YAML file and
does, in order: the pre-hooks, a backup of every source (one snapshot each,
with the source's --host), forget with the configured arguments, prune and
check when configured, the post-hooks (always, with CAIRN_JOB_STATUS and
CAIRN_JOB_ERROR in their environment), the metrics and a webhook
notification. The repository comes from the usual environment
(RESTIC_REPOSITORY, RESTIC_PASSWORD, ...).

Everything it prints is a log record on stderr, one per line: JSON when
stderr is not a terminal, key=value text when it is (--log-format or
$CAIRN_LOG_FORMAT choose). Each step logs its start and end with its
status, duration, snapshot ID and error; what hooks and steps print is
logged line by line. Secrets (the password, credentials in the repository
URL or the environment, the webhook URL) are replaced by ***.

A failed webhook or metrics push is reported but never changes the exit
status, which is the first failing step's (restic's codes: 3 when a backup
could not read some files, 12 for a wrong password, 130 when interrupted).

EXIT STATUS
===========

Exit status is 0 if every step succeeded, 3 if a backup was incomplete,
otherwise the failing step's status, 1 for a failed hook.
`,
		DisableAutoGenTag: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return errors.New("run takes no arguments, only --config")
			}
			if configPath == "" {
				return errors.New("run needs --config FILE")
			}
			cfg, err := loadJobConfig(configPath)
			if err != nil {
				return err
			}
			return runJob(c.Context(), a, cfg)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "job configuration `file` (YAML)")
	return cmd
}

// sourceResult is one source's outcome, as the webhook and metrics tell it.
type sourceResult struct {
	Name     string             `json:"source"`
	Host     string             `json:"host"`
	ExitCode int                `json:"exit_code"`
	Error    string             `json:"error,omitempty"`
	Summary  *backupSummaryJSON `json:"summary,omitempty"`
	Duration float64            `json:"duration_seconds"`
}

// jobResult is the outcome of one run.
type jobResult struct {
	Status   string         `json:"status"` // "success" or "failure"
	ExitCode int            `json:"exit_code"`
	Error    string         `json:"error,omitempty"`
	Sources  []sourceResult `json:"sources"`
	Start    time.Time      `json:"start"`
	Duration float64        `json:"duration_seconds"`
	// Name is the config's name, when it has one.
	Name string `json:"name,omitempty"`
	// Check is the check step's outcome, when it ran.
	Check *checkResult `json:"check,omitempty"`
	// Prune is the prune step's outcome, when it ran.
	Prune *pruneResult `json:"prune,omitempty"`

	// repository is the location without its password, for the metrics'
	// labels only: the webhook body carries no location.
	repository string
	// stats are the repository's figures, nil when not read.
	stats *repoStats
}

// runJob does the steps; each step is cairn itself, run as a child process
// with the same environment, so every flag and variable behaves exactly as
// in a plain `cairn backup`, and a child's crash cannot take the
// notification down with it. Every step logs its start and end (status,
// duration, snapshot IDs, error) and every line its children or hooks
// print as one structured record.
func runJob(ctx context.Context, a *app, cfg *jobConfig) error {
	log := a.logger()
	if log == nil { // not through the root command's set-up
		log = newLogger(termWriter{a.term}, logFormatJSON, slog.LevelInfo, a.term.Scrub)
	}
	if cfg.Webhook.URL == "" && cfg.Webhook.URLEnv != "" {
		cfg.Webhook.URL = os.Getenv(cfg.Webhook.URLEnv)
	}
	// The Helm chart passes its metrics.pushgatewayUrl in the environment.
	if cfg.Metrics.Pushgateway == "" {
		cfg.Metrics.Pushgateway = os.Getenv("CAIRN_PUSHGATEWAY_URL")
	}
	addJobSecrets(a, cfg.Webhook.URL, cfg.Metrics.Pushgateway)
	self, err := selfExecutable()
	if err != nil {
		return err
	}
	res := jobResult{Start: time.Now(), Name: cfg.Name, repository: repositoryLabel(a)}
	// The prune step and the metrics share this process's one handle on
	// the repository.
	listing := &listingRepo{a: a}
	defer listing.Close()
	if cfg.Name != "" {
		log = log.With("run", cfg.Name)
	}
	log.Info("job started", "repository", res.repository, "sources", len(cfg.Sources))
	fail := func(code int, msg string) {
		if res.ExitCode == 0 || (res.ExitCode == exitIncomplete && code != exitIncomplete) {
			res.ExitCode, res.Error = code, msg
		}
	}

	preFailed := false
	for _, h := range cfg.Hooks.Pre {
		if err := runLoggedHook(ctx, log, "pre-hook", h, nil); err != nil {
			fail(exitFatal, fmt.Sprintf("pre-hook %s: %v", hookName(h), err))
			preFailed = true
			break
		}
	}
	if !preFailed || cfg.Hooks.OnPreFailure == "continue" {
		for _, s := range cfg.Sources {
			if ctx.Err() != nil {
				break
			}
			sr := runSource(ctx, self, a, log, s)
			res.Sources = append(res.Sources, sr)
			if sr.ExitCode != 0 {
				fail(sr.ExitCode, fmt.Sprintf("backup of %s: %s", s.Name, sr.Error))
			}
		}
		if len(cfg.Forget) > 0 && res.ExitCode == 0 && ctx.Err() == nil {
			if code, msg := runLoggedSelf(ctx, self, log, "forget", append(childGlobals(a, "forget"), cfg.Forget...)); code != 0 {
				fail(code, "forget: "+msg)
			}
		}
		if cfg.Prune != nil && res.ExitCode == 0 && ctx.Err() == nil {
			res.Prune = runPruneStep(ctx, self, listing, log, *cfg.Prune)
			if res.Prune.ExitCode != 0 {
				fail(res.Prune.ExitCode, "prune: "+res.Prune.Error)
			}
		}
		if cfg.Check != nil && (res.ExitCode == 0 || res.ExitCode == exitIncomplete) && !preFailed && ctx.Err() == nil {
			res.Check = runCheckStep(ctx, self, a, log, *cfg.Check)
			if res.Check.ExitCode != 0 {
				fail(res.Check.ExitCode, "check: "+res.Check.Error)
			}
		}
	}
	if ctx.Err() != nil {
		// A signal wins over the errors it caused, as in every command.
		msg := "interrupted"
		if res.Error != "" {
			msg += ": " + res.Error
		}
		res.ExitCode, res.Error = exitInterrupted, msg
	}
	res.Status = "success"
	if res.ExitCode != 0 {
		res.Status = "failure"
	}
	// Post-hooks run whatever happened, but not on a cancelled context: they
	// get a short one of their own so a SIGTERM still lets them report.
	postCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	env := []string{"CAIRN_JOB_STATUS=" + res.Status, "CAIRN_JOB_ERROR=" + res.Error}
	for _, h := range cfg.Hooks.Post {
		if err := runLoggedHook(postCtx, log, "post-hook", h, env); err != nil {
			fail(exitFatal, fmt.Sprintf("post-hook %s: %v", hookName(h), err))
		}
	}
	res.Status = "success"
	if res.ExitCode != 0 {
		res.Status = "failure"
	}

	wantMetrics := cfg.Metrics.Textfile != "" || cfg.Metrics.Pushgateway != ""
	// Repository figures only after a run that reached the repository:
	// after a failure they would mostly add the same failure again.
	if wantMetrics && (res.ExitCode == 0 || res.ExitCode == exitIncomplete) {
		st := startStep(log, "stats")
		statsCtx, cancelStats := context.WithTimeout(postCtx, time.Minute)
		stats, err := collectRepoStats(statsCtx, listing)
		cancelStats()
		if err != nil {
			st.end(exitFatal, err.Error())
		} else {
			res.stats = stats
			st.end(0, "", "repository_size_bytes", stats.SizeBytes, "packs", stats.Packs)
		}
	}
	res.Duration = time.Since(res.Start).Seconds()

	if f := cfg.Metrics.Textfile; f != "" {
		text := jobMetrics(res, metricsScope{job: true, repo: true, lastSuccess: previousLastSuccess(f)})
		if err := writeTextfile(f, text); err != nil {
			log.Error("metrics textfile not written", "error", err)
		} else {
			log.Info("metrics textfile written", "path", f)
		}
	}
	if cfg.Metrics.Pushgateway != "" {
		if err := pushJobMetrics(postCtx, cfg.Metrics.Pushgateway, res); err != nil {
			log.Error("metrics push failed", "error", err)
		} else {
			log.Info("metrics pushed")
		}
	}
	if cfg.Webhook.URL == "" && cfg.Webhook.URLEnv != "" {
		log.Warn("webhook: $" + cfg.Webhook.URLEnv + " is empty, no notification sent")
	}
	if cfg.Webhook.URL != "" {
		if err := notify(postCtx, cfg.Webhook, res); err != nil {
			log.Error("webhook failed", "error", err)
		} else {
			log.Info("webhook sent")
		}
	}
	attrs := []any{"status", res.Status, "exit_code", res.ExitCode, "duration_seconds", math.Round(res.Duration*1000) / 1000}
	if res.Error != "" {
		attrs = append(attrs, "error", res.Error)
	}
	if res.ExitCode == 0 {
		log.Info("job finished", attrs...)
	} else {
		log.Error("job finished", attrs...)
	}
	return jobError(res)
}

// runLoggedHook runs a hook between its step records, its output logged
// line by line.
func runLoggedHook(ctx context.Context, log *slog.Logger, step string, h jobHook, env []string) error {
	st := startStep(log, step, "hook", hookName(h))
	stdout, stderr := childOutput(log, "step", step, "hook", hookName(h))
	err := runHook(ctx, h, env, stdout, stderr)
	stdout.Close()
	stderr.Close()
	if err != nil {
		st.end(exitFatal, err.Error())
	} else {
		st.end(0, "")
	}
	return err
}

// runLoggedSelf runs a cairn command as a step, its output logged line by
// line.
func runLoggedSelf(ctx context.Context, self string, log *slog.Logger, step string, args []string) (int, string) {
	st := startStep(log, step)
	stdout, stderr := childOutput(log, "step", step)
	code, msg := runSelf(ctx, self, args, stdout, stderr)
	stdout.Close()
	stderr.Close()
	st.end(code, msg)
	return code, msg
}

// selfExecutable is the running cairn binary. os.Executable needs /proc;
// without it (a chroot, a minimal sandbox) the name it was started by is
// looked up as the shell would.
func selfExecutable() (string, error) {
	self, err := os.Executable()
	if err == nil {
		return self, nil
	}
	if p, lerr := exec.LookPath(os.Args[0]); lerr == nil {
		return p, nil
	}
	return "", fmt.Errorf("find the cairn executable: %w", err)
}

// jobError turns the run's status into an error that exitCode maps back to
// the same number.
func jobError(res jobResult) error {
	if res.ExitCode == 0 {
		return nil
	}
	msg := errors.New(res.Error)
	switch res.ExitCode {
	case exitIncomplete:
		return fmt.Errorf("%w (%w)", msg, errIncomplete)
	case exitNoRepository:
		return fmt.Errorf("%w (%w)", msg, backend.ErrNoRepository)
	case exitWrongPassword:
		return fmt.Errorf("%w (%w)", msg, repo.ErrWrongPassword)
	case exitLocked:
		return lockedStepError{res.Error}
	}
	return msg
}

// lockedStepError is a step's exit status 11 (the repository was locked)
// passed on as the run's: exitCode looks for a *repo.LockedError, which
// only the child had, so errors.As is answered with an empty one.
type lockedStepError struct{ msg string }

func (e lockedStepError) Error() string { return e.msg }

func (e lockedStepError) As(target any) bool {
	p, ok := target.(**repo.LockedError)
	if ok {
		*p = &repo.LockedError{Lock: &repo.Lock{}}
	}
	return ok
}

func hookName(h jobHook) string {
	if h.Name != "" {
		return h.Name
	}
	return h.Command[0]
}

// runHook runs a hook without a shell, with its timeout; on cancellation it
// gets SIGTERM first, then SIGKILL.
func runHook(ctx context.Context, h jobHook, env []string, stdout, stderr io.Writer) error {
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, h.Command[0], h.Command[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %v", h.Timeout)
	}
	return err
}

// runSource backs up one source with `cairn backup --json` and keeps its
// summary; its messages and errors pass through to the job's output.
func runSource(ctx context.Context, self string, a *app, log *slog.Logger, s jobSource) sourceResult {
	host := s.Host
	if host == "" {
		host = s.Name
	}
	args := append(childGlobals(a, "backup"), "--json", "--host", host)
	for _, tag := range s.Tags {
		args = append(args, "--tag", tag)
	}
	for _, ex := range s.Excludes {
		args = append(args, "--exclude", ex)
	}
	args = append(append(args, s.Args...), s.Paths...)
	st := startStep(log, "backup", "source", s.Name, "host", host)
	var out bytes.Buffer
	_, errLog := childOutput(log, "step", "backup", "source", s.Name)
	code, msg := runSelf(ctx, self, args, &out, errLog)
	errLog.Close()
	sr := sourceResult{Name: s.Name, Host: host, ExitCode: code, Error: msg}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var head struct {
			MessageType string `json:"message_type"`
		}
		if json.Unmarshal(sc.Bytes(), &head) != nil {
			continue
		}
		if head.MessageType == "summary" {
			var sum backupSummaryJSON
			if json.Unmarshal(sc.Bytes(), &sum) == nil {
				sr.Summary = &sum
			}
		}
	}
	var attrs []any
	if sum := sr.Summary; sum != nil {
		attrs = append(attrs, "snapshot_id", sum.SnapshotID, "files_new", sum.FilesNew, "files_changed", sum.FilesChanged,
			"files_unmodified", sum.FilesUnmodified, "bytes_processed", sum.TotalBytesProcessed, "bytes_added", sum.DataAdded)
	}
	sr.Duration = st.end(code, msg, attrs...)
	return sr
}

// childGlobals starts a child's command line: the command, then the -o
// options given to `cairn run` (the only global flags passed on; everything
// else reaches the children through the environment).
func childGlobals(a *app, command string) []string {
	args := []string{command}
	for _, o := range a.gopts.Options {
		args = append(args, "-o", o)
	}
	return args
}

// runSelf runs cairn with args and returns its exit status and the last
// line it printed to stderr (the error restic-style commands end with).
func runSelf(ctx context.Context, self string, args []string, stdout, stderr io.Writer) (int, string) {
	cmd := exec.CommandContext(ctx, self, args...)
	// Children print restic's plain lines (or --json), which the job logs
	// line by line, not records of their own to be wrapped again.
	cmd.Env = append(os.Environ(), logFormatEnv+"="+logFormatAuto)
	var errBuf bytes.Buffer
	cmd.Stdout = stdout
	cmd.Stderr = io.MultiWriter(stderr, &errBuf)
	// A SIGTERM to the job reaches the child as SIGTERM, so it releases its
	// lock before the grace period runs out.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 60 * time.Second
	err := cmd.Run()
	lines := strings.Split(strings.TrimSpace(errBuf.String()), "\n")
	// A locked repository's error ends with the unlock hint; the line
	// before it says who holds the lock.
	if n := len(lines); n > 1 && strings.HasPrefix(lines[n-1], "the `unlock` command") {
		lines = lines[:n-1]
	}
	last := exitErrorMessage(lines[len(lines)-1])
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, ""
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode(), last
	case ctx.Err() != nil:
		return exitInterrupted, "interrupted"
	default:
		return exitFatal, err.Error()
	}
}
