package tree

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// appendString writes s as a JSON string exactly like encoding/json with its
// default HTML escaping: <, > and & become \u003c \u003e \u0026, control
// characters use \b \f \n \r \t (Go 1.22 and later) or \u00XX, U+2028 and
// U+2029 are escaped, and each byte of invalid UTF-8 becomes \ufffd.
func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if htmlSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// htmlSafe marks the ASCII bytes encoding/json writes unescaped when HTML
// escaping is on.
var htmlSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

// appendCachedTime is appendTime that reuses the previous result when t is
// the very same value (same wall clock, monotonic reading and Location), which
// makes the usual atime = mtime cost a copy.
func (b *Builder) appendCachedTime(dst []byte, t time.Time) ([]byte, error) {
	if b.lastTimeEnc != nil && t == b.lastTime {
		return append(dst, b.lastTimeEnc...), nil
	}
	mark := len(dst)
	dst, err := appendTime(dst, t)
	if err != nil {
		return dst, err
	}
	b.lastTime = t
	b.lastTimeEnc = append(b.lastTimeEnc[:0], dst[mark:]...)
	return dst, nil
}

// appendTime writes t as restic does: years outside 0..9999 are first moved
// into range (restic's FixTime), then time.Time.MarshalJSON's RFC 3339 form
// with trimmed nanoseconds is written, in t's own Location. Like MarshalJSON it
// fails for a zone offset of 24 hours or more, and for a year the clamping
// could not fix.
func appendTime(dst []byte, t time.Time) ([]byte, error) {
	mark := len(dst)
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	if !yearInRange(dst[mark+1:]) {
		// Rare: only now pay for Year() and the clamping.
		t = clampYear(t)
		dst = append(dst[:mark], '"')
		dst = t.AppendFormat(dst, time.RFC3339Nano)
		if !yearInRange(dst[mark+1:]) {
			return dst[:mark], errors.New("time year outside of range [0,9999] after clamping")
		}
	}
	if f := dst[mark+1:]; f[len(f)-1] != 'Z' {
		// The offset is written as ±HH:MM; a third hour digit or HH ≥ 24 is
		// not RFC 3339, and MarshalJSON refuses it.
		c := f[len(f)-len("Z07:00")]
		h := f[len(f)-len("07:00"):]
		if ('0' <= c && c <= '9') || (h[0]-'0')*10+(h[1]-'0') >= 24 {
			return dst[:mark], fmt.Errorf("time zone offset of %s outside of range [0,23] hours", t.Format("-07:00"))
		}
	}
	return append(dst, '"'), nil
}

// yearInRange reports whether a formatted time starts with a four-digit year,
// the check time.Time.MarshalJSON applies.
func yearInRange(f []byte) bool { return len(f) > 4 && f[4] == '-' }

// clampYear is restic's FixTime: a year before 0 becomes 0 and a year after
// 9999 becomes 9999, by adding whole years in t's Location.
func clampYear(t time.Time) time.Time {
	switch y := t.Year(); {
	case y < 0:
		return t.AddDate(-y, 0, 0)
	case y > 9999:
		return t.AddDate(-(y - 9999), 0, 0)
	}
	return t
}

// appendGenericAttributes writes the generic_attributes object as
// encoding/json writes a map[string]json.RawMessage: keys in Go string order,
// each value compacted and HTML-escaped, nil values as null.
func appendGenericAttributes(dst []byte, m map[string]json.RawMessage) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, `,"generic_attributes":{`...)
	var compact bytes.Buffer
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		v := m[k]
		if v == nil {
			dst = append(dst, "null"...)
			continue
		}
		compact.Reset()
		if err := json.Compact(&compact, v); err != nil {
			return dst, fmt.Errorf("generic attribute %q: %w", k, err)
		}
		escaped := bytes.NewBuffer(dst)
		json.HTMLEscape(escaped, compact.Bytes())
		dst = escaped.Bytes()
	}
	return append(dst, '}'), nil
}
