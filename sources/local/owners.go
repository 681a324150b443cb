package local

import (
	"os/user"
	"strconv"
	"sync"
)

// owners caches user and group names by ID for one source: looking a name
// up reads /etc/passwd or asks NSS, far too slow to do per entry. Unknown
// IDs are cached as "" like restic does.
type owners struct {
	mu     sync.RWMutex
	users  map[uint32]string
	groups map[uint32]string
}

func newOwners() *owners {
	return &owners{users: map[uint32]string{}, groups: map[uint32]string{}}
}

func (o *owners) user(uid uint32) string {
	o.mu.RLock()
	name, ok := o.users[uid]
	o.mu.RUnlock()
	if ok {
		return name
	}
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		name = u.Username
	}
	o.mu.Lock()
	o.users[uid] = name
	o.mu.Unlock()
	return name
}

func (o *owners) group(gid uint32) string {
	o.mu.RLock()
	name, ok := o.groups[gid]
	o.mu.RUnlock()
	if ok {
		return name
	}
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		name = g.Name
	}
	o.mu.Lock()
	o.groups[gid] = name
	o.mu.Unlock()
	return name
}

// ownerCache remembers the last lookup: entries of one directory usually
// share their owner, so most entries need no lock at all.
type ownerCache struct {
	valid       bool
	uid, gid    uint32
	user, group string
}

func (c *ownerCache) names(o *owners, uid, gid uint32) (string, string) {
	if !c.valid || c.uid != uid {
		c.uid, c.user = uid, o.user(uid)
	}
	if !c.valid || c.gid != gid {
		c.gid, c.group = gid, o.group(gid)
	}
	c.valid = true
	return c.user, c.group
}
