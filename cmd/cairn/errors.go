package main

import (
	"context"
	"errors"
	"strings"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/repo"
)

// Exit codes, the same as restic 0.19.1's.
const (
	exitOK            = 0
	exitFatal         = 1
	exitIncomplete    = 3
	exitNoRepository  = 10
	exitLocked        = 11
	exitWrongPassword = 12
	exitInterrupted   = 130
)

// exitStatusHelp ends the help of the commands whose exit statuses are
// restic's usual five, in restic's words.
const exitStatusHelp = `EXIT STATUS
===========

Exit status is 0 if the command was successful.
Exit status is 1 if there was any error.
Exit status is 10 if the repository does not exist.
Exit status is 11 if the repository is already locked.
Exit status is 12 if the password is incorrect.
`

// errIncomplete ends a backup that saved a snapshot although some source
// data could not be read (exit status 3).
var errIncomplete = errors.New("at least one source file could not be read")

// exitCode maps an error to restic's exit status. A signal (the cancelled
// root ctx) wins over whatever error it caused, so an interrupted run
// always exits with 130; a context cancelled for another reason, such as a
// lost lock, is an ordinary fatal error.
func exitCode(ctx context.Context, err error) int {
	var locked *repo.LockedError
	switch {
	case err == nil && ctx.Err() == nil:
		return exitOK
	case ctx.Err() != nil:
		return exitInterrupted
	case errors.Is(err, errIncomplete):
		return exitIncomplete
	case errors.Is(err, backend.ErrNoRepository):
		return exitNoRepository
	case errors.As(err, &locked):
		return exitLocked
	case errors.Is(err, repo.ErrWrongPassword):
		return exitWrongPassword
	}
	return exitFatal
}

// exitMessage is the text printed for a failed run, in restic's words
// where restic has them.
func exitMessage(code int, err error) string {
	if err == nil {
		if code == exitInterrupted {
			return "Fatal: interrupted"
		}
		return ""
	}
	msg := err.Error()
	switch code {
	case exitIncomplete:
		return "Warning: " + msg
	case exitLocked:
		return msg + "\nthe `unlock` command can be used to remove stale locks"
	}
	if strings.HasPrefix(msg, "Fatal: ") {
		return msg
	}
	return "Fatal: " + msg
}

// exitErrorJSON is restic's exit_error message for --json.
type exitErrorJSON struct {
	MessageType string `json:"message_type"` // "exit_error"
	Code        int    `json:"code"`
	Message     string `json:"message"`
}
