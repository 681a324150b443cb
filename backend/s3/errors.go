package s3

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"slices"

	"github.com/minio/minio-go/v7"

	"github.com/cairn-backup/cairn/backend"
)

// Error is an error answer from the S3 server. It unwraps to the sentinel
// callers test for: fs.ErrNotExist (NoSuchKey, NoSuchBucket),
// fs.ErrPermission (AccessDenied and rejected credentials) and
// backend.ErrShortRead (InvalidRange on a read).
type Error struct {
	// Op is the operation: "save", "load", "stat", "remove", "list" or
	// "create".
	Op string
	// Code is the S3 error code ("NoSuchKey", "AccessDenied", …).
	Code string
	// Message is the server's explanation.
	Message string
	// StatusCode is the HTTP status.
	StatusCode int
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	msg = fmt.Sprintf("%s (%s, HTTP %d)", msg, e.Code, e.StatusCode)
	if hint := e.hint(); hint != "" {
		msg += ": " + hint
	}
	return msg
}

// credentialCodes are the codes with which servers reject the credentials
// themselves (XAdminUserNotFound is versitygw's for an unknown key).
var credentialCodes = []string{"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
	"InvalidClientTokenId", "XAdminUserNotFound"}

func (e *Error) hint() string {
	if slices.Contains(credentialCodes, e.Code) {
		return "the server rejected the credentials; check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or the profile in use)"
	}
	switch e.Code {
	case "AccessDenied":
		return "the credentials are not allowed to do this"
	case "NoSuchBucket":
		return "the bucket does not exist; initialise the repository first"
	case "BadDigest", "InvalidDigest":
		return "the data changed in transit"
	}
	return ""
}

// Unwrap returns the sentinel the code stands for, or nil.
func (e *Error) Unwrap() error {
	if e.Code == "AccessDenied" || slices.Contains(credentialCodes, e.Code) {
		return fs.ErrPermission
	}
	switch e.Code {
	case "NoSuchKey", "NoSuchBucket", "NotFound":
		return fs.ErrNotExist
	case "InvalidRange":
		if e.Op == "load" {
			return backend.ErrShortRead
		}
	}
	return nil
}

// Permanent reports whether repeating the request cannot help.
func (e *Error) Permanent() bool {
	if e.Code == "AccessDenied" || slices.Contains(credentialCodes, e.Code) {
		return e.Code != "ExpiredToken" // a refreshed token may pass
	}
	switch e.Code {
	case "NoSuchKey", "NoSuchBucket", "NotFound", "InvalidRange", "InvalidBucketName", "InvalidStorageClass",
		"EntityTooLarge", "MethodNotAllowed":
		return true
	}
	return false
}

// mapError turns minio-go's error answers into *Error and leaves other
// errors (network, context) as they are.
func mapError(op string, err error) error {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return err
	}
	return &Error{Op: op, Code: resp.Code, Message: resp.Message, StatusCode: resp.StatusCode}
}
