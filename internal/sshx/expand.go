package sshx

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// expandHostName expands the tokens HostName allows: %h (the host as
// given) and %%.
func expandHostName(v, host string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+1 < len(v) {
			switch v[i+1] {
			case 'h':
				b.WriteString(host)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// tokens are the values for expandPath's %-tokens.
type tokens struct {
	home         string // %d
	host         string // %h: the host name after HostName
	originalHost string // %n
	port         string // %p
	remoteUser   string // %r
	localUser    string // %u
	uid          string // %i
	keyAlias     string // %k: HostKeyAlias, or the host as given
	localHost    string // %L (short) and %l (full)
}

// expandPath expands a leading "~" or "~/" to the home directory, the
// %-tokens %% %d %h %i %k %L %l %n %p %r %u, and ${VAR} environment
// references, as OpenSSH does for IdentityFile, UserKnownHostsFile,
// IdentityAgent and similar paths. Unknown tokens are an error rather than
// a silently wrong path.
func expandPath(v string, tk tokens) (string, error) {
	v = expandTilde(v, tk.home)
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '%':
			if i+1 >= len(v) {
				return "", fmt.Errorf("%q ends with a lone %%", v)
			}
			i++
			switch v[i] {
			case '%':
				b.WriteByte('%')
			case 'd':
				b.WriteString(tk.home)
			case 'h':
				b.WriteString(tk.host)
			case 'i':
				b.WriteString(tk.uid)
			case 'k':
				b.WriteString(tk.keyAlias)
			case 'L':
				short, _, _ := strings.Cut(tk.localHost, ".")
				b.WriteString(short)
			case 'l':
				b.WriteString(tk.localHost)
			case 'n':
				b.WriteString(tk.originalHost)
			case 'p':
				b.WriteString(tk.port)
			case 'r':
				b.WriteString(tk.remoteUser)
			case 'u':
				b.WriteString(tk.localUser)
			default:
				return "", fmt.Errorf("%q uses the token %%%c, which cairn does not support (supported: %%%% %%d %%h %%i %%k %%L %%l %%n %%p %%r %%u)", v, v[i])
			}
		case c == '$' && i+1 < len(v) && v[i+1] == '{':
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("%q has an unterminated ${", v)
			}
			name := v[i+2 : i+end]
			val, ok := os.LookupEnv(name)
			if !ok {
				return "", fmt.Errorf("%q refers to the unset environment variable %s", v, name)
			}
			b.WriteString(val)
			i += end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// expandTilde replaces a leading "~" or "~/" with home. "~user" forms are
// left alone (and will then name a file that does not exist).
func expandTilde(p, home string) string {
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}
