package sshx

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// badLineRE extracts file and line from knownhosts parse errors
// ("knownhosts: <file>:<line>: <reason>").
var badLineRE = regexp.MustCompile(`^knownhosts: (.*):(\d+): `)

// loadKnownHosts builds the knownhosts callback for the existing files
// among files. OpenSSH skips known_hosts lines it cannot parse (a key
// type x/crypto does not know, a typo), while knownhosts.New rejects the
// whole file; so a file that fails to parse is copied to a temporary file
// with the offending lines blanked (line numbers kept) until it parses, and
// each skipped line is reported through warn.
func loadKnownHosts(files []string, warn func(string, ...any)) (ssh.HostKeyCallback, map[string]string, error) {
	var use []string
	tempMap := map[string]string{}
	defer func() {
		for tmp := range tempMap {
			_ = os.Remove(tmp)
		}
	}()
	for _, f := range files {
		if !fileExists(f) {
			continue
		}
		if _, err := knownhosts.New(f); err == nil {
			use = append(use, f)
			continue
		}
		tmp, err := sanitizeKnownHosts(f, warn)
		if tmp != "" {
			tempMap[tmp] = f
		}
		if err != nil {
			return nil, nil, err
		}
		use = append(use, tmp)
	}
	if len(use) == 0 {
		return nil, nil, nil
	}
	db, err := knownhosts.New(use...)
	if err != nil {
		return nil, nil, fmt.Errorf("read known_hosts: %w", err)
	}
	// The temporary copies were read; the map keeps their names for
	// error messages after the deferred removal.
	names := make(map[string]string, len(tempMap))
	for k, v := range tempMap {
		names[k] = v
	}
	return db, names, nil
}

func sanitizeKnownHosts(file string, warn func(string, ...any)) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read known_hosts %s: %w", file, err)
	}
	lines := strings.Split(string(data), "\n")
	tmp, err := os.CreateTemp("", "cairn-known-hosts-*")
	if err != nil {
		return "", fmt.Errorf("known_hosts %s has lines x/crypto cannot parse, and no temporary copy could be made: %w", file, err)
	}
	name := tmp.Name()
	tmp.Close()
	for range len(lines) + 1 {
		if err := os.WriteFile(name, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			return name, fmt.Errorf("copy known_hosts %s: %w", file, err)
		}
		_, err := knownhosts.New(name)
		if err == nil {
			return name, nil
		}
		m := badLineRE.FindStringSubmatch(err.Error())
		if m == nil || m[1] != name {
			return name, fmt.Errorf("read known_hosts %s: %w", file, err)
		}
		n, _ := strconv.Atoi(m[2])
		if n < 1 || n > len(lines) || lines[n-1] == "" {
			return name, fmt.Errorf("read known_hosts %s: %w", file, err)
		}
		warn("ignoring %s:%d, which cannot be parsed: %s", file, n, strings.TrimPrefix(err.Error(), m[0]))
		lines[n-1] = ""
	}
	return name, fmt.Errorf("read known_hosts %s: too many unparsable lines", file)
}
