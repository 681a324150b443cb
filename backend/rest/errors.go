package rest

import (
	"fmt"
	"io/fs"
	"net/http"

	"github.com/cairn-backup/cairn/backend"
)

// StatusError is an HTTP status the protocol does not expect for an
// operation. It unwraps to the sentinel callers test for: fs.ErrNotExist
// (404), fs.ErrPermission (401, 403) and backend.ErrShortRead (416 on a
// ranged read).
type StatusError struct {
	// Op is the operation: "save", "load", "stat", "remove", "list" or
	// "create".
	Op string
	// StatusCode and Status are the server's answer ("403 Forbidden").
	StatusCode int
	Status     string
}

func (e *StatusError) Error() string {
	msg := "server answered " + e.Status
	if hint := e.hint(); hint != "" {
		msg += ": " + hint
	}
	return msg
}

// hint explains what rest-server means by a status, since its bodies say
// no more than the status text.
func (e *StatusError) hint() string {
	switch e.StatusCode {
	case http.StatusUnauthorized:
		return "authentication failed; check the user name and password in the repository URL " +
			"(with --private-repos a user may only use repositories below /<user>/)"
	case http.StatusForbidden:
		switch e.Op {
		case "remove":
			return "the server refuses to delete files; rest-server does this in --append-only mode"
		case "save":
			return "the server refuses to write the file; rest-server does this when the file already exists"
		}
		return "access denied"
	case http.StatusInsufficientStorage:
		return "the server is out of space or over its quota"
	case http.StatusRequestEntityTooLarge:
		return "the upload exceeds the server's size limit"
	case http.StatusBadRequest:
		if e.Op == "save" {
			return "the server rejected the upload; rest-server does this when the content does not hash to the file name or the transfer broke off"
		}
	}
	return ""
}

// Unwrap returns the sentinel the status stands for, or nil.
func (e *StatusError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusNotFound:
		return fs.ErrNotExist
	case http.StatusUnauthorized, http.StatusForbidden:
		return fs.ErrPermission
	case http.StatusRequestedRangeNotSatisfiable:
		if e.Op == "load" {
			return backend.ErrShortRead
		}
	}
	return nil
}

// Permanent reports whether repeating the request cannot help: restic
// gives up at once on 404, 416, 401, 403 and 507. 400 (a rejected upload
// may be a broken transfer) and 5xx may pass on a retry.
func (e *StatusError) Permanent() bool {
	switch e.StatusCode {
	case http.StatusNotFound, http.StatusRequestedRangeNotSatisfiable, http.StatusUnauthorized,
		http.StatusForbidden, http.StatusInsufficientStorage, http.StatusMethodNotAllowed,
		http.StatusRequestEntityTooLarge:
		return true
	}
	return false
}

// opError wraps err with the operation, the file and the location, e.g.
// "rest: save <data/0a1b2c3d4e> at rest:https://u:***@host/repo/: …".
func (b *Backend) opError(op string, h backend.Handle, err error) error {
	return fmt.Errorf("rest: %s %v at %s: %w", op, h, b.location, err)
}
