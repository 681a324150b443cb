package dump

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// Tags of the entries of a Linux ACL xattr (linux/posix_acl_xattr.h).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// FormatLinuxACL renders the value of a system.posix_acl_access or
// system.posix_acl_default xattr (version 2: a 4-byte header, then 8-byte
// entries of tag, permissions and id, little endian) in the long text form
// of acl(5), one "tag:qualifier:rwx" line per entry. Ids stay numeric: the
// archive may be unpacked on a machine with other user names.
func FormatLinuxACL(value []byte) (string, error) {
	if len(value) < 4 || (len(value)-4)%8 != 0 {
		return "", errors.New("wrong length")
	}
	if binary.LittleEndian.Uint32(value) != 2 {
		return "", errors.New("unsupported ACL format version")
	}
	var out []byte
	for e := value[4:]; len(e) >= 8; e = e[8:] {
		tag := binary.LittleEndian.Uint16(e)
		perm := binary.LittleEndian.Uint16(e[2:])
		id := binary.LittleEndian.Uint32(e[4:])
		switch tag {
		case aclUserObj:
			out = append(out, "user:"...)
		case aclUser:
			out = strconv.AppendUint(append(out, "user:"...), uint64(id), 10)
		case aclGroupObj:
			out = append(out, "group:"...)
		case aclGroup:
			out = strconv.AppendUint(append(out, "group:"...), uint64(id), 10)
		case aclMask:
			out = append(out, "mask:"...)
		case aclOther:
			out = append(out, "other:"...)
		default:
			return "", errors.New("unknown tag")
		}
		out = append(out, ':')
		for i, c := range "rwx" {
			if perm&(4>>i) != 0 {
				out = append(out, byte(c))
			} else {
				out = append(out, '-')
			}
		}
		out = append(out, '\n')
	}
	return string(out), nil
}
