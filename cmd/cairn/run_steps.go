package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/location"
	"github.com/cairn-backup/cairn/repo"
	"github.com/cairn-backup/cairn/repo/blob"
)

// jobStep is a step of `cairn run` that is cairn itself with arguments:
// present in the config (even as {}) means it runs.
type jobStep struct {
	// Args are the command's flags, e.g. [--read-data-subset, 1/7].
	Args []string `yaml:"args"`
}

// checkResult is the check step's outcome, as the webhook and the metrics
// tell it.
type checkResult struct {
	ExitCode int    `json:"exit_code"`
	Error    string `json:"error,omitempty"`
	// NumErrors is what check counted; nil when it could not run to the
	// point of counting (no repository, wrong password, locked,
	// interrupted), so no error count is reported for a check that never
	// looked.
	NumErrors *int    `json:"num_errors,omitempty"`
	Duration  float64 `json:"duration_seconds"`
}

// pruneResult is the prune step's outcome, as the webhook and the metrics
// tell it.
type pruneResult struct {
	ExitCode int     `json:"exit_code"`
	Error    string  `json:"error,omitempty"`
	Duration float64 `json:"duration_seconds"`
	// PacksDeleted and BytesDeleted are the pack files that were listed
	// before the step and are gone after it, and their size (prune prints
	// no JSON to read them from). Exact, since only prune deletes packs and
	// it holds the exclusive lock; what repacking wrote is not subtracted,
	// as a backup that ran before prune got the lock writes packs too. nil
	// when the step failed or a listing did not work, so no figure is
	// reported that was not measured.
	PacksDeleted *int   `json:"packs_deleted,omitempty"`
	BytesDeleted *int64 `json:"bytes_deleted,omitempty"`
}

// repoStats are the repository-wide figures the metrics report, read once
// at the end of a run.
type repoStats struct {
	// SizeBytes is the size of all pack files (data/) as the backend lists
	// them: what the repository's data occupies in storage.
	SizeBytes int64
	Packs     int
	// SnapshotsByHost counts the snapshots per host.
	SnapshotsByHost map[string]int
}

// stepLog is one step's start and end records.
type stepLog struct {
	log   *slog.Logger
	attrs []any
	start time.Time
}

func startStep(l *slog.Logger, step string, attrs ...any) *stepLog {
	s := &stepLog{log: l, attrs: append([]any{"step", step}, attrs...), start: time.Now()}
	l.Info("step started", s.attrs...)
	return s
}

// end logs the step's outcome: status, exit code, duration, the error if
// any, and more attributes (snapshot IDs, counts).
func (s *stepLog) end(code int, errText string, attrs ...any) float64 {
	d := time.Since(s.start).Seconds()
	args := append([]any{}, s.attrs...)
	args = append(args, "status", stepStatus(code), "exit_code", code, "duration_seconds", math.Round(d*1000)/1000)
	args = append(args, attrs...)
	level := slog.LevelInfo
	switch code {
	case 0:
	case exitIncomplete:
		level = slog.LevelWarn
	default:
		level = slog.LevelError
	}
	if errText != "" {
		args = append(args, "error", errText)
	}
	s.log.Log(context.Background(), level, "step finished", args...)
	return d
}

func stepStatus(code int) string {
	switch code {
	case 0:
		return "success"
	case exitIncomplete:
		return "incomplete"
	}
	return "failure"
}

// childOutput returns writers that log a child's stdout and stderr line by
// line with the step's attributes; restic's JSON messages on stderr become
// records of their own. Close them after the child ended.
func childOutput(l *slog.Logger, attrs ...any) (stdout, stderr *lineLogger) {
	stdout = newLineLogger(l, slog.LevelInfo, nil, append(append([]any{}, attrs...), "stream", "stdout")...)
	errAttrs := append(append([]any{}, attrs...), "stream", "stderr")
	stderr = newLineLogger(l, slog.LevelWarn, resticMessage(l, errAttrs...), errAttrs...)
	return stdout, stderr
}

// runCheckStep runs `cairn check --json ARGS` and keeps its error count.
func runCheckStep(ctx context.Context, self string, a *app, l *slog.Logger, step jobStep) *checkResult {
	st := startStep(l, "check")
	var out bytes.Buffer
	_, errLog := childOutput(l, "step", "check")
	args := append(append(childGlobals(a, "check"), "--json"), step.Args...)
	code, msg := runSelf(ctx, self, args, &out, errLog)
	errLog.Close()
	cr := &checkResult{ExitCode: code, Error: msg}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var sum checkSummaryJSON
		if json.Unmarshal(sc.Bytes(), &sum) == nil && sum.MessageType == "summary" && (code == 0 || code == exitFatal) {
			n := sum.NumErrors
			if code == exitFatal && n == 0 {
				n = 1 // failed without counting: still not a clean check
			}
			cr.NumErrors = &n
		}
	}
	var attrs []any
	if cr.NumErrors != nil {
		attrs = append(attrs, "num_errors", *cr.NumErrors)
	}
	cr.Duration = st.end(code, msg, attrs...)
	return cr
}

// runPruneStep runs `cairn prune ARGS` between two listings of the pack
// files, whose difference becomes the step's figures. A failed listing
// costs the figures, never the prune.
func runPruneStep(ctx context.Context, self string, lr *listingRepo, l *slog.Logger, step jobStep) *pruneResult {
	a := lr.a
	var before map[blob.ID]int64
	r, err := lr.get(ctx)
	if err == nil {
		before, err = packSizes(ctx, r)
	}
	if err != nil {
		l.Warn("prune: pack files not listed before the step, no packs_deleted or bytes_deleted", "error", err)
	}
	st := startStep(l, "prune")
	stdout, stderr := childOutput(l, "step", "prune")
	code, msg := runSelf(ctx, self, append(childGlobals(a, "prune"), step.Args...), stdout, stderr)
	stdout.Close()
	stderr.Close()
	pr := &pruneResult{ExitCode: code, Error: msg}
	var attrs []any
	if code == 0 && before != nil {
		after, err := packSizes(ctx, r)
		if err != nil {
			l.Warn("prune: pack files not listed after the step, no packs_deleted or bytes_deleted", "error", err)
		} else {
			deleted, deletedBytes := 0, int64(0)
			for id, size := range before {
				if _, ok := after[id]; !ok {
					deleted++
					deletedBytes += size
				}
			}
			pr.PacksDeleted, pr.BytesDeleted = &deleted, &deletedBytes
			attrs = append(attrs, "packs_deleted", deleted, "bytes_deleted", deletedBytes)
		}
	}
	pr.Duration = st.end(code, msg, attrs...)
	return pr
}

// packSizes lists the pack files (data/) with their sizes.
func packSizes(ctx context.Context, r *repo.Repository) (map[blob.ID]int64, error) {
	packs := map[blob.ID]int64{}
	err := r.List(ctx, backend.PackFile, func(id blob.ID, size int64) error {
		packs[id] = size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pack files: %w", err)
	}
	return packs, nil
}

// listingRepo is the job process's own handle on the repository, without
// a lock, for listings only (the prune step's pack figures, the metrics'
// repository figures). It is opened on first use and then shared: every
// open derives the key again (scrypt, about half a second) and, with a
// password prompt, would ask again.
type listingRepo struct {
	a *app
	r *repo.Repository
}

// get returns the handle, opening the repository if it is not open yet.
// A failed open is not remembered: a later step tries again.
func (lr *listingRepo) get(ctx context.Context) (*repo.Repository, error) {
	if lr.r != nil {
		return lr.r, nil
	}
	if lr.a.password == "" {
		return nil, errors.New("no password in the environment (RESTIC_PASSWORD, RESTIC_PASSWORD_FILE or RESTIC_PASSWORD_COMMAND)")
	}
	r, err := lr.a.openRepository(ctx, lr.a.mainRepo())
	if err != nil {
		return nil, err
	}
	lr.r = r
	return r, nil
}

// Close closes the handle if it was opened.
func (lr *listingRepo) Close() {
	if lr.r != nil {
		lr.r.Close()
		lr.r = nil
	}
}

// repositoryLabel is the repository as the metrics name it: the location
// from -r, --repository-file or $RESTIC_REPOSITORY, without its password.
func repositoryLabel(a *app) string {
	loc, err := a.mainRepo().location()
	if err != nil {
		return ""
	}
	return a.backends.StripPassword(loc)
}

// secretEnv names variables whose values never appear in a job's logs or
// notifications, whatever a child or hook prints.
var secretEnv = []string{
	"RESTIC_PASSWORD", "RESTIC_REST_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"CAIRN_WEBHOOK_URL", "B2_ACCOUNT_KEY", "AZURE_ACCOUNT_KEY", "AZURE_ACCOUNT_SAS",
	"GOOGLE_ACCESS_TOKEN", "OS_PASSWORD", "ST_KEY",
}

// addJobSecrets registers what a job must never print: the repository
// password, URL passwords of the location, credentials from the
// environment and the webhook URL (whose path is often the token).
func addJobSecrets(a *app, webhookURL, pushgatewayURL string) {
	secrets := []string{a.password, webhookURL}
	// A Pushgateway behind basic auth: its password, not the whole URL
	// (which the logs may name, redacted).
	if u, err := url.Parse(pushgatewayURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	if loc, err := a.mainRepo().location(); err == nil {
		secrets = append(secrets, location.Passwords(loc)...)
	}
	for _, k := range secretEnv {
		secrets = append(secrets, os.Getenv(k))
	}
	a.term.addSecrets(secrets...)
}

// collectRepoStats reads the pack sizes and counts the snapshots per host.
// It takes no lock: it only lists and reads files that a concurrent
// writer never changes in place.
func collectRepoStats(ctx context.Context, lr *listingRepo) (*repoStats, error) {
	r, err := lr.get(ctx)
	if err != nil {
		return nil, err
	}
	st := &repoStats{SnapshotsByHost: map[string]int{}}
	err = r.List(ctx, backend.PackFile, func(_ blob.ID, size int64) error {
		st.SizeBytes += size
		st.Packs++
		return nil
	})
	if err != nil {
		return nil, err
	}
	snaps, err := r.Snapshots(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, sn := range snaps {
		st.SnapshotsByHost[sn.Hostname]++
	}
	return st, nil
}
