package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cairn-backup/cairn/internal/testserver"
	"github.com/cairn-backup/cairn/internal/testtools"
)

// promSeries is one parsed sample: the metric name with its labels as
// written, and its value.
type promSeries map[string]float64

var (
	promNameRe  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	promLabelRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseProm parses Prometheus' text exposition format (version 0.0.4)
// strictly: every family has one HELP and one TYPE before its samples, its
// samples are contiguous, names and label names are valid, label values
// use only the three escapes the format knows, values are floats, and no
// series appears twice. It returns the samples keyed by
// `name{label="value",…}` with labels in their written order.
func parseProm(t *testing.T, text string) promSeries {
	t.Helper()
	out, err := parsePromText(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return out
}

// promError is how parsePromText's checks stop the parse.
type promError struct{ err error }

func parsePromText(text string) (_ promSeries, err error) {
	defer func() {
		r := recover()
		if e, ok := r.(promError); ok {
			err = e.err
		} else if r != nil {
			panic(r)
		}
	}()
	out := promSeries{}
	typed := map[string]string{}
	helped := map[string]bool{}
	done := map[string]bool{} // families whose samples ended
	current := ""
	if text != "" && !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("exposition does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(format string, args ...any) {
			panic(promError{fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))})
		}
		if line == "" {
			fail("empty line")
		}
		if rest, ok := strings.CutPrefix(line, "# "); ok {
			kind, rest, _ := strings.Cut(rest, " ")
			name, arg, _ := strings.Cut(rest, " ")
			if !promNameRe.MatchString(name) {
				fail("bad metric name %q", name)
			}
			switch kind {
			case "HELP":
				if helped[name] {
					fail("second HELP")
				}
				helped[name] = true
			case "TYPE":
				if typed[name] != "" {
					fail("second TYPE")
				}
				switch arg {
				case "gauge", "counter", "untyped":
				default:
					fail("type %q", arg)
				}
				typed[name] = arg
			default:
				fail("unknown comment %q", kind)
			}
			if done[name] || (current != "" && current != name) {
				if current != "" {
					done[current] = true
				}
			}
			continue
		}
		nameEnd := strings.IndexAny(line, "{ ")
		if nameEnd < 0 {
			fail("no value")
		}
		name := line[:nameEnd]
		if !promNameRe.MatchString(name) {
			fail("bad metric name %q", name)
		}
		if typed[name] == "" || !helped[name] {
			fail("sample before its HELP and TYPE")
		}
		if done[name] {
			fail("samples of %s are not contiguous", name)
		}
		if current != "" && current != name {
			done[current] = true
		}
		current = name
		rest := line[nameEnd:]
		key := name
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			var labels []string
			seen := map[string]bool{}
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					fail("label without =\"")
				}
				ln := rest[:eq]
				if !promLabelRe.MatchString(ln) || seen[ln] {
					fail("bad or repeated label name %q", ln)
				}
				seen[ln] = true
				rest = rest[eq+2:]
				var v strings.Builder
				for {
					if rest == "" {
						fail("unterminated label value")
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\n' {
						fail("raw newline in a label value")
					}
					if c == '\\' {
						if rest == "" {
							fail("dangling backslash")
						}
						switch rest[0] {
						case '\\', '"':
							v.WriteByte(rest[0])
						case 'n':
							v.WriteByte('\n')
						default:
							fail("unknown escape \\%c", rest[0])
						}
						rest = rest[1:]
						continue
					}
					v.WriteByte(c)
				}
				labels = append(labels, ln+"="+strconv.Quote(v.String()))
				switch {
				case strings.HasPrefix(rest, ","):
					rest = rest[1:]
				case strings.HasPrefix(rest, "}"):
				default:
					fail("expected , or } after a label")
				}
			}
			rest = rest[1:]
			key += "{" + strings.Join(labels, ",") + "}"
		}
		fields := strings.Fields(rest)
		if !strings.HasPrefix(rest, " ") || len(fields) < 1 || len(fields) > 2 {
			fail("expected ' value [timestamp]'")
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			fail("value: %v", err)
		}
		if _, dup := out[key]; dup {
			fail("series %s twice", key)
		}
		out[key] = v
	}
	return out, nil
}

// get returns one series' value, failing when it is missing.
func (p promSeries) get(t *testing.T, key string) float64 {
	t.Helper()
	v, ok := p[key]
	if !ok {
		t.Fatalf("no series %s in %v", key, p)
	}
	return v
}

func TestParsePromIsStrict(t *testing.T) {
	good := "# HELP a x\n# TYPE a gauge\na{l=\"q\\\"\\\\\\n\"} 1\na 2\n"
	if got := parseProm(t, good); got[`a{l="q\"\\\n"}`] != 1 || got["a"] != 2 {
		t.Errorf("parsed %v", got)
	}
	for _, bad := range []string{
		"a 1\n", // no TYPE
		"# HELP a x\n# TYPE a gauge\na{l=\"x\"} one\n",
		"# HELP a x\n# TYPE a gauge\na{l=\"x\\t\"} 1\n",
		"# HELP a x\n# TYPE a gauge\na 1\na 2\n",
		"# HELP a x\n# TYPE a gauge\n# HELP b x\n# TYPE b gauge\na 1\nb 1\na{x=\"1\"} 1\n",
		"# HELP a x\n# TYPE a gauge\na{1x=\"1\"} 1\n",
		"# HELP a x\n# TYPE a gauge\na 1", // no final newline
	} {
		if _, err := parsePromText(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// dirSize is the total size of the regular files under dir.
func dirSize(t *testing.T, dir string) (total int64, files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += fi.Size()
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total, files
}

// The job's stderr is JSON lines when it is not a terminal: every line an
// object with time, level and msg; each step a start and an end record
// (status, duration, snapshot IDs); hook output one record per line. No
// line, metric or notification holds the repository password, the
// location's credentials or the webhook's token, even when a hook prints
// them.
func TestRunJobLogsJSON(t *testing.T) {
	const restPassword = "rest-pw-6d1f9a"
	srv := testserver.RestServer(t, testserver.RestOptions{Users: map[string]string{"alice": restPassword}})
	loc := srv.Repo("alice", restPassword, "logs")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+loc)
	r.ok("init")
	src := t.TempDir()
	writeJobFile(t, filepath.Join(src, "a.txt"), "a\n")
	rc := newReceiver(t)
	textfile := filepath.Join(t.TempDir(), "cairn.prom")
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, `
name: nightly
sources: [{name: app, host: cluster-a-app, paths: [`+src+`]}]
hooks:
  pre:
    - name: leaky
      command: [sh, -c, 'echo "pw=$RESTIC_PASSWORD repo=$RESTIC_REPOSITORY"; echo "hook=$HOOK_URL" >&2']
webhook: {url: `+rc.srv.URL+`/hook/tok-3b8e5c71}
metrics: {textfile: `+textfile+`, pushgateway: `+rc.srv.URL+`}
`)
	res := r.with("HOOK_URL="+rc.srv.URL+"/hook/tok-3b8e5c71").ok("run", "--config", cfg)
	if res.stdout != "" {
		t.Errorf("stdout is not empty: %q", res.stdout)
	}
	recs := jsonLines(t, res.stderr)
	type key struct{ msg, step string }
	seen := map[key]map[string]any{}
	for _, rec := range recs {
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("record without %q: %v", k, rec)
			}
		}
		if rec["run"] != "nightly" {
			t.Errorf("record without run=nightly: %v", rec)
		}
		step, _ := rec["step"].(string)
		seen[key{fmt.Sprint(rec["msg"]), step}] = rec
	}
	for _, step := range []string{"pre-hook", "backup", "stats"} {
		start, end := seen[key{"step started", step}], seen[key{"step finished", step}]
		if start == nil || end == nil {
			t.Fatalf("step %s: no start or end record\n%s", step, res.stderr)
		}
		if end["status"] != "success" || end["exit_code"] != 0.0 || end["level"] != "INFO" {
			t.Errorf("step %s ended %v", step, end)
		}
		if d, ok := end["duration_seconds"].(float64); !ok || d < 0 || d > 60 {
			t.Errorf("step %s: duration %v", step, end["duration_seconds"])
		}
	}
	backup := seen[key{"step finished", "backup"}]
	if id, _ := backup["snapshot_id"].(string); len(id) != 64 || backup["source"] != "app" || backup["host"] != "cluster-a-app" || backup["files_new"] != 1.0 {
		t.Errorf("backup end record %v", backup)
	}
	if len(r.snapshotIDs(t)) != 1 || r.snapshotIDs(t)[0] != backup["snapshot_id"] {
		t.Errorf("the logged snapshot ID %v is not the repository's %v", backup["snapshot_id"], r.snapshotIDs(t))
	}
	started := seen[key{"job started", ""}]
	if repo, _ := started["repository"].(string); !strings.Contains(repo, "alice:***@") {
		t.Errorf("job start names the repository %q, want it with the password redacted", repo)
	}
	hookOut := seen[key{"pw=*** repo=rest:http://alice:***@" + srv.URL.Host + "/logs/", "pre-hook"}]
	if hookOut == nil || hookOut["stream"] != "stdout" || hookOut["hook"] != "leaky" {
		t.Errorf("the hook's stdout is not one scrubbed record:\n%s", res.stderr)
	}
	if seen[key{"hook=***", "pre-hook"}] == nil {
		t.Errorf("the hook's stderr (the webhook URL) is not one scrubbed record:\n%s", res.stderr)
	}
	if end := seen[key{"job finished", ""}]; end["status"] != "success" || end["exit_code"] != 0.0 {
		t.Errorf("job end %v", end)
	}

	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	everything := res.stdout + res.stderr + string(prom)
	rc.mu.Lock()
	for k, v := range rc.pushes {
		everything += k + v
	}
	for _, b := range rc.webhooks {
		everything += string(b)
	}
	rc.mu.Unlock()
	for _, secret := range []string{testPassword, restPassword, "tok-3b8e5c71"} {
		if strings.Contains(everything, secret) {
			t.Errorf("%q leaked into the logs, metrics or webhook", secret)
		}
	}
	want := `cairn_backup_success{source="app",host="cluster-a-app",repository="rest:http://alice:***@` + srv.URL.Host + `/logs/"}`
	if parseProm(t, string(prom)).get(t, want) != 1 {
		t.Errorf("%s is not 1", want)
	}
}

// snapshotIDs lists the repository's snapshot IDs with cairn.
func (r *runner) snapshotIDs(t *testing.T) []string {
	t.Helper()
	var list []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.ok("snapshots", "--json").stdout), &list); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(list))
	for i, s := range list {
		ids[i] = s.ID
	}
	return ids
}

// --log-format text gives slog's key=value records; --log-format json makes
// a restic command's error a record too, while the default keeps restic's
// plain line; a bad value is refused.
func TestLogFormats(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir)
	r.ok("init")
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, "sources: [{name: a, paths: ["+t.TempDir()+"]}]\n")
	res := r.ok("--log-format", "text", "run", "--config", cfg)
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "time=") || !strings.Contains(l, " level=") || !strings.Contains(l, " msg=") {
			t.Errorf("not a text record: %q", l)
		}
	}
	if !regexp.MustCompile(`level=INFO msg="step finished" step=backup source=a host=a status=success exit_code=0 duration_seconds=[0-9.]+ snapshot_id=[0-9a-f]{64}`).MatchString(res.stderr) {
		t.Errorf("no text record of the backup's end:\n%s", res.stderr)
	}

	missing := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+filepath.Join(t.TempDir(), "none"))
	plain := missing.expect(10, "snapshots")
	if !strings.HasPrefix(plain.stderr, "Fatal: ") {
		t.Errorf("default format: %q, want restic's plain Fatal line", plain.stderr)
	}
	structured := missing.with("CAIRN_LOG_FORMAT=json").expect(10, "snapshots")
	recs := jsonLines(t, structured.stderr)
	if len(recs) != 1 || recs[0]["level"] != "ERROR" || recs[0]["exit_code"] != 10.0 || !strings.HasPrefix(fmt.Sprint(recs[0]["msg"]), "Fatal: ") {
		t.Errorf("CAIRN_LOG_FORMAT=json: %v", recs)
	}
	// --json keeps restic's exit_error message whatever the log format.
	jsonOut := missing.expect(10, "--log-format", "json", "snapshots", "--json")
	if recs := jsonLines(t, jsonOut.stderr); len(recs) != 1 || recs[0]["message_type"] != "exit_error" {
		t.Errorf("--json with --log-format json: %v", recs)
	}
	bad := missing.expect(1, "--log-format", "xml", "snapshots")
	if !strings.Contains(bad.stderr, `invalid log format "xml"`) {
		t.Errorf("bad format: %q", bad.stderr)
	}
}

// The metrics a run writes and pushes: the check's error count (0 on a
// sound repository, more on a damaged one), the repository's size (the sum
// of its pack files), the snapshots per source, and the dedup ratio of the
// backup; in the textfile and in the Pushgateway groups, both valid text
// exposition.
func TestRunJobMetricsCheckAndStats(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir)
	r.ok("init")
	src := t.TempDir()
	data := make([]byte, 3<<20)
	fillRandom(data)
	for _, name := range []string{"a", "copy-of-a"} { // the second copy deduplicates
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rc := newReceiver(t)
	textfile := filepath.Join(t.TempDir(), "cairn.prom")
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, `
name: nightly
sources: [{name: app, host: cluster-a-app, paths: [`+src+`]}]
check: {args: [--read-data]}
webhook: {url: `+rc.srv.URL+`/hook}
metrics: {textfile: `+textfile+`, pushgateway: `+rc.srv.URL+`}
`)
	r.ok("run", "--config", cfg)
	r.ok("run", "--config", cfg)
	got := rc.lastWebhook(t)
	if got.Check == nil || got.Check.NumErrors == nil || *got.Check.NumErrors != 0 || got.Check.ExitCode != 0 || got.Name != "nightly" {
		t.Fatalf("webhook check %+v", got.Check)
	}
	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	m := parseProm(t, string(prom))
	repoL := `{repository="` + repoDir + `"}`
	srcL := `{source="app",host="cluster-a-app",repository="` + repoDir + `"}`
	packBytes, packs := dirSize(t, filepath.Join(repoDir, "data"))
	if packs == 0 {
		t.Fatal("no packs")
	}
	for k, want := range map[string]float64{
		"cairn_check_errors" + repoL:                 0,
		"cairn_check_success" + repoL:                1,
		"cairn_backup_repository_size_bytes" + repoL: float64(packBytes),
		"cairn_backup_snapshots" + srcL:              2,
		"cairn_backup_success" + srcL:                1,
		"cairn_backup_files_unmodified" + srcL:       2,
		`cairn_job_success{run="nightly"}`:           1,
	} {
		if v := m.get(t, k); v != want {
			t.Errorf("%s = %v, want %v", k, v, want)
		}
	}
	// The first run's dedup ratio: 6 MiB read, one copy (and metadata)
	// added. The second run added only its snapshot's tree: the ratio is
	// read / added of that run, whatever it is.
	sum := got.Sources[0].Summary
	if want := float64(sum.TotalBytesProcessed) / float64(sum.DataAdded); math.Abs(m.get(t, "cairn_backup_dedup_ratio"+srcL)-want) > 1e-9*want {
		t.Errorf("dedup ratio %v, want %v", m["cairn_backup_dedup_ratio"+srcL], want)
	}
	if s := m.get(t, "cairn_check_last_run_timestamp_seconds"+repoL); s < float64(got.Start.Unix()) {
		t.Errorf("check timestamp %v before the run's start %v", s, got.Start.Unix())
	}

	// The Pushgateway got the same values in three groups, each valid.
	rc.mu.Lock()
	pushes := map[string]string{}
	for k, v := range rc.pushes {
		pushes[k] = v
	}
	rc.mu.Unlock()
	repoGroup := "POST /metrics/job/cairn/repository@base64/" + base64.RawURLEncoding.EncodeToString([]byte(repoDir))
	for _, k := range []string{"PUT /metrics/job/cairn/run/nightly", "POST /metrics/job/cairn/source/app", repoGroup} {
		if _, ok := pushes[k]; !ok {
			t.Fatalf("no push %s; got %v", k, keysOfMap(pushes))
		}
	}
	if len(pushes) != 3 {
		t.Errorf("pushes to %v, want 3 groups", keysOfMap(pushes))
	}
	pm := parseProm(t, pushes[repoGroup])
	if pm.get(t, "cairn_check_errors"+repoL) != 0 || pm.get(t, "cairn_backup_repository_size_bytes"+repoL) != float64(packBytes) || len(pm) != 5 {
		t.Errorf("repository group: %v", pm)
	}
	sm := parseProm(t, pushes["POST /metrics/job/cairn/source/app"])
	if sm.get(t, "cairn_backup_snapshots"+srcL) != 2 || sm.get(t, "cairn_backup_dedup_ratio"+srcL) != m["cairn_backup_dedup_ratio"+srcL] {
		t.Errorf("source group: %v", sm)
	}
	if jm := parseProm(t, pushes["PUT /metrics/job/cairn/run/nightly"]); jm.get(t, `cairn_job_success{run="nightly"}`) != 1 || len(jm) != 3 {
		t.Errorf("job group: %v", jm)
	}

	// A damaged repository (a pack gone): a check-only run fails with 1
	// and reports the errors it counted.
	var pack string
	_ = filepath.WalkDir(filepath.Join(repoDir, "data"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && pack == "" {
			pack = p
		}
		return nil
	})
	if err := os.Remove(pack); err != nil {
		t.Fatal(err)
	}
	checkCfg := filepath.Join(t.TempDir(), "check.yaml")
	checkProm := filepath.Join(t.TempDir(), "check.prom")
	writeJobFile(t, checkCfg, `
name: check
check: {}
webhook: {url: `+rc.srv.URL+`/hook}
metrics: {textfile: `+checkProm+`, pushgateway: `+rc.srv.URL+`}
`)
	res := r.run("run", "--config", checkCfg)
	if res.code != 1 {
		t.Fatalf("check of a damaged repository: exit %d, want 1\n%s", res.code, res)
	}
	got = rc.lastWebhook(t)
	if got.Status != "failure" || got.Check == nil || got.Check.NumErrors == nil || *got.Check.NumErrors < 1 || !strings.HasPrefix(got.Error, "check: ") {
		t.Errorf("webhook after a failed check: %+v (check %+v)", got, got.Check)
	}
	prom, _ = os.ReadFile(checkProm)
	cm := parseProm(t, string(prom))
	if cm.get(t, "cairn_check_errors"+repoL) < 1 || cm.get(t, "cairn_check_success"+repoL) != 0 || cm.get(t, `cairn_job_exit_code{run="check"}`) != 1 {
		t.Errorf("textfile after a failed check:\n%s", prom)
	}
	if _, ok := cm["cairn_backup_repository_size_bytes"+repoL]; ok {
		t.Error("a failed run reported the repository's size")
	}
	rc.mu.Lock()
	pushed := rc.pushes[repoGroup]
	_, checkGroup := rc.pushes["PUT /metrics/job/cairn/run/check"]
	rc.mu.Unlock()
	if parseProm(t, pushed).get(t, "cairn_check_errors"+repoL) < 1 || !checkGroup {
		t.Errorf("pushes after a failed check: %s", pushed)
	}
	recs := jsonLines(t, res.stderr)
	found := false
	for _, rec := range recs {
		if rec["msg"] == "step finished" && rec["step"] == "check" {
			found = rec["status"] == "failure" && rec["level"] == "ERROR" && rec["num_errors"].(float64) >= 1
		}
	}
	if !found {
		t.Errorf("no failed check step record:\n%s", res.stderr)
	}
}

func keysOfMap(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// On a terminal, auto gives `cairn run` slog's text records and leaves a
// restic command's error plain. script(1) runs cairn on a pseudo-terminal.
func TestLogFormatAutoOnTerminal(t *testing.T) {
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		testtools.Unavailable(t, "script (util-linux) runs a command on a pseudo-terminal: %v", err)
	}
	repoDir := filepath.Join(t.TempDir(), "repo")
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+repoDir, "TERM=dumb")
	r.ok("init")
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, "sources: [{name: a, paths: ["+t.TempDir()+"]}]\n")
	onTerminal := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(scriptBin, "-qefc", cairnBin+" "+strings.Join(args, " "), "/dev/null")
		cmd.Env = r.env
		out, _ := cmd.CombinedOutput()
		return strings.ReplaceAll(string(out), "\r\n", "\n")
	}
	out := onTerminal("run", "--config", cfg)
	if !regexp.MustCompile(`(?m)^time=\S+ level=INFO msg="step finished" step=backup source=a host=a status=success`).MatchString(out) {
		t.Errorf("cairn run on a terminal did not write text records:\n%s", out)
	}
	if strings.Contains(out, `{"time"`) {
		t.Errorf("JSON records on a terminal:\n%s", out)
	}
	out = onTerminal("-r", filepath.Join(t.TempDir(), "none"), "snapshots")
	if !strings.HasPrefix(strings.TrimSpace(out), "Fatal: ") {
		t.Errorf("a restic command on a terminal: %q, want restic's plain Fatal line", out)
	}
}

// A child's output becomes one record per line: lines split across writes
// are joined, a progress line redrawn with \r counts once in its last
// state, restic's JSON error messages keep their item and text, and its
// exit_error is left to the step's end record.
func TestLineLogger(t *testing.T) {
	var buf strings.Builder
	l := newLogger(&buf, logFormatJSON, slog.LevelInfo, func(s string) string { return strings.ReplaceAll(s, "hunter22", "***") })
	attrs := []any{"step", "backup"}
	w := newLineLogger(l, slog.LevelWarn, resticMessage(l, attrs...), attrs...)
	for _, chunk := range []string{
		"first li", "ne\n",
		"10%\r50%\r100%\n",
		`{"message_type":"error","error":{"message":"open /x: permission denied"},"during":"archival","item":"/x"}` + "\n",
		`{"message_type":"exit_error","code":3,"message":"incomplete"}` + "\n",
		"password hunter22 leaked\n",
		"no newline at the end",
	} {
		if _, err := io.WriteString(w, chunk); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	recs := jsonLines(t, buf.String())
	want := []map[string]any{
		{"level": "WARN", "msg": "first line", "step": "backup"},
		{"level": "WARN", "msg": "100%"},
		{"level": "WARN", "msg": "error", "item": "/x", "during": "archival", "error": "open /x: permission denied"},
		{"level": "WARN", "msg": "password *** leaked"},
		{"level": "WARN", "msg": "no newline at the end"},
	}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(recs), len(want), buf.String())
	}
	for i, w := range want {
		for k, v := range w {
			if recs[i][k] != v {
				t.Errorf("record %d: %s = %v, want %v", i, k, recs[i][k], v)
			}
		}
	}
}

// A Pushgateway behind basic auth that refuses the push: the failure is
// logged (the run keeps its own status), without the URL's password.
func TestRunJobPushgatewayPasswordNotLogged(t *testing.T) {
	const pgPassword = "pg-pw-5e2c07"
	var refused atomic.Int32
	pg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		refused.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(pg.Close)
	dir := newRepo(t)
	r := newRunner(t).with("RESTIC_PASSWORD="+testPassword, "RESTIC_REPOSITORY="+dir)
	src := t.TempDir()
	writeJobFile(t, filepath.Join(src, "a.txt"), "a\n")
	cfg := filepath.Join(t.TempDir(), "job.yaml")
	writeJobFile(t, cfg, "sources: [{name: app, paths: ["+src+"]}]\n")
	pgURL := strings.Replace(pg.URL, "http://", "http://pusher:"+pgPassword+"@", 1)
	res := r.with("CAIRN_PUSHGATEWAY_URL="+pgURL).ok("run", "--config", cfg)
	if refused.Load() == 0 || !strings.Contains(res.stderr, "metrics push failed") {
		t.Fatalf("no refused push reported (%d requests):\n%s", refused.Load(), res.stderr)
	}
	if strings.Contains(res.stderr, pgPassword) {
		t.Errorf("the Pushgateway password leaked into the log:\n%s", res.stderr)
	}
}
