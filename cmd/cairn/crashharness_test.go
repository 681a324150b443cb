package main

// The crash harness: a cairn command is SIGKILLed at a chosen point of its
// conversation with a real rest-server, then restic must accept the
// repository, the same command must succeed when run again (no manual
// unlock) and restic must accept the result. See crash_test.go for the
// commands and docs/maintenance.md ("crash safety") for what a killed run
// leaves behind.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/internal/oracle"
	"github.com/cairn-backup/cairn/internal/testserver"
)

// killWhen says where in a request the child dies.
type killWhen int

const (
	// killBefore: the request never reaches the server.
	killBefore killWhen = iota
	// killMid: about half of an upload's body has been forwarded; the
	// server sees a truncated upload.
	killMid
	// killAfter: the server has answered (the file is stored or deleted),
	// the client never hears of it.
	killAfter
	// killTimer: not tied to a request; the child dies a fixed time after
	// it started (while it chunks, hashes or waits), see crashPoint.delay.
	killTimer
)

func (w killWhen) String() string {
	return [...]string{"before", "mid", "after", "timer"}[w]
}

// crashPoint is one place to kill a command: the n-th request (counting
// only mutations — POST and DELETE — when mutation is set, else only reads)
// at stage when, or delay after the start for killTimer.
type crashPoint struct {
	mutation bool
	n        int
	when     killWhen
	delay    time.Duration
}

func (p crashPoint) String() string {
	switch {
	case p.when == killTimer:
		return fmt.Sprintf("timer-%dms", p.delay.Milliseconds())
	case p.mutation:
		return fmt.Sprintf("mut%02d-%s", p.n, p.when)
	default:
		return fmt.Sprintf("read%02d-%s", p.n, p.when)
	}
}

// crashRun is the proxy's state for one child: which request kills it and
// what it has seen.
type crashRun struct {
	point crashPoint
	// kill SIGKILLs the child; it is set before the child starts.
	kill func()

	// inflight counts requests being proxied; Add happens under the
	// proxy's lock, so that after unregistering, Wait sees them all.
	inflight sync.WaitGroup

	mu        sync.Mutex
	mutations int
	reads     int
	fired     string   // the request at which the child was killed
	trace     []string // every request, in arrival order
	hasFired  bool
}

// count records a request and reports whether it is the one that kills.
func (r *crashRun) count(what string, mutation bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trace = append(r.trace, what)
	if r.hasFired || r.point.when == killTimer {
		return false
	}
	n := &r.reads
	if mutation {
		n = &r.mutations
	}
	*n++
	return mutation == r.point.mutation && *n == r.point.n
}

// fire kills the child (once) and notes at which request.
func (r *crashRun) fire(what string) {
	r.mu.Lock()
	first := !r.hasFired
	if first {
		r.hasFired = true
		r.fired = what
	}
	r.mu.Unlock()
	if first {
		r.kill()
	}
}

func (r *crashRun) result() (fired string, trace []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fired, append([]string(nil), r.trace...)
}

// crashProxy is a reverse proxy in front of rest-server that kills the child
// registered for a repository (the first path element) at its crash point.
// Unregistered repositories pass through untouched.
type crashProxy struct {
	url string // base URL with trailing slash
	rp  *httputil.ReverseProxy

	mu   sync.Mutex
	runs map[string]*crashRun
}

type killAfterKey struct{}

// errKilledHere ends a proxied request whose client was just killed.
var errKilledHere = errors.New("crash harness: client killed")

func newCrashProxy(t *testing.T, srv *testserver.Rest) *crashProxy {
	t.Helper()
	p := &crashProxy{runs: map[string]*crashRun{}}
	p.rp = httputil.NewSingleHostReverseProxy(srv.URL)
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	p.rp.ModifyResponse = func(resp *http.Response) error {
		if v, ok := resp.Request.Context().Value(killAfterKey{}).(killAfterMark); ok {
			// The server has stored (or deleted) it; the client dies
			// before it hears so.
			v.run.fire(v.what + " (answered " + resp.Status + ")")
			return errKilledHere
		}
		return nil
	}
	p.rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	hs := httptest.NewServer(p)
	t.Cleanup(hs.Close)
	p.url = hs.URL + "/"
	return p
}

type killAfterMark struct {
	run  *crashRun
	what string
}

// register makes run the controller of requests for repository name and
// returns the function that ends it.
func (p *crashProxy) register(name string, run *crashRun) func() {
	p.mu.Lock()
	p.runs[name] = run
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.runs, name)
		p.mu.Unlock()
	}
}

func (p *crashProxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name, rest, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	p.mu.Lock()
	run := p.runs[name]
	if run != nil {
		run.inflight.Add(1)
	}
	p.mu.Unlock()
	if run == nil {
		p.rp.ServeHTTP(w, req)
		return
	}
	defer run.inflight.Done()
	mutation := req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodDelete
	what := req.Method + " " + shortPath(rest)
	if !run.count(what, mutation) {
		p.rp.ServeHTTP(w, req)
		return
	}
	switch run.point.when {
	case killMid:
		if req.ContentLength > 1 && req.Body != nil {
			req.Body = &killingBody{rc: req.Body, left: req.ContentLength / 2, fire: func() { run.fire(what + " (half the body sent)") }}
			p.rp.ServeHTTP(w, req)
			return
		}
		fallthrough // nothing to cut in half: the same as before
	case killBefore:
		run.fire(what)
		panic(http.ErrAbortHandler)
	case killAfter:
		ctx := context.WithValue(req.Context(), killAfterKey{}, killAfterMark{run: run, what: what})
		p.rp.ServeHTTP(w, req.WithContext(ctx))
	}
}

// shortPath shortens file names in a request path for traces.
func shortPath(p string) string {
	dir, file := filepath.Split(p)
	if len(file) > 8 {
		file = file[:8]
	}
	return dir + file
}

// killingBody passes left bytes of an upload, then kills the client and
// fails, so that the server receives a truncated body.
type killingBody struct {
	rc   io.ReadCloser
	left int64
	fire func()
}

func (b *killingBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		b.fire()
		return 0, errKilledHere
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *killingBody) Close() error { return b.rc.Close() }

// crashSeries kills one command at many points. Every point starts from a
// hard-linked copy of base (repository files are never modified in place,
// by cairn or rest-server, so the copies share storage safely).
type crashSeries struct {
	name  string
	srv   *testserver.Rest
	proxy *crashProxy
	// local runs the command on a local repository (directory) instead of
	// rest-server: no requests to count, only timer points.
	local bool
	// base is a repository directory (cheap key derivation, see newRepo).
	base string
	// args is the command; the repository comes from RESTIC_REPOSITORY.
	args []string
	env  []string // more KEY=VALUE for every run
	// bin is the cairn binary to run; empty means cairnBin.
	bin string
	// again runs the command a second time after a kill and returns the
	// password that opens the repository afterwards. Nil: the same args
	// must succeed and testPassword still opens the repository.
	again func(t *testing.T, s *crashSeries, r *runner, pt *pointRepo) string
	// passwords are tried in turn by the check after the kill (one of
	// them must open the repository); empty means testPassword.
	passwords []string
	// verify checks the outcome after the second run, with restic (o
	// knows the password again returned).
	verify func(t *testing.T, o *oracle.Restic, pt *pointRepo)
	// afterKill, when set, runs right after the kill, before restic
	// looks (migrate puts back a config the kill left missing).
	afterKill func(t *testing.T, r *runner, pt *pointRepo, p crashPoint)
	// damagedBase says restic check rejects the base already (repair
	// snapshots): after a kill restic must only open it and list the
	// snapshots; after the second run check must pass.
	damagedBase bool
	// minPoints is how many kill points the series must reach (not in
	// -short mode).
	minPoints int
}

// pointRepo is one point's copy of the repository.
type pointRepo struct {
	name string // repository name on the server
	dir  string // its directory (restic checks it directly)
	loc  string // rest: location through the proxy, or dir when local
}

// crashOutcome is what happened at one kill point.
type crashOutcome struct {
	point  crashPoint
	killed bool   // false: the command finished before the point
	fired  string // request at which it died
}

// plan runs the command once without killing it and returns the kill
// points: every mutation before it is forwarded, mid-body (uploads) and
// after the server answered; then reads (killed before they are forwarded)
// and timer points spread over the run, up to minPoints plus crashMargin.
func (s *crashSeries) plan(t *testing.T) (points []crashPoint, dur time.Duration) {
	t.Helper()
	pt := s.copyBase(t, "plan")
	run := &crashRun{point: crashPoint{when: killTimer}, kill: func() {}}
	if !s.local {
		defer s.proxy.register(pt.name, run)()
	}
	r := s.runner(t, pt)
	start := time.Now()
	s.ok(t, r, s.args...)
	dur = time.Since(start)
	// In timer mode the proxy only traces; count from the trace.
	_, trace := run.result()
	reads, mutations := 0, 0
	uploads := map[int]bool{}
	for _, what := range trace {
		if strings.HasPrefix(what, "POST ") || strings.HasPrefix(what, "PUT ") || strings.HasPrefix(what, "DELETE ") {
			mutations++
			uploads[mutations] = !strings.HasPrefix(what, "DELETE ")
		} else {
			reads++
		}
	}
	t.Logf("%s: %d reads, %d mutations in %v: %s", s.name, reads, mutations, dur.Round(time.Millisecond), strings.Join(trace, ", "))
	for n := 1; n <= mutations; n++ {
		points = append(points, crashPoint{mutation: true, n: n, when: killBefore})
		if uploads[n] {
			points = append(points, crashPoint{mutation: true, n: n, when: killMid})
		}
		points = append(points, crashPoint{mutation: true, n: n, when: killAfter})
	}
	// Reads fill up to the target, evenly spread over the run (a command
	// may read hundreds of files; each point costs two runs).
	target := s.minPoints + crashMargin
	if room := min(target-len(points), reads); room > 0 {
		for i := range room {
			points = append(points, crashPoint{n: 1 + i*reads/room, when: killBefore})
		}
	}
	// Timer points fill the run's duration evenly, without the first
	// 5 ms (the process has not started yet) and the last quarter (a run
	// may be quicker than the planning run, which may have met a busier
	// machine).
	if missing := target - len(points); missing > 0 {
		for i := 1; i <= missing; i++ {
			d := 5*time.Millisecond + time.Duration(i)*dur*3/4/time.Duration(missing+1)
			points = append(points, crashPoint{when: killTimer, delay: d})
		}
	}
	if testing.Short() {
		// Every third point keeps the sweep's shape at a third of the cost.
		var some []crashPoint
		for i, p := range points {
			if i%3 == 0 {
				some = append(some, p)
			}
		}
		points = some
	}
	return points, dur
}

// copyBase hard-links the base repository into the server's data directory
// under a new name.
func (s *crashSeries) copyBase(t *testing.T, label string) *pointRepo {
	t.Helper()
	name := s.name + "-" + label
	var dir string
	if s.local {
		dir = filepath.Join(t.TempDir(), name)
	} else {
		dir = filepath.Join(s.srv.DataDir, name)
	}
	err := filepath.WalkDir(s.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(s.base, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			if s.local {
				return os.MkdirAll(dst, 0o700)
			}
			return nil // made for the files in it; rest-server makes the others on demand
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		return os.Link(p, dst)
	})
	if err != nil {
		t.Fatalf("copy base repository for %s: %v", name, err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if s.local {
		return &pointRepo{name: name, dir: dir, loc: dir}
	}
	return &pointRepo{name: name, dir: dir, loc: "rest:" + s.proxy.url + name + "/"}
}

// command is r.command running the series' binary.
func (s *crashSeries) command(ctx context.Context, r *runner, args ...string) *exec.Cmd {
	cmd := r.command(ctx, args...)
	if s.bin != "" {
		cmd.Path = s.bin
	}
	return cmd
}

// run is r.run with the series' binary.
func (s *crashSeries) run(t *testing.T, r *runner, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := s.command(ctx, r, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("cairn %v timed out\n%s", args, res)
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run cairn %v: %v", args, err)
	}
	return res
}

// ok is run that fails the test unless cairn exits with 0.
func (s *crashSeries) ok(t *testing.T, r *runner, args ...string) result {
	t.Helper()
	res := s.run(t, r, args...)
	if res.code != 0 {
		t.Fatalf("%s", res)
	}
	return res
}

// cheapKDFBin builds cairn with the cairn_testkdf tag once: new keys get
// cheap scrypt parameters instead of half a second of calibration each.
var cheapKDFBin = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(filepath.Dir(cairnBin), "cairn-testkdf")
	out, err := exec.Command("go", "build", "-buildvcs=false", "-tags", "cairn_testkdf", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build cairn with cairn_testkdf: %v\n%s", err, out)
	}
	return bin, nil
})

func (s *crashSeries) runner(t *testing.T, pt *pointRepo) *runner {
	// A temporary directory of its own per point: migrate leaves its
	// config backup there.
	env := []string{"RESTIC_PASSWORD=" + testPassword, "RESTIC_REPOSITORY=" + pt.loc, "TMPDIR=" + t.TempDir()}
	return newRunner(t).with(append(env, s.env...)...)
}

// runPoint kills the command at p and checks everything that must hold
// afterwards. readData asks for restic check --read-data at the end.
func (s *crashSeries) runPoint(t *testing.T, p crashPoint, readData bool) crashOutcome {
	t.Helper()
	pt := s.copyBase(t, p.String())
	r := s.runner(t, pt)

	run := &crashRun{point: p}
	unregister := func() {}
	if !s.local {
		unregister = s.proxy.register(pt.name, run)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := s.command(ctx, r, s.args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := make(chan struct{})
	run.kill = func() {
		<-started
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start cairn: %v", err)
	}
	close(started)
	if p.when == killTimer {
		timer := time.AfterFunc(p.delay, func() { run.fire("timer") })
		defer timer.Stop()
	}
	err := cmd.Wait()
	// Requests the dead child had in flight end before restic looks.
	unregister()
	run.inflight.Wait()
	fired, trace := run.result()
	out := crashOutcome{point: p, fired: fired}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("cairn %v at %v did not end: %v\nstderr: %s", s.args, p, ctx.Err(), stderr.String())
	case errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled():
		out.killed = true
	case err != nil:
		t.Fatalf("cairn %v at %v failed before it was killed: %v\nstdout: %s\nstderr: %s\nrequests: %s",
			s.args, p, err, stdout.String(), stderr.String(), strings.Join(trace, ", "))
	}
	if out.killed && fired == "" {
		t.Fatalf("cairn died of a signal nobody sent at %v", p)
	}

	if s.afterKill != nil {
		s.afterKill(t, r, pt, p)
	}
	o := oracleFor(t)
	// restic's check takes an exclusive lock and, like every restic
	// command, does not ignore stale locks: the dead process's lock would
	// make it exit 11. --no-lock looks at the repository as it is.
	passwords := s.passwords
	if s.damagedBase {
		o.Snapshots(pt.dir, "--no-lock")
		passwords = nil
	} else if len(passwords) == 0 {
		passwords = []string{testPassword}
	}
	for i, pw := range passwords {
		// A password that no key accepts any more (key passwd removed
		// the old key) is no failure as long as another one opens it.
		if i < len(passwords)-1 && o.WithPassword(pw).Run(pt.dir, "--no-lock", "cat", "config").ExitCode == exitWrongPassword {
			continue
		}
		// --read-data: a kill must not leave a pack whose content does
		// not match its index entries (a half-written pack that got
		// indexed, say), which a structural check would not notice.
		s.mustAccept(t, o.WithPassword(pw), pt, p, "after the kill", true, "--no-lock")
		break
	}

	password := testPassword
	if s.again != nil {
		password = s.again(t, s, r, pt)
	} else {
		s.ok(t, r, s.args...)
	}
	// The second run removed the killed run's stale lock and its own: no
	// lock is left that would stop restic (which never ignores one).
	// A SIGKILL while the local backend wrote a lock leaves its temporary
	// file (<id>-tmp-<random>); restic and cairn ignore such names.
	locks := lockIDs(t, pt.dir)
	if len(locks) != 0 {
		t.Errorf("%v: %d lock files left after the second run: %v", p, len(locks), locks)
	}
	o = o.WithPassword(password)
	// No lock is left (see above), so --no-lock only saves restic's lock
	// settle delay.
	s.mustAccept(t, o, pt, p, "after the second run", readData, "--no-lock")
	if s.verify != nil {
		s.verify(t, o, pt)
	}
	if t.Failed() {
		t.Logf("requests of the killed run: %s", strings.Join(trace, ", "))
	}
	return out
}

// fileID is a repository file name; anything else is ignored by readers.
var fileID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// tolerated are the lines restic check prints, with exit 0 and "no errors
// were found", for leftovers of a killed run: packs no index references (an
// upload before its index; a later prune removes them) and packs in two
// index files (prune stopped between writing the new index and deleting
// the old ones; the next prune or repair index merges them). restic calls
// both non-critical and leaves both behind itself when killed.
var tolerated = regexp.MustCompile(`(?i)additional files were found|not referenced in any index|this is non-critical, you can run .restic prune.|contained in several indexes|duplicate packs are non-critical|^\s*$`)

// mustAccept fails the test unless restic check finds no errors. Packs
// without index entries are tolerated: they are what an interrupted upload
// leaves behind, and restic itself leaves them too.
func (s *crashSeries) mustAccept(t *testing.T, o *oracle.Restic, pt *pointRepo, p crashPoint, when string, readData bool, args ...string) {
	t.Helper()
	resticAccepts(t, o, pt.dir, tolerated, fmt.Sprintf("%s at %v", when, p), readData, args...)
}

// resticAccepts fails the test unless restic check finds no errors and
// prints no notice but those matching ok.
func resticAccepts(t *testing.T, o *oracle.Restic, dir string, ok *regexp.Regexp, when string, readData bool, args ...string) {
	t.Helper()
	c := o.Check(dir, readData, args...)
	var bad []string
	for _, line := range c.Problems {
		if !ok.MatchString(line) {
			bad = append(bad, line)
		}
	}
	if c.ExitCode != 0 || !strings.Contains(string(c.Stdout), "no errors were found") || len(bad) > 0 {
		t.Fatalf("%s: restic check (read-data=%v) rejects the repository (exit %d):\n%s\nproblems: %q",
			when, readData, c.ExitCode, c.Output(), bad)
	}
}

// crashTmpfs moves the test's temporary files — rest-server's data, the
// repositories, restic's and cairn's caches — to /dev/shm when that is a
// tmpfs with room to spare: rest-server syncs every file it stores, and on
// a disk the syncs of hundreds of kill points take longer than the rest.
// SIGKILL of the client is what is tested, not a power cut, so nothing is
// lost by it. Elsewhere the test runs on the default temporary directory.
// It must be called before the test's first t.TempDir.
func crashTmpfs(t *testing.T) {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic || st.Bavail*uint64(st.Bsize) < 2<<30 {
		return
	}
	dir, err := os.MkdirTemp("/dev/shm", "cairn-crash-")
	if err != nil {
		return
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	t.Setenv("TMPDIR", dir)
}

// crashWorkers is how many kill points run at once. Most of a point's time
// is spent waiting (lock settle delays, fsync in rest-server), so more
// workers than cores pay off.
const crashWorkers = 6

// crashMargin is how many points more than needed are planned: the number
// of packs varies a little from run to run (blobs go to one of two packers
// at random), so a late point may miss; so may a timer.
const crashMargin = 8

// sweep plans the kill points and runs each as a subtest, crashWorkers at a
// time, then fails unless enough of them hit the command.
func (s *crashSeries) sweep(t *testing.T) {
	t.Helper()
	points, dur := s.plan(t)
	readDataAt := len(points) / 2
	start := time.Now()
	var mu sync.Mutex
	var outcomes []crashOutcome
	next := 0
	var wg sync.WaitGroup
	// t.Run may be called from several goroutines; each subtest still
	// runs (and may fail) in a goroutine of its own.
	for range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(points) {
					return
				}
				p := points[i]
				t.Run(p.String(), func(t *testing.T) {
					out := s.runPoint(t, p, i == readDataAt)
					mu.Lock()
					outcomes = append(outcomes, out)
					mu.Unlock()
				})
			}
		}()
	}
	wg.Wait()
	killed := 0
	for _, o := range outcomes {
		if o.killed {
			killed++
		}
	}
	t.Logf("%s: %d points, %d killed the command (uninterrupted run %v), sweep took %v",
		s.name, len(points), killed, dur.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if !testing.Short() && killed < s.minPoints && !t.Failed() {
		t.Errorf("%s: only %d kill points hit the command, want at least %d", s.name, killed, s.minPoints)
	}
}
