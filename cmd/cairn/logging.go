package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// Log formats of --log-format / $CAIRN_LOG_FORMAT.
//
// "auto" (the default) keeps restic's plain messages for the commands cairn
// shares with restic, and makes `cairn run` (a job with nobody watching)
// write JSON lines when stderr is not a terminal and slog's key=value text
// when it is. "json" and "text" make every command write its stderr
// messages as structured records of that kind; stdout (listings, --json
// output) never changes.
const (
	logFormatAuto = "auto"
	logFormatJSON = "json"
	logFormatText = "text"
)

// logFormatEnv is the variable that sets --log-format's default.
const logFormatEnv = "CAIRN_LOG_FORMAT"

func checkLogFormat(f string) error {
	switch f {
	case logFormatAuto, logFormatJSON, logFormatText:
		return nil
	}
	return fmt.Errorf("invalid log format %q: want auto, json or text (--log-format or $%s)", f, logFormatEnv)
}

// structuredFormat resolves auto: "" means plain lines (restic's), else
// json or text. job is true for cairn's own job command.
func structuredFormat(format string, job bool, stderrIsTerm bool) string {
	switch {
	case format == logFormatJSON || format == logFormatText:
		return format
	case !job:
		return ""
	case stderrIsTerm:
		return logFormatText
	default:
		return logFormatJSON
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// setupLogging installs the structured logger, when the format asks for
// one, as the destination of every stderr message of the terminal.
func (a *app) setupLogging(job bool) error {
	if err := checkLogFormat(a.gopts.LogFormat); err != nil {
		return err
	}
	format := structuredFormat(a.gopts.LogFormat, job, isTerminal(a.term.errOut))
	if format == "" {
		return nil
	}
	level := slog.LevelInfo
	if a.gopts.verbosity >= 2 {
		level = slog.LevelDebug
	}
	l := newLogger(termWriter{a.term}, format, level, a.term.Scrub)
	a.log.Store(l)
	a.term.setErrLog(func(line string) { l.Warn(line) })
	return nil
}

// logger returns the structured logger, nil when messages are plain.
func (a *app) logger() *slog.Logger { return a.log.Load() }

// newLogger makes a logger whose every string (the message, each
// attribute, error texts) has passed through scrub before it is encoded,
// so a secret is cut out whatever escaping JSON would give it.
func newLogger(w io.Writer, format string, level slog.Level, scrub func(string) string) *slog.Logger {
	opts := &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, at slog.Attr) slog.Attr {
			switch v := at.Value; v.Kind() {
			case slog.KindString:
				at.Value = slog.StringValue(scrub(v.String()))
			case slog.KindAny:
				switch x := v.Any().(type) {
				case error:
					at.Value = slog.StringValue(scrub(x.Error()))
				case fmt.Stringer:
					at.Value = slog.StringValue(scrub(x.String()))
				case []string:
					out := make([]string, len(x))
					for i, s := range x {
						out[i] = scrub(s)
					}
					at.Value = slog.AnyValue(out)
				}
			}
			return at
		},
	}
	if format == logFormatText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// termWriter writes whole records to stderr through the terminal, so that
// a status line on stdout is cleared and redrawn around them.
type termWriter struct{ t *terminal }

func (w termWriter) Write(b []byte) (int, error) {
	w.t.writeRaw(w.t.errOut, b)
	return len(b), nil
}

// lineLogger is an io.Writer that turns a child's output into one record
// per line, so a job's stderr stays one record per line whatever its
// children print. parse, when set, may turn a line into a record of its
// own (restic's JSON messages) and reports whether it did.
type lineLogger struct {
	mu    sync.Mutex
	log   *slog.Logger
	level slog.Level
	attrs []any
	parse func(line []byte) bool
	buf   []byte
}

func newLineLogger(l *slog.Logger, level slog.Level, parse func([]byte) bool, attrs ...any) *lineLogger {
	return &lineLogger{log: l, level: level, attrs: attrs, parse: parse}
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	// A child that never ends its line (a progress bar) is cut into
	// records rather than held in memory.
	if len(w.buf) > 64<<10 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

// Close logs an unfinished last line.
func (w *lineLogger) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = nil
	}
	return nil
}

func (w *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	// A carriage return redraws a progress line: only its last state counts.
	if i := bytes.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if w.parse != nil && w.parse(line) {
		return
	}
	w.log.Log(context.Background(), w.level, string(line), w.attrs...)
}

// resticMessage logs one of restic's JSON messages on stderr (backup,
// check and restore --json) as a record of its own: errors keep their
// item, and the final exit_error is left to the step's end record.
func resticMessage(l *slog.Logger, attrs ...any) func([]byte) bool {
	return func(line []byte) bool {
		if len(line) == 0 || line[0] != '{' {
			return false
		}
		var m struct {
			MessageType string          `json:"message_type"`
			Message     string          `json:"message"`
			Error       json.RawMessage `json:"error"`
			During      string          `json:"during"`
			Item        string          `json:"item"`
		}
		if json.Unmarshal(line, &m) != nil || m.MessageType == "" {
			return false
		}
		switch m.MessageType {
		case "exit_error":
			return true
		case "error":
			text := m.Message
			var e struct {
				Message string `json:"message"`
			}
			if len(m.Error) > 0 && json.Unmarshal(m.Error, &e) == nil && e.Message != "" {
				text = e.Message
			}
			args := append([]any{}, attrs...)
			if m.Item != "" {
				args = append(args, "item", m.Item)
			}
			if m.During != "" {
				args = append(args, "during", m.During)
			}
			args = append(args, "error", text)
			l.Warn("error", args...)
			return true
		}
		return false
	}
}

// exitErrorMessage returns the message of a restic exit_error line, or the
// line itself.
func exitErrorMessage(line string) string {
	var m struct {
		MessageType string `json:"message_type"`
		Message     string `json:"message"`
	}
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &m) == nil && m.MessageType == "exit_error" {
		return m.Message
	}
	return line
}
