package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"
)

// jobWebhook is where `cairn run` reports its outcome.
type jobWebhook struct {
	// URL receives a POST. It is never printed (it may hold a token).
	URL string `yaml:"url"`
	// URLEnv names an environment variable holding the URL instead, so
	// the token can come from a Secret rather than the config file.
	URLEnv string `yaml:"urlEnv"`
	// Template, when set, is a Go text/template over the result that makes
	// the body instead of the JSON (for chat tools), e.g.
	// {"text": "cairn {{.Status}} in {{printf "%.0f" .Duration}}s"}.
	Template string `yaml:"template"`
	// Headers are added to the request (e.g. Content-Type for a template).
	Headers map[string]string `yaml:"headers"`
	// Retries after the first attempt on network errors and 5xx (default 3).
	Retries *int          `yaml:"retries"`
	Timeout time.Duration `yaml:"timeout"`
}

// notify posts the result. The body holds statuses, counts, snapshot IDs
// and error texts only: the errors come from cairn, which never prints the
// repository's password, and no environment is included.
func notify(ctx context.Context, w jobWebhook, res jobResult) error {
	var body []byte
	if w.Template != "" {
		tmpl, err := template.New("webhook").Parse(w.Template)
		if err != nil {
			return fmt.Errorf("parse template: %w", err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, res); err != nil {
			return fmt.Errorf("execute template: %w", err)
		}
		body = buf.Bytes()
	} else {
		var err error
		if body, err = json.Marshal(res); err != nil {
			return err
		}
	}
	retries := 3
	if w.Retries != nil {
		retries = *w.Retries
	}
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	client := &http.Client{Timeout: timeout}
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("gave up: %w (last error: %v)", ctx.Err(), last)
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("request: %w", redactURL(err, w.URL))
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "cairn/"+version)
		for k, v := range w.Headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			last = redactURL(err, w.URL)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			last = fmt.Errorf("status %s", resp.Status)
		default:
			return fmt.Errorf("status %s", resp.Status)
		}
	}
	return fmt.Errorf("%d attempts failed, last: %w", retries+1, last)
}

// redactURL keeps a webhook URL (whose path often is the secret) out of
// an error message.
func redactURL(err error, url string) error {
	return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), url, "<webhook url>"))
}

// metricsScope selects what jobMetrics renders: the sources named (all when
// nil), the job-wide metrics, the repository-wide ones (check, size), and
// last-success values carried over from an earlier run for sources that
// failed now (so an alert on their age keeps seeing the old value instead
// of a vanished series).
type metricsScope struct {
	sources     map[string]bool
	job         bool
	repo        bool
	lastSuccess map[string]string // `{source="…",host="…",repository="…"}` -> value
}

// promLabels renders a label set in the text exposition format, in the
// order given (name, value, name, value, …); an empty value is left out.
func promLabels(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		v := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1])
		parts = append(parts, kv[i]+`="`+v+`"`)
	}
	if len(parts) == 0 {
		return ""
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// jobMetrics renders the run in Prometheus' text exposition format, with
// the names docs/kubernetes.md lists, labelled by source and host.
func jobMetrics(res jobResult, scope metricsScope) string {
	var b strings.Builder
	type sample struct {
		labels string
		value  float64
	}
	families := map[string][]sample{}
	help := map[string]string{
		"cairn_backup_last_success_timestamp_seconds": "End of the last successful backup of the source (Unix time).",
		"cairn_backup_last_run_timestamp_seconds":     "End of the last backup attempt of the source (Unix time).",
		"cairn_backup_success":                        "1 if the last backup of the source succeeded, else 0.",
		"cairn_backup_duration_seconds":               "Duration of the last backup of the source.",
		"cairn_backup_files_new":                      "New files in the last backup.",
		"cairn_backup_files_changed":                  "Changed files in the last backup.",
		"cairn_backup_files_unmodified":               "Unmodified files in the last backup.",
		"cairn_backup_bytes_processed":                "Bytes read by the last backup.",
		"cairn_backup_bytes_added":                    "Bytes added to the repository (before compression) by the last backup.",
		"cairn_backup_dedup_ratio":                    "Bytes read per byte added by the last backup.",
		"cairn_backup_snapshots":                      "Snapshots of the source's host in the repository after the run.",
		"cairn_backup_repository_size_bytes":          "Size of the repository's pack files in storage.",
		"cairn_check_errors":                          "Errors the last check found (0: the repository is sound).",
		"cairn_check_success":                         "1 if the last check passed, else 0.",
		"cairn_check_duration_seconds":                "Duration of the last check.",
		"cairn_check_last_run_timestamp_seconds":      "End of the last check (Unix time).",
		"cairn_prune_success":                         "1 if the last prune succeeded, else 0.",
		"cairn_prune_duration_seconds":                "Duration of the last prune.",
		"cairn_prune_last_run_timestamp_seconds":      "End of the last prune attempt (Unix time).",
		"cairn_prune_last_success_timestamp_seconds":  "End of the last successful prune (Unix time).",
		"cairn_prune_packs_deleted":                   "Pack files the last prune deleted.",
		"cairn_prune_bytes_deleted":                   "Size of the pack files the last prune deleted.",
		"cairn_job_success":                           "1 if the whole run succeeded, else 0.",
		"cairn_job_duration_seconds":                  "Duration of the whole run.",
		"cairn_job_exit_code":                         "Exit status of the run.",
	}
	add := func(name, labels string, v float64) { families[name] = append(families[name], sample{labels, v}) }
	now := float64(res.Start.Add(time.Duration(res.Duration * float64(time.Second))).Unix())
	for _, s := range res.Sources {
		if scope.sources != nil && !scope.sources[s.Name] {
			continue
		}
		l := promLabels("source", s.Name, "host", s.Host, "repository", res.repository)
		ok := 0.0
		if s.ExitCode == 0 || s.ExitCode == exitIncomplete {
			ok = 1
		}
		add("cairn_backup_success", l, ok)
		add("cairn_backup_last_run_timestamp_seconds", l, now)
		add("cairn_backup_duration_seconds", l, s.Duration)
		if res.stats != nil {
			add("cairn_backup_snapshots", l, float64(res.stats.SnapshotsByHost[s.Host]))
		}
		if ok == 0 || s.Summary == nil {
			continue // the earlier value is carried over below
		}
		add("cairn_backup_last_success_timestamp_seconds", l, float64(s.Summary.BackupEnd.Unix()))
		add("cairn_backup_files_new", l, float64(s.Summary.FilesNew))
		add("cairn_backup_files_changed", l, float64(s.Summary.FilesChanged))
		add("cairn_backup_files_unmodified", l, float64(s.Summary.FilesUnmodified))
		add("cairn_backup_bytes_processed", l, float64(s.Summary.TotalBytesProcessed))
		add("cairn_backup_bytes_added", l, float64(s.Summary.DataAdded))
		if s.Summary.DataAdded > 0 {
			add("cairn_backup_dedup_ratio", l, float64(s.Summary.TotalBytesProcessed)/float64(s.Summary.DataAdded))
		}
	}
	// Sources that did not run now (an aborted run) keep their last
	// success too.
	have := map[string]bool{}
	for _, smp := range families["cairn_backup_last_success_timestamp_seconds"] {
		have[smp.labels] = true
	}
	for _, l := range slices.Sorted(maps.Keys(scope.lastSuccess)) {
		var f float64
		if _, err := fmt.Sscan(scope.lastSuccess[l], &f); err == nil && !have[l] && scope.sources == nil {
			add("cairn_backup_last_success_timestamp_seconds", l, f)
		}
	}
	if scope.job {
		ok := 0.0
		if res.ExitCode == 0 {
			ok = 1
		}
		l := promLabels("run", res.Name)
		add("cairn_job_success", l, ok)
		add("cairn_job_duration_seconds", l, res.Duration)
		add("cairn_job_exit_code", l, float64(res.ExitCode))
	}
	if scope.repo {
		l := promLabels("repository", res.repository)
		if c := res.Check; c != nil {
			ok := 0.0
			if c.ExitCode == 0 {
				ok = 1
			}
			add("cairn_check_success", l, ok)
			add("cairn_check_duration_seconds", l, c.Duration)
			add("cairn_check_last_run_timestamp_seconds", l, now)
			if c.NumErrors != nil {
				add("cairn_check_errors", l, float64(*c.NumErrors))
			}
		}
		if p := res.Prune; p != nil {
			ok := 0.0
			if p.ExitCode == 0 {
				ok = 1
				// Only on success: a failed prune keeps the earlier value
				// on the Pushgateway (POST), so its age keeps counting.
				add("cairn_prune_last_success_timestamp_seconds", l, now)
			}
			add("cairn_prune_success", l, ok)
			add("cairn_prune_duration_seconds", l, p.Duration)
			add("cairn_prune_last_run_timestamp_seconds", l, now)
			if p.PacksDeleted != nil && p.BytesDeleted != nil {
				add("cairn_prune_packs_deleted", l, float64(*p.PacksDeleted))
				add("cairn_prune_bytes_deleted", l, float64(*p.BytesDeleted))
			}
		}
		if res.stats != nil {
			add("cairn_backup_repository_size_bytes", l, float64(res.stats.SizeBytes))
		}
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", n, help[n], n)
		for _, s := range families[n] {
			fmt.Fprintf(&b, "%s%s %v\n", n, s.labels, s.value)
		}
	}
	return b.String()
}

// writeTextfile replaces the file atomically, so node-exporter never reads
// half of it.
func writeTextfile(path, text string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(text); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// previousLastSuccess reads the last-success samples of an earlier textfile.
func previousLastSuccess(path string) map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	const name = "cairn_backup_last_success_timestamp_seconds{"
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
		if i := strings.LastIndex(rest, "} "); i >= 0 {
			out["{"+rest[:i+1]] = strings.TrimSpace(rest[i+2:])
		}
	}
	return out
}

// pushJobMetrics pushes the job-wide metrics to the group job="cairn"
// (…/run/NAME with the config's name) with PUT, each source's to its own
// group (…/source/NAME) and the repository's (check, size) to
// …/repository@base64/LOCATION with POST, which replaces only the metrics
// pushed: a failed source's earlier last-success timestamp, and the size a
// check-only run does not read, stay on the Pushgateway.
func pushJobMetrics(ctx context.Context, base string, res jobResult) error {
	base = strings.TrimRight(base, "/") + "/metrics/job/cairn"
	jobGroup := base
	if res.Name != "" {
		jobGroup += "/run/" + url.PathEscape(res.Name)
	}
	if err := pushMetrics(ctx, http.MethodPut, jobGroup, jobMetrics(res, metricsScope{sources: map[string]bool{}, job: true})); err != nil {
		return err
	}
	if text := jobMetrics(res, metricsScope{sources: map[string]bool{}, repo: true}); text != "" {
		// base64url without padding: a location holds slashes; "=" is
		// the Pushgateway's spelling of an empty value.
		enc := base64.RawURLEncoding.EncodeToString([]byte(res.repository))
		if enc == "" {
			enc = "="
		}
		if err := pushMetrics(ctx, http.MethodPost, base+"/repository@base64/"+enc, text); err != nil {
			return err
		}
	}
	for _, s := range res.Sources {
		text := jobMetrics(res, metricsScope{sources: map[string]bool{s.Name: true}})
		if err := pushMetrics(ctx, http.MethodPost, base+"/source/"+url.PathEscape(s.Name), text); err != nil {
			return err
		}
	}
	return nil
}

func pushMetrics(ctx context.Context, method, url, text string) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(text))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; version=0.0.4")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		// The URL may carry basic-auth credentials: name it redacted.
		return fmt.Errorf("pushgateway %s: status %s", req.URL.Redacted(), resp.Status)
	}
	return nil
}
