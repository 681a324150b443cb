package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// terminal serialises everything cairn prints. Messages go to stdout or
// stderr as whole lines; on a terminal one status line is kept at the
// bottom of stdout and redrawn after each message, so that progress and
// messages do not garble each other. Without a terminal there is no status
// line at all.
type terminal struct {
	mu        sync.Mutex
	out       io.Writer
	errOut    io.Writer
	outIsTerm bool // stdout is a terminal
	inIsTerm  bool // stdin is a terminal (password prompts)
	canStatus bool // a status line may be drawn
	status    string
	width     func() int
	// secrets are replaced by "***" in everything printed: passwords of
	// the locations in use, in case a library quotes one verbatim.
	secrets []string
	// errLog, when set, takes the stderr messages as structured log
	// records instead (--log-format).
	errLog func(line string)
}

// minSecretLen is the shortest secret scrubbed from output: replacing
// every "ab" in a listing would garble it more than it protects.
const minSecretLen = 6

// addSecrets registers strings that must never be printed.
func (t *terminal) addSecrets(secrets ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range secrets {
		if len(s) >= minSecretLen {
			t.secrets = append(t.secrets, s)
		}
	}
}

// scrub must be called with t.mu held.
func (t *terminal) scrub(s string) string {
	for _, sec := range t.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return s
}

// ansiClearLine returns the cursor to the start of the line and clears it.
const ansiClearLine = "\r\x1b[2K"

func newTerminal(stdin *os.File, out, errOut io.Writer, quiet bool) *terminal {
	t := &terminal{out: out, errOut: errOut, width: func() int { return 0 }}
	if stdin != nil && term.IsTerminal(int(stdin.Fd())) {
		t.inIsTerm = true
	}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		t.outIsTerm = true
		t.canStatus = !quiet && os.Getenv("TERM") != "dumb"
		fd := int(f.Fd())
		t.width = func() int {
			w, _, err := term.GetSize(fd)
			if err != nil {
				return 0
			}
			return w
		}
	}
	return t
}

// Print writes a line to stdout.
func (t *terminal) Print(line string) { t.write(t.out, line) }

// Error writes a line to stderr, or a log record with --log-format.
func (t *terminal) Error(line string) {
	t.mu.Lock()
	log := t.errLog
	t.mu.Unlock()
	if log != nil {
		log(strings.TrimRight(line, "\n"))
		return
	}
	t.write(t.errOut, line)
}

func (t *terminal) setErrLog(f func(line string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errLog = f
}

// Scrub returns s without the registered secrets.
func (t *terminal) Scrub(s string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.scrub(s)
}

// writeRaw writes b (already scrubbed) to w, around the status line.
func (t *terminal) writeRaw(w io.Writer, b []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status != "" {
		io.WriteString(t.out, ansiClearLine)
	}
	w.Write(b)
	if t.status != "" {
		io.WriteString(t.out, t.status)
	}
}

func (t *terminal) write(w io.Writer, line string) {
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status != "" {
		io.WriteString(t.out, ansiClearLine)
	}
	io.WriteString(w, t.scrub(line))
	if t.status != "" {
		io.WriteString(t.out, t.status)
	}
}

// SetStatus replaces the status line ("" removes it). It does nothing
// where no status line can be drawn.
func (t *terminal) SetStatus(line string) {
	if !t.canStatus {
		return
	}
	line = quote(strings.TrimRight(line, "\n"))
	if w := t.width(); w > 1 && displayWidth(line) >= w {
		line = truncate(line, w-1)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	line = t.scrub(line)
	if line == t.status {
		return
	}
	io.WriteString(t.out, ansiClearLine+line)
	t.status = line
}

// truncate cuts s to at most w terminal cells.
func truncate(s string, w int) string {
	n := 0
	for i, r := range s {
		rw := displayWidth(string(r))
		if n+rw > w {
			return s[:i]
		}
		n += rw
	}
	return s
}

// Raw returns stdout for binary output (cat pack, cat blob), with the
// status line removed first.
func (t *terminal) Raw() io.Writer {
	t.SetStatus("")
	return t.out
}

// printer prints messages by verbosity, like restic's: 0 with --quiet, 1
// by default, 2 with -v, 3 with -vv. With --json the human messages are
// suppressed (verbosity 0) so that stdout stays machine-readable.
type printer struct {
	t *terminal
	v uint
}

func newPrinter(t *terminal, verbosity uint, jsonMode bool) *printer {
	if jsonMode {
		verbosity = 0
	}
	return &printer{t: t, v: verbosity}
}

// E prints an error or warning on stderr, always.
func (p *printer) E(format string, args ...any) { p.t.Error(fmt.Sprintf(format, args...)) }

// S prints something the command was asked for, even with --quiet.
func (p *printer) S(format string, args ...any) { p.t.Print(fmt.Sprintf(format, args...)) }

// P prints a normal message unless --quiet.
func (p *printer) P(format string, args ...any) {
	if p.v >= 1 {
		p.t.Print(fmt.Sprintf(format, args...))
	}
}

// PT is P, but only when stdout is a terminal (informational chatter that
// scripts do not want).
func (p *printer) PT(format string, args ...any) {
	if p.v >= 1 && p.t.outIsTerm {
		p.t.Print(fmt.Sprintf(format, args...))
	}
}

// V prints with -v.
func (p *printer) V(format string, args ...any) {
	if p.v >= 2 {
		p.t.Print(fmt.Sprintf(format, args...))
	}
}

// VV prints with -vv.
func (p *printer) VV(format string, args ...any) {
	if p.v >= 3 {
		p.t.Print(fmt.Sprintf(format, args...))
	}
}

// printJSON writes v as one line of JSON to stdout.
func (t *terminal) printJSON(v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode JSON output: %w", err)
	}
	t.Print(string(buf))
	return nil
}

// errorJSON writes v as one line of JSON to stderr.
func (t *terminal) errorJSON(v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		t.Error(fmt.Sprintf("encode JSON output: %v", err))
		return
	}
	// restic's JSON messages keep their shape whatever the log format.
	t.write(t.errOut, string(buf))
}
