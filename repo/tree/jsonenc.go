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
	if out, ok, err := appendTimeFast(dst, t); ok {
		return out, err
	}
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

// Unix seconds of 0000-01-01T00:00:00 and 10000-01-01T00:00:00 (UTC wall
// clock), the range of times written with a four-digit year.
const (
	unixYear0     = -62167219200
	unixYear10000 = 253402300800
)

// appendTimeFast writes t like time.Time.MarshalJSON at about a third of the
// cost of time's formatting: the zone is looked up once and the civil date
// computed directly from the local Unix day. It handles every
// time whose year in its zone is 0..9999 (ok = true, err set for an offset
// of 24 hours or more) and leaves the rest (ok = false) to the caller. The
// tests compare it with time.Time.AppendFormat.
func appendTimeFast(dst []byte, t time.Time) (out []byte, ok bool, err error) {
	_, off := t.Zone()
	sec := t.Unix()
	if off < -1<<31 || off > 1<<31 || sec < unixYear0-1<<31 || sec > unixYear10000+1<<31 {
		return dst, false, nil
	}
	local := sec + int64(off)
	if local < unixYear0 || local >= unixYear10000 {
		return dst, false, nil
	}
	zone := off / 60 // Go truncates: an offset of -30s is written +00:00
	neg := zone < 0
	if neg {
		zone = -zone
	}
	if off != 0 && zone/60 >= 24 {
		return dst, true, fmt.Errorf("time zone offset of %s outside of range [0,23] hours", t.Format("-07:00"))
	}

	// Civil date from days since 1970-01-01 (Howard Hinnant's
	// days_from_civil inverse, for the proleptic Gregorian calendar).
	days := local / 86400
	rem := local % 86400
	if rem < 0 {
		days--
		rem += 86400
	}
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := uint32(z - era*146097) // day of the 400-year era, 32 bits are faster
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if mp >= 10 {
		month = mp - 9
	}
	year := int64(yoe) + era*400
	if month <= 2 {
		year++
	}

	dst = append(dst, '"')
	dst = append4(dst, int(year))
	dst = append(dst, '-')
	dst = append2(dst, int(month))
	dst = append(dst, '-')
	dst = append2(dst, int(day))
	dst = append(dst, 'T')
	secOfDay := uint32(rem)
	dst = append2(dst, int(secOfDay/3600))
	dst = append(dst, ':')
	dst = append2(dst, int(secOfDay/60%60))
	dst = append(dst, ':')
	dst = append2(dst, int(secOfDay%60))
	if ns := uint32(t.Nanosecond()); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 9; i >= 1; i-- {
			frac[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		dst = append(dst, frac[:n]...)
	}
	switch {
	case off == 0:
		dst = append(dst, 'Z')
	default:
		sign := byte('+')
		if neg {
			sign = '-'
		}
		dst = append(dst, sign)
		dst = append2(dst, zone/60)
		dst = append(dst, ':')
		dst = append2(dst, zone%60)
	}
	return append(dst, '"'), true, nil
}

func append2(dst []byte, v int) []byte {
	u := uint32(v)
	return append(dst, byte('0'+u/10), byte('0'+u%10))
}

func append4(dst []byte, v int) []byte {
	u := uint32(v)
	return append(dst, byte('0'+u/1000), byte('0'+u/100%10), byte('0'+u/10%10), byte('0'+u%10))
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
