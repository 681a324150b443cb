package backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"syscall"
)

// Permanenter is implemented by errors that know whether repeating the
// failed operation can help. Backends give their protocol errors this
// method (an HTTP 404 or 403 is permanent, a 503 is not); IsPermanent asks
// it before any other rule.
type Permanenter interface {
	Permanent() bool
}

// IsPermanent reports whether retrying the operation that failed with err
// cannot succeed, so a retrying layer must give up at once.
//
// The first error in err's chain that implements Permanenter decides.
// Without one, these are permanent: a missing file (fs.ErrNotExist), a
// refused permission (fs.ErrPermission: wrong credentials, access denied, an
// append-only server refusing a delete), a short read (ErrShortRead), a
// missing repository (ErrNoRepository), a full or read-only disk (ENOSPC,
// EDQUOT, EROFS), the end of the caller's context (context.Canceled,
// context.DeadlineExceeded) and a TLS peer that cannot be trusted or does
// not speak TLS (an unknown authority, a wrong host name, an expired
// certificate, a TLS alert such as a refused client certificate).
// Everything else — broken connections,
// timeouts, server errors — counts as transient. nil is not permanent.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var p Permanenter
	if errors.As(err, &p) {
		return p.Permanent()
	}
	for _, target := range permanentTargets {
		if errors.Is(err, target) {
			return true
		}
	}
	return isTLSRefusal(err)
}

// isTLSRefusal reports whether err is a TLS handshake that failed for a
// reason no retry changes: the configuration (CA, host name, client
// certificate) has to.
func isTLSRefusal(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		host      x509.HostnameError
		invalid   x509.CertificateInvalidError
		header    tls.RecordHeaderError
		alert     tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &authority) || errors.As(err, &host) ||
		errors.As(err, &invalid) || errors.As(err, &header) || errors.As(err, &alert)
}

// permanentTargets are the sentinels IsPermanent treats as permanent when no
// error in the chain says otherwise.
var permanentTargets = append([]error{
	fs.ErrNotExist, fs.ErrPermission, ErrShortRead, ErrNoRepository,
	context.Canceled, context.DeadlineExceeded,
	syscall.ENOSPC, syscall.EROFS,
}, platformPermanent...)

// PermanentError marks err as permanent for IsPermanent while keeping it
// visible to errors.Is and errors.As.
func PermanentError(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }
