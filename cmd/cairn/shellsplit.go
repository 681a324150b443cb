package main

import (
	"errors"
	"unicode"
)

// splitCommand splits a --password-command string into arguments the way
// restic does, so that a command line written for restic works unchanged:
// fields are separated by white space, single or double quotes group text
// (a quote also ends the field before it), and a backslash outside quotes
// separates fields too. The command then runs without a shell.
func splitCommand(s string) ([]string, error) {
	var (
		fields []string
		start  = -1 // byte offset of the current field, -1 between fields
		quote  rune
		prev   rune
	)
	for i, r := range s {
		var sep bool
		switch {
		case prev != '\\' && quote != 0 && r == quote:
			quote, sep = 0, true // closing quote
		case prev != '\\' && quote == 0 && (r == '"' || r == '\''):
			quote, sep = r, true // opening quote
		default:
			// Quote characters themselves do not count as the previous
			// character: only text can escape the next quote.
			prev = r
			sep = quote == 0 && (r == '\\' || unicode.IsSpace(r))
		}
		if sep {
			if start >= 0 {
				fields = append(fields, s[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		fields = append(fields, s[start:])
	}
	switch quote {
	case '\'':
		return nil, errors.New("single-quoted string not terminated")
	case '"':
		return nil, errors.New("double-quoted string not terminated")
	}
	if len(fields) == 0 {
		return nil, errors.New("command string is empty")
	}
	return fields, nil
}
