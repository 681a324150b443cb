package tree

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// The JSON scanning primitives of the fast decoder. Each either consumes a
// complete token it fully understands or reports false, leaving the input to
// the encoding/json reference.

// uint parses a JSON number that is a plain non-negative integer no larger
// than limit; anything else (sign, fraction, exponent, leading zero,
// overflow) is left to the reference path, which reports or accepts it.
func (d *decoder) uint(limit uint64) (uint64, bool) {
	b := d.buf[d.pos:]
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return 0, false
	}
	if b[0] == '0' {
		d.pos++
		return 0, !d.numberGoesOn()
	}
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		c := uint64(b[i] - '0')
		if v > (limit-c)/10 {
			return 0, false
		}
		v = v*10 + c
	}
	d.pos += i
	return v, !d.numberGoesOn()
}

func (d *decoder) numberGoesOn() bool {
	if d.pos >= len(d.buf) {
		return false
	}
	switch d.buf[d.pos] {
	case '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

// rawValue returns a copy of the JSON value at the current position. It finds
// the value's end by bracket depth and string quoting only, and leaves the
// validation to json.Valid.
func (d *decoder) rawValue() (json.RawMessage, bool) {
	b := d.buf[d.pos:]
	depth, end := 0, -1
	for i := 0; i < len(b) && end < 0; i++ {
		switch c := b[i]; c {
		case '"':
			i++
			for i < len(b) && b[i] != '"' {
				if b[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(b) {
				return nil, false
			}
			if depth == 0 {
				end = i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				end = i // the end of the enclosing object: a scalar ended
			} else if depth == 0 {
				end = i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				end = i
			}
		}
	}
	if end <= 0 || !json.Valid(b[:end]) {
		return nil, false
	}
	d.pos += end
	return bytes.Clone(b[:end]), true
}

// key reads an object key written without escapes and the colon after it.
func (d *decoder) key() ([]byte, bool) {
	start := d.pos
	if !d.skipPlainStr() {
		return nil, false
	}
	k := d.buf[start+1 : d.pos-1]
	d.ws()
	if d.peek() != ':' {
		return nil, false
	}
	d.pos++
	return k, true
}

// skipPlainStr moves past a JSON string made only of printable ASCII without
// backslashes: the form of times, IDs, base64 and keys.
func (d *decoder) skipPlainStr() bool {
	b := d.buf[d.pos:]
	if len(b) == 0 || b[0] != '"' {
		return false
	}
	i := 1
	for i < len(b) && plainStr[b[i]] {
		i++
	}
	if i == len(b) || b[i] != '"' {
		return false
	}
	d.pos += i + 1
	return true
}

// plainStr marks the bytes skipPlainStr passes over: printable ASCII except
// the quote and the backslash.
var plainStr = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str decodes a JSON string value. The result aliases buf or d.scratch and is
// valid until the next call.
func (d *decoder) str() ([]byte, bool) {
	b := d.buf[d.pos:]
	if len(b) == 0 || b[0] != '"' {
		return nil, false
	}
	ascii := true
	for i := 1; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			s := b[1:i]
			if !ascii && !utf8.Valid(s) {
				return nil, false // encoding/json would substitute U+FFFD
			}
			d.pos += i + 1
			return s, true
		case c == '\\':
			return d.strEscaped()
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// strEscaped decodes a string with escapes into d.scratch. Surrogate escapes
// and invalid UTF-8 make it give up (encoding/json replaces them).
func (d *decoder) strEscaped() ([]byte, bool) {
	b := d.buf[d.pos+1:]
	out := d.scratch[:0]
	segStart := 0
	flush := func(i int) bool {
		seg := b[segStart:i]
		out = append(out, seg...)
		return utf8.Valid(seg)
	}
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '"':
			if !flush(i) {
				return nil, false
			}
			d.pos += 1 + i + 1
			d.scratch = out
			return out, true
		case c < 0x20:
			return nil, false
		case c != '\\':
			i++
			continue
		}
		if !flush(i) || i+1 >= len(b) {
			return nil, false
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
			i += 2
		case 'b':
			out = append(out, '\b')
			i += 2
		case 'f':
			out = append(out, '\f')
			i += 2
		case 'n':
			out = append(out, '\n')
			i += 2
		case 'r':
			out = append(out, '\r')
			i += 2
		case 't':
			out = append(out, '\t')
			i += 2
		case 'u':
			if i+6 > len(b) {
				return nil, false
			}
			r, ok := hex4(b[i+2 : i+6])
			if !ok || (r >= 0xd800 && r < 0xe000) {
				return nil, false
			}
			out = utf8.AppendRune(out, r)
			i += 6
		default:
			return nil, false
		}
		segStart = i
	}
	return nil, false
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// lit skips white space and then expects the literal s.
func (d *decoder) lit(s string) bool {
	d.ws()
	if !bytes.HasPrefix(d.buf[d.pos:], []byte(s)) {
		return false
	}
	d.pos += len(s)
	return true
}

// null consumes a null literal if one is next.
func (d *decoder) null() bool {
	if d.peek() == 'n' && bytes.HasPrefix(d.buf[d.pos:], []byte("null")) {
		d.pos += 4
		return true
	}
	return false
}

func (d *decoder) peek() byte {
	if d.pos < len(d.buf) {
		return d.buf[d.pos]
	}
	return 0
}

func (d *decoder) ws() {
	if d.pos < len(d.buf) && d.buf[d.pos] > ' ' {
		return // the usual case: restic writes no white space
	}
	d.wsSlow()
}

func (d *decoder) wsSlow() {
	for d.pos < len(d.buf) {
		switch d.buf[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}
