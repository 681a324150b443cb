package location

import (
	"net/url"
	"strings"
)

// redacted replaces a password wherever a location is shown.
const redacted = "***"

// StripURLPassword returns s with the password of every URL user info
// ("scheme://user:password@host") replaced by "***". It works on text that
// is not a valid URL too, so it is safe for anything a user typed. Schemes
// without a StripPassword of their own, and the CLI's last line of defence,
// use it.
func StripURLPassword(s string) string {
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		b.WriteString(rest[:i+3])
		rest = rest[i+3:]
		user, pw, tail, ok := splitUserinfo(rest)
		if !ok {
			continue
		}
		b.WriteString(user)
		if pw != "" {
			b.WriteString(":" + redacted)
		}
		b.WriteString("@")
		rest = tail
	}
}

// urlPasswords returns the passwords of every URL user info in s, so that
// they can be cut out of error messages that quote the location.
func urlPasswords(s string) []string {
	var out []string
	rest := s
	for {
		i := strings.Index(rest, "://")
		if i < 0 {
			return out
		}
		rest = rest[i+3:]
		_, pw, tail, ok := splitUserinfo(rest)
		if ok && pw != "" {
			out = append(out, pw)
			// Parsed URLs carry the decoded form; hide that too.
			if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
				out = append(out, dec)
			}
			rest = tail
		}
	}
}

// splitUserinfo splits "user:pw@host/path" (the text after "://") into the
// user, the password (without its colon) and what follows the "@". ok is
// false when the authority holds no user info. The authority ends at the
// first "/" after the last "@" that precedes any "/", "?" or "#", which is
// how a password containing "/" still ends at the right "@".
func splitUserinfo(s string) (user, pw, tail string, ok bool) {
	// User info never spans white space, a query or a fragment.
	end := len(s)
	if j := strings.IndexAny(s, "?# \t\n"); j >= 0 {
		end = j
	}
	at := strings.LastIndex(s[:end], "@")
	if at < 0 {
		return "", "", "", false
	}
	// An "@" that only appears inside the path (after the first "/" that
	// follows it) is not user info: "host/dir@x" has none.
	if slash := strings.IndexByte(s[:end], '/'); slash >= 0 && slash < at {
		// A password may contain "/"; only accept the "@" if no "/"
		// appears before a ":" that starts the password.
		colon := strings.IndexByte(s[:end], ':')
		if colon < 0 || colon > slash {
			return "", "", "", false
		}
	}
	info := s[:at]
	user, pw, _ = strings.Cut(info, ":")
	return user, pw, s[at+1:], true
}

// Passwords returns the passwords in the URL user infos of s (a location
// as the user wrote it), so that a program can scrub them from any text it
// prints, including messages of libraries that quote a location verbatim.
func Passwords(s string) []string { return urlPasswords(s) }

// secretsOf returns the strings of location s that must never be shown.
func secretsOf(s string) []string { return urlPasswords(s) }

// scrub replaces each secret in msg by "***".
func scrub(msg string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			msg = strings.ReplaceAll(msg, sec, redacted)
		}
	}
	return msg
}

// scrubbedError hides secrets in the message of an error that quotes a
// location, while keeping the error chain for errors.Is and errors.As.
type scrubbedError struct {
	err     error
	secrets []string
}

func (e *scrubbedError) Error() string { return scrub(e.err.Error(), e.secrets) }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubError wraps err so that its message shows none of the secrets of
// location s; it returns err unchanged when s holds none.
func scrubError(err error, s string) error {
	if err == nil {
		return nil
	}
	secrets := secretsOf(s)
	if len(secrets) == 0 {
		return err
	}
	return &scrubbedError{err: err, secrets: secrets}
}
