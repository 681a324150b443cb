package sftp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/pkg/sftp"
)

// maxOwnerTable bounds what is read of a remote /etc/passwd or /etc/group.
const maxOwnerTable = 16 << 20

// ownerTable names owners from the remote /etc/passwd and /etc/group, for
// servers without the users-groups-by-id extension (OpenSSH before 9.1).
// It knows the accounts listed there, not those only a directory service
// (LDAP, SSSD) provides; those stay numeric.
type ownerTable struct {
	users, groups map[uint32]string
}

func readOwnerTables(c *sftp.Client) (*ownerTable, error) {
	users, err := readIDFile(c, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	groups, err := readIDFile(c, "/etc/group")
	if err != nil {
		return nil, err
	}
	return &ownerTable{users: users, groups: groups}, nil
}

// readIDFile maps the third field (the ID) of each line of a passwd or
// group file to the first (the name). The first line for an ID wins, as
// with getpwuid; lines that do not parse are skipped.
func readIDFile(c *sftp.Client, name string) (map[uint32]string, error) {
	f, err := c.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxOwnerTable+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxOwnerTable {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, maxOwnerTable)
	}
	ids := map[uint32]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxOwnerTable)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue // comments and NIS compat entries
		}
		fields := strings.SplitN(line, ":", 4)
		if len(fields) < 4 || fields[0] == "" {
			continue
		}
		id, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			continue
		}
		if _, ok := ids[uint32(id)]; !ok {
			ids[uint32(id)] = fields[0]
		}
	}
	return ids, nil
}

func (t *ownerTable) names(uid, gid uint32) (string, string) { return t.users[uid], t.groups[gid] }

func (t *ownerTable) close() error { return nil }
