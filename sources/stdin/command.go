package stdin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// waitDelay bounds how long a finished or killed command's pipes may stay
// open (held by a child it left running) before Wait gives up on them.
const waitDelay = 10 * time.Second

// FromCommand returns a source that runs argv when it is walked and backs
// up its standard output as one file. argv[0] is looked up in PATH and the
// arguments are passed as they are, without a shell. The backup fails if
// the command cannot be started or exits with an error.
func FromCommand(argv []string, opts Options) (*Source, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("stdin: no command given")
	}
	s, err := newSource(opts)
	if err != nil {
		return nil, err
	}
	c := &command{argv: append([]string(nil), argv...), stderr: s.opts.Stderr}
	s.cmd = c
	s.open = func(ctx context.Context) (io.ReadCloser, error) {
		rc, err := c.output()
		if err != nil {
			return nil, err
		}
		return &nonEmptyReader{rc: rc, name: s.hostPath(), allowEmpty: c.failed}, nil
	}
	return s, nil
}

// command is a running --stdin-from-command process.
type command struct {
	argv   []string
	stderr func(string)

	mu     sync.Mutex
	cmd    *exec.Cmd
	stdout io.ReadCloser
	done   bool  // Wait returned
	err    error // why the command failed, once done
	lines  *lineWriter

	waitOnce sync.Once
}

func (c *command) String() string { return fmt.Sprintf("command %q", c.argv) }

// start runs the command; ctx cancellation kills it.
func (c *command) start(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.WaitDelay = waitDelay
	cmd.Stdin = nil // the command must not compete for our standard input
	if c.stderr != nil {
		c.lines = &lineWriter{fn: c.stderr}
		cmd.Stderr = c.lines
	} else {
		cmd.Stderr = os.Stderr
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("stdin-from-command: %v: %w", c, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("stdin-from-command: start %v: %w", c, err)
	}
	c.mu.Lock()
	c.cmd, c.stdout = cmd, stdout
	c.mu.Unlock()
	return nil
}

// output returns the command's standard output; at its end the reader
// waits for the command, so that its exit status is known before the
// backup finishes the file.
func (c *command) output() (io.ReadCloser, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil, fmt.Errorf("stdin-from-command: %v was not started", c)
	}
	return &commandOutput{c: c}, nil
}

type commandOutput struct {
	c   *command
	eof bool // Wait closed the pipe: later reads must keep saying EOF
}

func (o *commandOutput) Read(p []byte) (int, error) {
	if o.eof {
		return 0, io.EOF
	}
	n, err := o.c.stdout.Read(p)
	if errors.Is(err, io.EOF) {
		o.eof = true
		// The data is complete; whether it is good depends on the exit
		// status, which Walk reports after the file (a failed command
		// fails the whole backup rather than leaving a warning).
		o.c.wait()
	}
	return n, err
}

func (o *commandOutput) Close() error { return nil }

// failed reports whether the command has ended with an error.
func (c *command) failed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done && c.err != nil
}

// wait waits for the command once and records how it ended. Concurrent
// callers all return once it has ended. The lock is not held while
// waiting, so that kill can always reach the process.
func (c *command) wait() {
	c.mu.Lock()
	cmd := c.cmd
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	c.waitOnce.Do(func() {
		err := cmd.Wait()
		if c.lines != nil {
			c.lines.flush()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.done = true
		if err != nil {
			c.err = fmt.Errorf("stdin-from-command: %v failed: %w", c, err)
		}
	})
}

// finish ends the command after the walk: a command whose output was not
// read to the end is stopped and counts as failed. It returns the
// command's error, or the context's when the walk was cancelled.
func (c *command) finish(ctx context.Context) error {
	c.mu.Lock()
	unread := c.cmd != nil && !c.done
	c.mu.Unlock()
	if unread {
		_ = c.kill()
		c.mu.Lock()
		// The kill is ours: say why, rather than "signal: killed".
		c.err = fmt.Errorf("stdin-from-command: the output of %v was not read to the end", c)
		c.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// kill stops a running command and waits for it.
func (c *command) kill() error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil || done {
		return nil
	}
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
	c.wait()
	return nil
}

// lineWriter hands complete lines to fn; the last partial line is handed
// over by flush.
type lineWriter struct {
	mu  sync.Mutex
	fn  func(string)
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(strings.TrimSuffix(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	// A command writing megabytes without a newline must not grow the
	// buffer without bound.
	if len(w.buf) > 64<<10 {
		w.fn(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.fn(string(w.buf))
		w.buf = nil
	}
}
