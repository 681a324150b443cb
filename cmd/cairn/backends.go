package main

import (
	"context"

	"github.com/cairn-backup/cairn/backend"
	"github.com/cairn-backup/cairn/backend/location"
	"github.com/cairn-backup/cairn/backend/rest"
	"github.com/cairn-backup/cairn/backend/retry"
	"github.com/cairn-backup/cairn/backend/s3"
	"github.com/cairn-backup/cairn/backend/sftp"
)

// tlsSettings are the global --cacert and --tls-client-cert flags, which
// the HTTP backends (rest, s3) apply to their own transport.
type tlsSettings struct {
	CACerts    []string
	ClientCert string
}

// newRegistry is the one place where the binary's set of backends is
// built: every location scheme cairn understands is listed here. Each
// backend it opens is resilient (see resilient); warn prints the retry
// messages and the backends' own warnings on stderr.
func newRegistry(tls tlsSettings, warn func(format string, args ...any)) (*location.Registry, error) {
	r := location.New()
	add := []func() error{
		func() error { return location.Register(r, resilient(location.Local(), warn)) },
		func() error { return location.Register(r, resilient(sftpScheme(warn), warn)) },
		func() error { return location.Register(r, resilient(restScheme(tls), warn)) },
		func() error { return location.Register(r, resilient(s3Scheme(tls), warn)) },
	}
	for _, f := range add {
		if err := f(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// resilient makes every backend the scheme opens behave like restic's
// stack: at most Connections() operations in flight (the -o
// scheme.connections option made a guarantee), and transient errors
// retried with backoff for up to 15 minutes, each retry reported like
// restic ("Save(<data/0123456789>) returned error, retrying after 1.2s:
// …"). The messages carry the backends' errors, which never hold a
// password, and the terminal scrubs the location's secrets once more.
// --limit-upload/--limit-download wrap the result (openBackend), so rate
// waits never hold a connection slot idle.
func resilient[C any](s location.Scheme[C], warn func(format string, args ...any)) location.Scheme[C] {
	wrap := func(be backend.Backend, err error) (backend.Backend, error) {
		if err != nil {
			return nil, err
		}
		limited, err := location.Limit(be, location.Limits{Connections: be.Connections()})
		if err != nil {
			be.Close()
			return nil, err
		}
		return retry.New(limited, retry.Options{Report: func(e retry.Event) { warn("%s", e) }}), nil
	}
	open, create := s.Open, s.Create
	s.Open = func(ctx context.Context, c C) (backend.Backend, error) { return wrap(open(ctx, c)) }
	if create != nil {
		s.Create = func(ctx context.Context, c C) (backend.Backend, error) { return wrap(create(ctx, c)) }
	}
	return s
}

func sftpScheme(warn func(format string, args ...any)) location.Scheme[sftp.Config] {
	return location.Scheme[sftp.Config]{
		Name: "sftp",
		Parse: func(s string) (sftp.Config, error) {
			cfg, err := sftp.ParseConfig(s)
			cfg.Warnf = warn
			return cfg, err
		},
		SetOption: func(c *sftp.Config, key, value string) error { return c.SetOption(key, value) },
		Open: func(ctx context.Context, c sftp.Config) (backend.Backend, error) {
			return asBackend(sftp.Open(ctx, c))
		},
		Create: func(ctx context.Context, c sftp.Config) (backend.Backend, error) {
			return asBackend(sftp.Create(ctx, c))
		},
		// An SFTP location carries no password (ParseConfig refuses one);
		// the generic rule still hides one a user might type.
	}
}

func restScheme(tls tlsSettings) location.Scheme[rest.Config] {
	return location.Scheme[rest.Config]{
		Name: "rest",
		Parse: func(s string) (rest.Config, error) {
			cfg, err := rest.ParseConfig(s)
			if err != nil {
				return cfg, err
			}
			cfg.ApplyEnvironment()
			cfg.RootCAFiles, cfg.ClientCertFile = tls.CACerts, tls.ClientCert
			return cfg, nil
		},
		SetOption: func(c *rest.Config, key, value string) error { return c.SetOption(key, value) },
		Open: func(ctx context.Context, c rest.Config) (backend.Backend, error) {
			return asBackend(rest.Open(ctx, c, nil))
		},
		StripPassword: rest.StripPassword,
	}
}

func s3Scheme(tls tlsSettings) location.Scheme[s3.Config] {
	return location.Scheme[s3.Config]{
		Name: "s3",
		Parse: func(s string) (s3.Config, error) {
			cfg, err := s3.ParseConfig(s)
			if err != nil {
				return cfg, err
			}
			cfg.ApplyEnvironment()
			cfg.RootCAFiles, cfg.ClientCertFile = tls.CACerts, tls.ClientCert
			return cfg, nil
		},
		SetOption: func(c *s3.Config, key, value string) error { return c.SetOption(key, value) },
		Open: func(ctx context.Context, c s3.Config) (backend.Backend, error) {
			return asBackend(s3.Open(ctx, c, nil))
		},
	}
}

// asBackend converts a backend constructor's result to the interface
// without turning a nil pointer into a non-nil interface.
func asBackend[B backend.Backend](b B, err error) (backend.Backend, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}
