package upload

import (
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// KeyPrefix is the prefix of every key of the S3 key layout:
//
//	uploads/<atomId>/<uploadId>/parts/<n>   part n, put by the browser
//	uploads/<atomId>/<uploadId>/full        the reassembled original
const KeyPrefix = "uploads/"

var (
	atomIDPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)
	uploadIDPattern = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
)

// ValidAtomID reports whether s is an acceptable atom id: 1–100 letters,
// digits, '-' or '_', not starting with '-' or '_' (media atom ids are UUIDs).
func ValidAtomID(s string) bool { return atomIDPattern.MatchString(s) }

// ValidUploadID reports whether s has the form of an upload id (a ULID).
func ValidUploadID(s string) bool { return uploadIDPattern.MatchString(s) }

// NewID returns a new upload id: a ULID, so ids sort by creation time. The
// entropy reader must be safe for the caller's concurrency.
func NewID(now time.Time, entropy io.Reader) (string, error) {
	id, err := ulid.New(ulid.Timestamp(now), entropy)
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// Prefix is the S3 prefix of everything of one upload.
func Prefix(atomID, uploadID string) string {
	return KeyPrefix + atomID + "/" + uploadID + "/"
}

// PartsPrefix is the S3 prefix under which the browser may write parts.
func PartsPrefix(atomID, uploadID string) string {
	return Prefix(atomID, uploadID) + "parts/"
}

// PartKey is the S3 key of part n.
func PartKey(atomID, uploadID string, n int) string {
	return PartsPrefix(atomID, uploadID) + strconv.Itoa(n)
}

// FullKey is the S3 key of the reassembled file.
func FullKey(atomID, uploadID string) string {
	return Prefix(atomID, uploadID) + "full"
}

// PartKey is the S3 key of part n of this upload.
func (u *Upload) PartKey(n int) string { return PartKey(u.AtomID, u.ID, n) }

// FullKey is the S3 key of this upload's reassembled file.
func (u *Upload) FullKey() string { return FullKey(u.AtomID, u.ID) }

// KeyKind says which object of an upload a key names.
type KeyKind int

// Kinds of keys.
const (
	KeyPart KeyKind = iota + 1
	KeyFull
)

// Key is a parsed S3 key of an upload.
type Key struct {
	AtomID   string
	UploadID string
	Kind     KeyKind
	Part     int // for KeyPart
}

// ParseKey parses an (already URL-decoded) S3 key of the layout above. Any
// other key is an EINVALID error that says why.
func ParseKey(key string) (Key, error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok {
		return Key{}, Errorf(EINVALID, "key %q is outside %s", key, KeyPrefix)
	}
	f := strings.Split(rest, "/")
	if len(f) < 3 || !ValidAtomID(f[0]) || !ValidUploadID(f[1]) {
		return Key{}, Errorf(EINVALID, "key %q is not uploads/<atomId>/<uploadId>/…", key)
	}
	k := Key{AtomID: f[0], UploadID: f[1]}
	switch {
	case len(f) == 3 && f[2] == "full":
		k.Kind = KeyFull
		return k, nil
	case len(f) == 4 && f[2] == "parts":
		n, err := strconv.Atoi(f[3])
		if err != nil || n < 0 || strconv.Itoa(n) != f[3] {
			return Key{}, Errorf(EINVALID, "key %q has part %q, not a part number", key, f[3])
		}
		k.Kind = KeyPart
		k.Part = n
		return k, nil
	}
	return Key{}, Errorf(EINVALID, "key %q is neither a part nor the full file of an upload", key)
}
