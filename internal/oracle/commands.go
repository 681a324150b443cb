package oracle

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Init creates a repository with `restic init --repository-version VERSION`
// (VERSION 0 leaves restic's default, 2) and returns restic's message. The
// extra args go before the repository, e.g. --copy-chunker-params with
// --from-repo.
func (r *Restic) Init(repo string, version int, extraArgs ...string) InitResult {
	r.t.Helper()
	args := []string{"init"}
	if version != 0 {
		args = append(args, "--repository-version", strconv.Itoa(version))
	}
	args = append(args, extraArgs...)
	var res InitResult
	r.RunJSON(repo, &res, args...)
	if res.MessageType != "initialized" || len(res.ID) != 64 {
		r.t.Fatalf("oracle: restic init %s: unexpected message %+v", repo, res)
	}
	return res
}

// Backup runs `restic backup --json EXTRA... -- PATHS...` (relative paths
// resolve against the InDir directory), fails the test unless restic exits
// with status 0, and returns its summary. Use Run and ParseBackup for a
// backup that is expected to fail or to report unreadable files.
func (r *Restic) Backup(repo string, paths []string, extraArgs ...string) BackupSummary {
	r.t.Helper()
	args := append([]string{"backup", "--json"}, extraArgs...)
	args = append(append(args, "--"), paths...)
	res := r.Run(repo, args...)
	if err := res.Err(); err != nil {
		r.t.Fatalf("oracle: %v", err)
	}
	sum, err := ParseBackup(res)
	if err != nil {
		r.t.Fatalf("oracle: %v", err)
	}
	return *sum
}

// ParseBackup extracts the summary and the error messages from the result of
// a `restic backup --json` run. It fails when restic printed no summary.
func ParseBackup(res *Result) (*BackupSummary, error) {
	msgs, err := SplitJSONLines(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("parse restic backup output: %w", err)
	}
	var sum *BackupSummary
	for _, m := range msgs {
		var head struct {
			MessageType string `json:"message_type"`
		}
		if err := json.Unmarshal(m, &head); err != nil {
			return nil, fmt.Errorf("parse restic backup message %s: %w", m, err)
		}
		if head.MessageType == "summary" {
			sum = new(BackupSummary)
			if err := json.Unmarshal(m, sum); err != nil {
				return nil, fmt.Errorf("parse restic backup summary %s: %w", m, err)
			}
		}
	}
	if sum == nil {
		return nil, fmt.Errorf("restic %s printed no summary (exit code %d): %s",
			strings.Join(res.Args, " "), res.ExitCode, tail(res.Stderr, 2000))
	}
	// Errors share stderr with plain warnings; keep the JSON ones.
	for _, line := range strings.Split(string(res.Stderr), "\n") {
		var e BackupError
		if json.Unmarshal([]byte(line), &e) == nil && e.MessageType == "error" {
			sum.Errors = append(sum.Errors, e)
		}
	}
	return sum, nil
}

// Snapshots returns `restic snapshots --json ARGS...` (filters such as
// --host, --path, --tag, or snapshot IDs), oldest first as restic prints them.
func (r *Restic) Snapshots(repo string, args ...string) []Snapshot {
	r.t.Helper()
	var list []Snapshot
	r.RunJSON(repo, &list, append([]string{"snapshots"}, args...)...)
	return list
}

// Ls returns `restic ls --json SNAPSHOT ARGS...`: the snapshot and every node
// below the given directories (all of them when none are given).
func (r *Restic) Ls(repo, snapshot string, args ...string) LsResult {
	r.t.Helper()
	var out LsResult
	msgs := r.RunJSONLines(repo, append([]string{"ls", snapshot}, args...)...)
	for i, m := range msgs {
		var head struct {
			MessageType string `json:"message_type"`
		}
		if err := json.Unmarshal(m, &head); err != nil {
			r.t.Fatalf("oracle: restic ls line %d: %v", i+1, err)
		}
		var err error
		switch head.MessageType {
		case "snapshot":
			err = json.Unmarshal(m, &out.Snapshot)
		case "node":
			var n LsNode
			err = json.Unmarshal(m, &n)
			out.Nodes = append(out.Nodes, n)
		default:
			err = fmt.Errorf("unknown message type %q", head.MessageType)
		}
		if err != nil {
			r.t.Fatalf("oracle: restic ls line %d %s: %v", i+1, m, err)
		}
	}
	if out.Snapshot.ID == "" {
		r.t.Fatalf("oracle: restic ls %s printed no snapshot message", snapshot)
	}
	return out
}

// Restore runs `restic restore --json SNAPSHOT --target TARGET ARGS...`
// (SNAPSHOT may be "latest" or "ID:subfolder"), fails the test unless restic
// exits with status 0, and returns its summary.
func (r *Restic) Restore(repo, snapshot, target string, args ...string) RestoreSummary {
	r.t.Helper()
	msgs := r.RunJSONLines(repo, append([]string{"restore", snapshot, "--target", target}, args...)...)
	for _, m := range slices.Backward(msgs) {
		var sum RestoreSummary
		if err := json.Unmarshal(m, &sum); err == nil && sum.MessageType == "summary" {
			return sum
		}
	}
	r.t.Fatalf("oracle: restic restore %s printed no summary", snapshot)
	return RestoreSummary{}
}

// CheckResult is the outcome of `restic check`.
type CheckResult struct {
	*Result
	// Clean is true when restic exited with status 0, said "no errors were
	// found", and reported nothing non-critical either (unused blobs,
	// duplicate or mixed packs, additional files, warnings on stderr): the
	// state a repository written by a correct implementation is in.
	Clean bool
	// Problems lists the lines that made the check not clean.
	Problems []string
}

// nonCritical matches what restic check reports without failing.
var nonCritical = regexp.MustCompile(`(?i)additional files were found|non-critical|contained in several indexes|contains a mix of tree and data blobs|^unused blob|not referenced in any index`)

// Check runs `restic check` (with --read-data when readData is set, then any
// extra args) and reports whether the repository is clean. It never fails the
// test itself: compatibility tests assert on Clean and print Output().
func (r *Restic) Check(repo string, readData bool, extraArgs ...string) CheckResult {
	r.t.Helper()
	args := []string{"check"}
	if readData {
		args = append(args, "--read-data")
	}
	res := r.Run(repo, append(args, extraArgs...)...)
	out := CheckResult{Result: res}
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if nonCritical.MatchString(line) {
			out.Problems = append(out.Problems, strings.TrimSpace(line))
		}
	}
	for _, line := range strings.Split(string(res.Stderr), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out.Problems = append(out.Problems, line)
		}
	}
	out.Clean = res.OK() && strings.Contains(string(res.Stdout), "no errors were found") && len(out.Problems) == 0
	return out
}

// MustCheck runs Check and fails the test unless the repository is clean.
func (r *Restic) MustCheck(repo string, readData bool, extraArgs ...string) {
	r.t.Helper()
	if c := r.Check(repo, readData, extraArgs...); !c.Clean {
		r.t.Fatalf("oracle: restic check (read-data=%v) of %s is not clean (exit code %d):\n%s\nproblems: %q",
			readData, repo, c.ExitCode, c.Output(), c.Problems)
	}
}

// Cat returns the stdout of `restic cat ARGS...` (config, index ID, snapshot
// ID, key ID, masterkey, lock ID, pack ID, blob ID, tree SNAPSHOT[:PATH]).
func (r *Restic) Cat(repo string, args ...string) []byte {
	r.t.Helper()
	return r.MustRun(repo, append([]string{"cat"}, args...)...).Stdout
}

// CatJSON decodes the output of `restic cat ARGS...` into v.
func (r *Restic) CatJSON(repo string, v any, args ...string) {
	r.t.Helper()
	out := r.Cat(repo, args...)
	if err := json.Unmarshal(out, v); err != nil {
		r.t.Fatalf("oracle: decode restic cat %s: %v\n%s", strings.Join(args, " "), err, tail(out, 1000))
	}
}

// CatConfig returns the repository config.
func (r *Restic) CatConfig(repo string) Config {
	r.t.Helper()
	var c Config
	r.CatJSON(repo, &c, "config")
	return c
}

// CatTree returns the tree of `restic cat tree SNAPSHOT[:PATH]`.
func (r *Restic) CatTree(repo, snapshotPath string) Tree {
	r.t.Helper()
	var tr Tree
	r.CatJSON(repo, &tr, "tree", snapshotPath)
	return tr
}

// CatTreeBlob returns the tree blob with the given ID.
func (r *Restic) CatTreeBlob(repo, id string) Tree {
	r.t.Helper()
	var tr Tree
	r.CatJSON(repo, &tr, "blob", id)
	return tr
}

// CatIndex returns the index file with the given ID.
func (r *Restic) CatIndex(repo, id string) Index {
	r.t.Helper()
	var idx Index
	r.CatJSON(repo, &idx, "index", id)
	return idx
}

// List returns the IDs of `restic list TYPE` (packs, index, snapshots, keys,
// locks), sorted.
func (r *Restic) List(repo, fileType string) []string {
	r.t.Helper()
	ids := strings.Fields(string(r.MustRun(repo, "list", fileType).Stdout))
	slices.Sort(ids)
	return ids
}

// KeyList returns `restic key list --json`.
func (r *Restic) KeyList(repo string) []Key {
	r.t.Helper()
	var keys []Key
	r.RunJSON(repo, &keys, "key", "list")
	return keys
}

var savedKey = regexp.MustCompile(`saved new key with ID ([0-9a-f]{64})`)

// KeyAdd adds a key with newPassword, handed to restic through
// --new-password-file (a 0600 file in the test's temp dir), and returns the
// new key's ID. Extra args such as --user and --host follow.
func (r *Restic) KeyAdd(repo, newPassword string, extraArgs ...string) string {
	r.t.Helper()
	f, err := os.CreateTemp(r.t.TempDir(), "new-password-")
	if err != nil {
		r.t.Fatalf("oracle: key add: %v", err)
	}
	_, err = f.WriteString(newPassword)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.t.Fatalf("oracle: key add: write password file: %v", err)
	}
	args := append([]string{"key", "add", "--new-password-file", filepath.Clean(f.Name())}, extraArgs...)
	res := r.MustRun(repo, args...)
	m := savedKey.FindSubmatch(res.Stdout)
	if m == nil {
		r.t.Fatalf("oracle: restic key add printed no key ID: %s", res.Output())
	}
	return string(m[1])
}

// ForgetDryRunJSON returns what `restic forget --dry-run --json ARGS...`
// would keep and remove (ARGS are policies such as --keep-last 1).
func (r *Restic) ForgetDryRunJSON(repo string, args ...string) []ForgetGroup {
	r.t.Helper()
	var groups []ForgetGroup
	r.RunJSON(repo, &groups, append([]string{"forget", "--dry-run"}, args...)...)
	return groups
}
