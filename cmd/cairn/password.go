package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/term"
	"golang.org/x/text/encoding/unicode"
)

// errEmptyPassword is restic's refusal of an empty password.
var errEmptyPassword = errors.New("an empty password is not allowed")

// passwordSource says where a repository password comes from, restic's
// way: --password-command, else --password-file, else $RESTIC_PASSWORD
// (whose variable name differs for the secondary repository of init), else
// a prompt.
type passwordSource struct {
	File    string
	Command string
	EnvVar  string // e.g. RESTIC_PASSWORD
}

// resolve returns the password from the command, the file or the
// environment, or "" when none is set (the caller then prompts). The
// command's output and the file are trimmed like restic trims them; the
// environment variable is taken verbatim.
func (s passwordSource) resolve(ctx context.Context) (string, error) {
	if s.File != "" && s.Command != "" {
		return "", errors.New("password file and command are mutually exclusive options")
	}
	if s.Command != "" {
		return runPasswordCommand(ctx, s.Command)
	}
	if s.File != "" {
		return loadPasswordFile(s.File)
	}
	if s.EnvVar != "" {
		return os.Getenv(s.EnvVar), nil
	}
	return "", nil
}

// runPasswordCommand runs the command without a shell and returns its
// output with surrounding white space trimmed. Its standard error passes
// through, so that a helper can prompt or explain a failure.
func runPasswordCommand(ctx context.Context, command string) (string, error) {
	args, err := splitCommand(command)
	if err != nil {
		return "", fmt.Errorf("password command: %w", err)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		// The output may hold a partial secret: never include it.
		return "", fmt.Errorf("password command %s failed: %w", args[0], err)
	}
	return strings.TrimSpace(string(out)), nil
}

// loadPasswordFile reads a password file: a byte order mark is dropped,
// UTF-16 (with BOM) is converted to UTF-8, and surrounding white space,
// such as the newline an editor or a Kubernetes secret adds, is trimmed.
func loadPasswordFile(name string) (string, error) {
	data, err := readTextFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("password file %s does not exist", name)
	}
	if err != nil {
		return "", fmt.Errorf("read password file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// readTextFile reads a text file the way restic reads password and
// repository files: without a UTF-8 BOM, and converted from UTF-16 when it
// starts with a UTF-16 BOM.
func readTextFile(name string) ([]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return decodeText(data)
}

func decodeText(data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xef, 0xbb, 0xbf}):
		return data[3:], nil
	case bytes.HasPrefix(data, []byte{0xfe, 0xff}), bytes.HasPrefix(data, []byte{0xff, 0xfe}):
		out, err := unicode.UTF16(unicode.BigEndian, unicode.UseBOM).NewDecoder().Bytes(data)
		if err != nil {
			return nil, fmt.Errorf("decode UTF-16: %w", err)
		}
		return out, nil
	}
	return data, nil
}

// readPassword prompts on the terminal without echo, or reads the first
// line of standard input when it is not a terminal. If ctx ends first the
// terminal is restored and ctx's error returned.
func (a *app) readPassword(ctx context.Context, prompt string) (string, error) {
	if !a.term.inIsTerm {
		if a.term.outIsTerm {
			a.term.Print("reading repository password from stdin")
		}
		sc := bufio.NewScanner(a.stdin)
		sc.Scan()
		if err := sc.Err(); err != nil {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return sc.Text(), nil
	}
	fd := int(a.stdinFile.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return "", fmt.Errorf("read password: terminal state: %w", err)
	}
	type result struct {
		pw  []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		fmt.Fprint(a.term.errOut, prompt)
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(a.term.errOut)
		done <- result{pw, err}
	}()
	select {
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		return "", ctx.Err()
	case r := <-done:
		if r.err != nil {
			return "", fmt.Errorf("read password: %w", r.err)
		}
		return string(r.pw), nil
	}
}

// promptPassword asks for a password, refusing an empty one.
func (a *app) promptPassword(ctx context.Context, prompt string) (string, error) {
	pw, err := a.readPassword(ctx, prompt)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errEmptyPassword
	}
	return pw, nil
}

// promptPasswordTwice asks twice on a terminal and insists that both
// answers match; from a pipe it reads once.
func (a *app) promptPasswordTwice(ctx context.Context, prompt1, prompt2 string) (string, error) {
	pw, err := a.promptPassword(ctx, prompt1)
	if err != nil {
		return "", err
	}
	if a.term.inIsTerm {
		again, err := a.promptPassword(ctx, prompt2)
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("passwords do not match")
		}
	}
	return pw, nil
}
