package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  string
	}{
		{"pass show repo", []string{"pass", "show", "repo"}, ""},
		{"  printf   %s\tx  ", []string{"printf", "%s", "x"}, ""},
		{`printf "%s" 'two words'`, []string{"printf", "%s", "two words"}, ""},
		{`echo "a 'b' c"`, []string{"echo", "a 'b' c"}, ""},
		{`cat "/path/with space/pw"`, []string{"cat", "/path/with space/pw"}, ""},
		{`a"b c"d`, []string{"a", "b c", "d"}, ""}, // restic: quotes split
		{`echo $HOME`, []string{"echo", "$HOME"}, ""},
		{`a\ b`, []string{"a", "b"}, ""}, // restic: a backslash separates
		{`echo "unterminated`, nil, "double-quoted string not terminated"},
		{`echo 'unterminated`, nil, "single-quoted string not terminated"},
		{"   ", nil, "command string is empty"},
	}
	for _, tc := range tests {
		got, err := splitCommand(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("splitCommand(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("splitCommand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDecodeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain\n", "plain\n"},
		{"\xef\xbb\xbfbom", "bom"},
		{"\xff\xfep\x00w\x00", "pw"},
		{"\xfe\xff\x00p\x00w", "pw"},
	}
	for _, tc := range tests {
		got, err := decodeText([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("decodeText(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.000 KiB"}, {1536, "1.500 KiB"}, {3 << 20, "3.000 MiB"}, {5 << 30, "5.000 GiB"}, {2 << 40, "2.000 TiB"}} {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "0:00"}, {59 * time.Second, "0:59"}, {61 * time.Second, "1:01"}, {3601 * time.Second, "1:00:01"}, {-time.Second, "0:00"}} {
		if got := formatDuration(tc.d); got != tc.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
	if got := formatPercent(1, 3); got != "33.33%" {
		t.Errorf("formatPercent = %q", got)
	}
	if got := formatPercent(5, 0); got != "" {
		t.Errorf("formatPercent(x, 0) = %q", got)
	}
	if got := quote("ok name"); got != "ok name" {
		t.Errorf("quote = %q", got)
	}
	if got := quote("bad\nname\xff"); got != `"bad\nname\xff"` {
		t.Errorf("quote = %q", got)
	}
	if got := displayWidth("日本a"); got != 5 {
		t.Errorf("displayWidth = %d", got)
	}
}

func TestTable(t *testing.T) {
	tb := &table{headers: []string{"ID", "Paths", "Size"}, footer: []string{"2 snapshots"}}
	tb.addRow("abcd", "/a\n/b", "1 B")
	tb.addRow("ef", "/c", "")
	tb.blankBetween = true
	var b strings.Builder
	if err := tb.write(&b); err != nil {
		t.Fatal(err)
	}
	want := "ID    Paths  Size\n" +
		"-----------------\n" +
		"abcd  /a     1 B\n" +
		"      /b\n" +
		"\n" +
		"ef    /c\n" +
		"-----------------\n" +
		"2 snapshots\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestExitCodes(t *testing.T) {
	live := context.Background()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		ctx  context.Context
		err  error
		code int
	}{
		{live, nil, exitOK},
		{live, errors.New("boom"), exitFatal},
		{live, fmt.Errorf("x: %w", errIncomplete), exitIncomplete},
		{live, fmt.Errorf("open: %w", backend.ErrNoRepository), exitNoRepository},
		{live, fmt.Errorf("lock: %w", &repo.LockedError{Lock: &repo.Lock{}}), exitLocked},
		{live, fmt.Errorf("open: %w", repo.ErrWrongPassword), exitWrongPassword},
		{live, context.Canceled, exitFatal}, // not a signal: e.g. a lost lock
		{cancelled, nil, exitInterrupted},
		{cancelled, fmt.Errorf("save: %w", repo.ErrWrongPassword), exitInterrupted},
	}
	for i, tc := range tests {
		if got := exitCode(tc.ctx, tc.err); got != tc.code {
			t.Errorf("case %d (%v): exit %d, want %d", i, tc.err, got, tc.code)
		}
	}
	if got := exitMessage(exitIncomplete, errIncomplete); got != "Warning: at least one source file could not be read" {
		t.Errorf("incomplete message %q", got)
	}
	if got := exitMessage(exitFatal, errors.New("Fatal: already")); got != "Fatal: already" {
		t.Errorf("message %q", got)
	}
	if got := exitMessage(exitLocked, errors.New("locked")); !strings.Contains(got, "unlock") {
		t.Errorf("locked message %q", got)
	}
}

func TestProgressInterval(t *testing.T) {
	t.Setenv("RESTIC_PROGRESS_FPS", "")
	for _, tc := range []struct {
		quiet, json, tty bool
		want             time.Duration
	}{
		{false, false, true, terminalInterval},
		{false, false, false, 0},
		{false, true, false, jsonInterval},
		{false, true, true, jsonInterval},
		{true, true, true, 0},
	} {
		if got := progressInterval(tc.quiet, tc.json, tc.tty); got != tc.want {
			t.Errorf("progressInterval(%v, %v, %v) = %v, want %v", tc.quiet, tc.json, tc.tty, got, tc.want)
		}
	}
	t.Setenv("RESTIC_PROGRESS_FPS", "2")
	if got := progressInterval(false, false, false); got != 500*time.Millisecond {
		t.Errorf("RESTIC_PROGRESS_FPS=2: %v", got)
	}
	t.Setenv("RESTIC_PROGRESS_FPS", "1000")
	if got := progressInterval(false, false, false); got != time.Second/60 {
		t.Errorf("RESTIC_PROGRESS_FPS=1000 not capped at 60: %v", got)
	}
}

func TestSmallHelpers(t *testing.T) {
	for _, tc := range []struct {
		base, p string
		want    bool
	}{{"/a", "/a", true}, {"/a", "/a/b", true}, {"/a", "/ab", false}, {"/", "/x", true}, {"/a/b", "/a", false}} {
		if got := hasPathPrefix(tc.base, tc.p); got != tc.want {
			t.Errorf("hasPathPrefix(%q, %q) = %v", tc.base, tc.p, got)
		}
	}
	if got := flattenTags([]string{"a,b", " c ", ",", ""}); strings.Join(got, "|") != "a|b|c" {
		t.Errorf("flattenTags = %q", got)
	}
	if g, err := parseGroupBy("host,paths"); err != nil || !g.Host || !g.Path || g.Tag {
		t.Errorf("parseGroupBy = %+v, %v", g, err)
	}
	if _, err := parseGroupBy("hosts,colour"); err == nil {
		t.Error("parseGroupBy accepted colour")
	}
}

func TestTerminalScrubsSecrets(t *testing.T) {
	var out, errOut strings.Builder
	term := newTerminal(nil, &out, &errOut, false)
	term.addSecrets("hunter2-long", "ab") // too short to scrub without garbling
	term.Print("quoted rest:http://u:hunter2-long@h/ in a message about ab")
	term.Error("hunter2-long again")
	if got := out.String(); got != "quoted rest:http://u:***@h/ in a message about ab\n" {
		t.Errorf("stdout %q", got)
	}
	if got := errOut.String(); got != "*** again\n" {
		t.Errorf("stderr %q", got)
	}
}
