package youtube

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// A session handle is what StartSession returns and PutChunk, Offset and
// Cancel take: the resumable session URI sealed with AES-256-GCM under a key
// derived (HKDF-SHA256) from the OAuth2 client secret. The URI is a
// capability for the upload, and the service must keep it where every
// instance can read it (the progress table) to resume after a crash; sealed,
// the table holds no secret. A handle that does not open (say, the client
// secret was rotated) is ErrSessionGone: the upload starts a new session,
// from byte 0, as for an expired one.
const handlePrefix = "yts1."

func newSealer(clientSecret string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(clientSecret), nil, "atom-uploads youtube session handle", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal turns a session URI into a handle.
func (c *Client) seal(uri string) (string, error) {
	nonce := make([]byte, c.sealer.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal session: %w", err)
	}
	sealed := c.sealer.Seal(nonce, nonce, []byte(uri), []byte(handlePrefix))
	return handlePrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// errBadHandle is why a handle did not open; callers see ErrSessionGone.
var errBadHandle = errors.New("the session handle does not open with this client secret")

// open turns a handle back into the session URI.
func (c *Client) open(handle string) (string, error) {
	raw, ok := strings.CutPrefix(handle, handlePrefix)
	if !ok {
		return "", fmt.Errorf("%w: %w", ErrSessionGone, errBadHandle)
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	n := c.sealer.NonceSize()
	if err != nil || len(b) < n {
		return "", fmt.Errorf("%w: %w", ErrSessionGone, errBadHandle)
	}
	uri, err := c.sealer.Open(nil, b[:n], b[n:], []byte(handlePrefix))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrSessionGone, errBadHandle)
	}
	return string(uri), nil
}
