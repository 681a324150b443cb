package sftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// extUsersGroups is OpenSSH's SFTP extension (sftp-server 9.1 and later)
// that maps user and group IDs to names on the server, with the server's
// own getpwuid/getgrgid (NSS included), which is what restic running on
// that host would record. pkg/sftp drops the "ls -l" long names that
// would carry the same information, and has no call for arbitrary
// extensions, so this file speaks just enough SFTP for that one request on
// a second channel of the same SSH connection.
const extUsersGroups = "users-groups-by-id@openssh.com"

// SFTP version 3 packet types used here (draft-ietf-secsh-filexfer-02).
const (
	fxpInit          = 1
	fxpVersion       = 2
	fxpStatus        = 101
	fxpExtended      = 200
	fxpExtendedReply = 201
)

// maxOwnerReply bounds a reply packet: names for the few IDs of one
// request never come near it, and a bogus length must not allocate.
const maxOwnerReply = 1 << 20

// ownerNamer names owners for one source; unknown IDs get "", like
// restic gives them locally.
type ownerNamer interface {
	names(uid, gid uint32) (user, group string)
	close() error
}

// owners asks the server through the extension and caches the answers
// by ID.
type owners struct {
	mu     sync.Mutex // serialises requests on the channel and guards the maps
	sess   *ssh.Session
	w      io.WriteCloser
	r      io.Reader
	id     uint32
	users  map[uint32]string
	groups map[uint32]string
	broken error // set once the channel failed; names are "" from then on
}

// newOwners opens the extension channel and exchanges SFTP versions.
func newOwners(conn *ssh.Client) (*owners, error) {
	sess, err := conn.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open a channel for owner names: %w", err)
	}
	w, err := sess.StdinPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	r, err := sess.StdoutPipe()
	if err != nil {
		sess.Close()
		return nil, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		sess.Close()
		return nil, fmt.Errorf("start the SFTP subsystem for owner names: %w", err)
	}
	o := &owners{sess: sess, w: w, r: r, users: map[uint32]string{}, groups: map[uint32]string{}}
	init := binary.BigEndian.AppendUint32(nil, 5)
	init = append(init, fxpInit)
	init = binary.BigEndian.AppendUint32(init, 3)
	if _, err := w.Write(init); err != nil {
		o.close()
		return nil, fmt.Errorf("SFTP init for owner names: %w", err)
	}
	typ, _, err := o.readPacket()
	if err != nil {
		o.close()
		return nil, fmt.Errorf("SFTP init for owner names: %w", err)
	}
	if typ != fxpVersion {
		o.close()
		return nil, fmt.Errorf("SFTP init for owner names: got packet type %d, want a version", typ)
	}
	return o, nil
}

func (o *owners) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w.Close()
	if err := o.sess.Close(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// names returns the user name of uid and the group name of gid, asking the
// server for those not cached yet.
func (o *owners) names(uid, gid uint32) (user, group string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	user, uok := o.users[uid]
	group, gok := o.groups[gid]
	if uok && gok {
		return user, group
	}
	var uids, gids []uint32
	if !uok {
		uids = []uint32{uid}
	}
	if !gok {
		gids = []uint32{gid}
	}
	if o.broken == nil {
		var us, gs []string
		us, gs, o.broken = o.lookup(uids, gids)
		if o.broken == nil {
			for i, id := range uids {
				o.users[id] = us[i]
			}
			for i, id := range gids {
				o.groups[id] = gs[i]
			}
		}
	}
	return o.users[uid], o.groups[gid]
}

// lookup sends one users-groups-by-id request and decodes the reply.
func (o *owners) lookup(uids, gids []uint32) (users, groups []string, err error) {
	o.id++
	encodeIDs := func(ids []uint32) []byte {
		var b []byte
		for _, id := range ids {
			b = binary.BigEndian.AppendUint32(b, id)
		}
		return b
	}
	body := []byte{fxpExtended}
	body = binary.BigEndian.AppendUint32(body, o.id)
	body = appendString(body, []byte(extUsersGroups))
	body = appendString(body, encodeIDs(uids))
	body = appendString(body, encodeIDs(gids))
	pkt := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := o.w.Write(append(pkt, body...)); err != nil {
		return nil, nil, fmt.Errorf("owner names: send: %w", err)
	}
	typ, data, err := o.readPacket()
	if err != nil {
		return nil, nil, fmt.Errorf("owner names: %w", err)
	}
	if len(data) < 4 || binary.BigEndian.Uint32(data) != o.id {
		return nil, nil, errors.New("owner names: reply with the wrong request ID")
	}
	data = data[4:]
	if typ == fxpStatus {
		return nil, nil, errors.New("owner names: the server refused the request")
	}
	if typ != fxpExtendedReply {
		return nil, nil, fmt.Errorf("owner names: unexpected packet type %d", typ)
	}
	us, data, ok := readString(data)
	gs, _, ok2 := readString(data)
	if !ok || !ok2 {
		return nil, nil, errors.New("owner names: truncated reply")
	}
	if users, ok = readNames(us, len(uids)); !ok {
		return nil, nil, errors.New("owner names: malformed user names")
	}
	if groups, ok = readNames(gs, len(gids)); !ok {
		return nil, nil, errors.New("owner names: malformed group names")
	}
	return users, groups, nil
}

// readPacket reads one length-prefixed packet: its type and the rest.
func (o *owners) readPacket() (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(o.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n < 1 || n > maxOwnerReply {
		return 0, nil, fmt.Errorf("packet length %d out of range", n)
	}
	data := make([]byte, n-1)
	if _, err := io.ReadFull(o.r, data); err != nil {
		return 0, nil, err
	}
	return hdr[4], data, nil
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// readString decodes an SFTP string; ok is false when data is too short.
func readString(data []byte) (s, rest []byte, ok bool) {
	if len(data) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-4) {
		return nil, nil, false
	}
	return data[4 : 4+n], data[4+n:], true
}

// readNames decodes exactly n concatenated strings.
func readNames(data []byte, n int) ([]string, bool) {
	out := make([]string, 0, n)
	for range n {
		s, rest, ok := readString(data)
		if !ok {
			return nil, false
		}
		out = append(out, string(s))
		data = rest
	}
	return out, len(data) == 0
}
