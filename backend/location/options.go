package location

import (
	"fmt"
	"sort"
	"strings"
)

// Options are backend options in restic's "-o key=value" form, keyed by
// "scheme.name" in lower case ("sftp.connections", "s3.bucket-lookup").
// The zero value holds no options.
type Options map[string]string

// ParseOptions parses "key=value" strings like restic: the key is trimmed
// and lower-cased, the value trimmed; a missing "=" gives an empty value.
// An empty key, or the same key given twice with different values, is an
// error.
func ParseOptions(kv []string) (Options, error) {
	opts := make(Options, len(kv))
	for _, s := range kv {
		key, value, _ := strings.Cut(s, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		value = strings.TrimSpace(value)
		if key == "" {
			return nil, fmt.Errorf("option %q: empty key is not a valid option", s)
		}
		if old, ok := opts[key]; ok && old != value {
			return nil, fmt.Errorf("option %q given more than once with different values", key)
		}
		opts[key] = value
	}
	return opts, nil
}

// namespace returns the part of key before the first dot ("" if none).
func namespace(key string) string {
	ns, _, ok := strings.Cut(key, ".")
	if !ok {
		return ""
	}
	return ns
}

// sortedKeys returns the keys in order, so that errors are deterministic.
func (o Options) sortedKeys() []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
