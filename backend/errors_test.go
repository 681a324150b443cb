package backend_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"testing"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/internal/sshx"
)

// answer is a protocol error that knows whether it is permanent, like
// rest.StatusError and s3.Error.
type answer struct{ permanent bool }

func (a answer) Error() string   { return fmt.Sprintf("answer(permanent=%v)", a.permanent) }
func (a answer) Permanent() bool { return a.permanent }

// expiredToken says "transient" although it unwraps to a permission error:
// the first Permanent in the chain must decide.
type expiredToken struct{}

func (expiredToken) Error() string   { return "token expired" }
func (expiredToken) Permanent() bool { return false }
func (expiredToken) Unwrap() error   { return fs.ErrPermission }

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("connection reset by peer"), false},
		{"io.ErrUnexpectedEOF", fmt.Errorf("load: %w", io.ErrUnexpectedEOF), false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"not found", fmt.Errorf("stat <data/01>: %w", fs.ErrNotExist), true},
		{"permission", fmt.Errorf("save: %w", fs.ErrPermission), true},
		{"short read", fmt.Errorf("load: %w", backend.ErrShortRead), true},
		{"no repository", backend.ErrNoRepository, true},
		{"canceled", fmt.Errorf("save: %w", context.Canceled), true},
		{"deadline", fmt.Errorf("save: %w", context.DeadlineExceeded), true},
		{"disk full", fmt.Errorf("write: %w", syscall.ENOSPC), true},
		{"read-only fs", fmt.Errorf("write: %w", syscall.EROFS), true},
		{"quota", fmt.Errorf("write: %w", syscall.EDQUOT), true},
		{"permanent answer", fmt.Errorf("rest: %w", answer{true}), true},
		{"transient answer", fmt.Errorf("rest: %w", answer{false}), false},
		{"first Permanent decides", fmt.Errorf("s3: %w", expiredToken{}), false},
		{"PermanentError", backend.PermanentError(errors.New("bad handle")), true},
		{"PermanentError over transient", backend.PermanentError(answer{false}), true},
		{"tls unknown authority", fmt.Errorf("Head: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true},
		{"x509 host name", fmt.Errorf("Get: %w", x509.HostnameError{Host: "h"}), true},
		{"tls alert", fmt.Errorf("Put: remote error: %w", tls.AlertError(42)), true},
		{"plain http answer to tls", fmt.Errorf("Get: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), true},
		{"ssh host key", fmt.Errorf("sftp: dial: %w", &sshx.UnknownHostKeyError{Host: "h"}), true},
		{"ssh host key sentinel", fmt.Errorf("ssh: %w", sshx.ErrHostKey), true},
		{"ssh auth", fmt.Errorf("ssh h: %w (offered: key): %w", sshx.ErrAuth, errors.New("ssh: unable to authenticate")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backend.IsPermanent(tt.err); got != tt.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestPermanentErrorKeepsChain(t *testing.T) {
	if backend.PermanentError(nil) != nil {
		t.Fatal("PermanentError(nil) != nil")
	}
	err := backend.PermanentError(fmt.Errorf("load: %w", fs.ErrNotExist))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("PermanentError hides the wrapped sentinel: %v", err)
	}
	if err.Error() != "load: file does not exist" {
		t.Errorf("PermanentError changes the message: %q", err.Error())
	}
}
