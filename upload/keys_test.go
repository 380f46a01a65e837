package upload_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"atomuploads/upload"
)

// testUploadID is a well-formed upload id (a ULID).
const testUploadID = "01JQ8Z5W9K3M7N2P4R6T8V0XYZ"

func TestParseKey(t *testing.T) {
	t.Parallel()
	const atom = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	base := "uploads/" + atom + "/" + testUploadID + "/"
	tests := []struct {
		name    string
		key     string
		want    upload.Key
		wantErr string // substring of the EINVALID message; "" for a valid key
	}{
		{name: "part 0", key: base + "parts/0", want: upload.Key{AtomID: atom, UploadID: testUploadID, Kind: upload.KeyPart, Part: 0}},
		{name: "part 7", key: base + "parts/7", want: upload.Key{AtomID: atom, UploadID: testUploadID, Kind: upload.KeyPart, Part: 7}},
		{name: "part 9999", key: base + "parts/9999", want: upload.Key{AtomID: atom, UploadID: testUploadID, Kind: upload.KeyPart, Part: 9999}},
		{name: "full", key: base + "full", want: upload.Key{AtomID: atom, UploadID: testUploadID, Kind: upload.KeyFull}},
		{name: "short atom id", key: "uploads/a/" + testUploadID + "/full", want: upload.Key{AtomID: "a", UploadID: testUploadID, Kind: upload.KeyFull}},

		{name: "empty", key: "", wantErr: "is outside uploads/"},
		{name: "outside the prefix", key: "other/" + atom + "/" + testUploadID + "/parts/0", wantErr: "is outside uploads/"},
		{name: "prefix without slash", key: "uploads" + atom + "/" + testUploadID + "/full", wantErr: "is outside uploads/"},
		{name: "prefix in another case", key: "Uploads/" + atom + "/" + testUploadID + "/full", wantErr: "is outside uploads/"},
		{name: "prefix only", key: "uploads/", wantErr: "is not uploads/<atomId>/<uploadId>/"},
		{name: "no object", key: "uploads/" + atom + "/" + testUploadID, wantErr: "is not uploads/<atomId>/<uploadId>/"},
		{name: "bad atom id", key: "uploads/-" + atom + "/" + testUploadID + "/full", wantErr: "is not uploads/<atomId>/<uploadId>/"},
		{name: "atom id with a dot", key: "uploads/a.b/" + testUploadID + "/full", wantErr: "is not uploads/<atomId>/<uploadId>/"},
		{name: "empty atom id", key: "uploads//" + testUploadID + "/full", wantErr: "is not uploads/<atomId>/<uploadId>/"},
		{name: "bad upload id", key: "uploads/" + atom + "/not-a-ulid/full", wantErr: "is not uploads/<atomId>/<uploadId>/"},
		{name: "lower-case upload id", key: "uploads/" + atom + "/" + strings.ToLower(testUploadID) + "/full", wantErr: "is not uploads/<atomId>/<uploadId>/"},
		{name: "part 01", key: base + "parts/01", wantErr: `has part "01", not a part number`},
		{name: "part -1", key: base + "parts/-1", wantErr: `has part "-1", not a part number`},
		{name: "part +1", key: base + "parts/+1", wantErr: `has part "+1", not a part number`},
		{name: "part x", key: base + "parts/x", wantErr: `has part "x", not a part number`},
		{name: "part overflowing int", key: base + "parts/99999999999999999999", wantErr: `has part "99999999999999999999", not a part number`},
		{name: "part missing", key: base + "parts/", wantErr: `has part "", not a part number`},
		{name: "parts without number", key: base + "parts", wantErr: "is neither a part nor the full file"},
		{name: "extra segment after part", key: base + "parts/0/x", wantErr: "is neither a part nor the full file"},
		{name: "trailing slash after full", key: base + "full/", wantErr: "is neither a part nor the full file"},
		{name: "full/x", key: base + "full/x", wantErr: "is neither a part nor the full file"},
		{name: "unknown object", key: base + "manifest", wantErr: "is neither a part nor the full file"},
		{name: "directory marker", key: base, wantErr: "is neither a part nor the full file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := upload.ParseKey(tt.key)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseKey(%q) error = %v, want nil", tt.key, err)
				}
				if got != tt.want {
					t.Errorf("ParseKey(%q) = %+v, want %+v", tt.key, got, tt.want)
				}
				return
			}
			if code := upload.ErrorCode(err); code != upload.EINVALID {
				t.Fatalf("ParseKey(%q) error = %v (code %q), want code %q", tt.key, err, code, upload.EINVALID)
			}
			if msg := upload.ErrorMessage(err); !strings.Contains(msg, tt.wantErr) {
				t.Errorf("ParseKey(%q) error = %q, want it to contain %q", tt.key, msg, tt.wantErr)
			}
			if got != (upload.Key{}) {
				t.Errorf("ParseKey(%q) = %+v with an error, want the zero Key", tt.key, got)
			}
		})
	}
}

func TestKeyBuildersRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		atom string
		id   string
	}{
		{atom: "a", id: testUploadID},
		{atom: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", id: testUploadID},
		{atom: "Atom_1" + strings.Repeat("x", 94), id: "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"},
	}
	for _, tt := range tests {
		t.Run(tt.atom, func(t *testing.T) {
			t.Parallel()
			u := &upload.Upload{AtomID: tt.atom, ID: tt.id}
			prefix := "uploads/" + tt.atom + "/" + tt.id + "/"
			if got := upload.Prefix(tt.atom, tt.id); got != prefix {
				t.Errorf("Prefix() = %q, want %q", got, prefix)
			}
			if got := upload.PartsPrefix(tt.atom, tt.id); got != prefix+"parts/" {
				t.Errorf("PartsPrefix() = %q, want %q", got, prefix+"parts/")
			}
			for _, n := range []int{0, 1, 9, 10, 123, upload.MaxParts - 1} {
				key := upload.PartKey(tt.atom, tt.id, n)
				if got := u.PartKey(n); got != key {
					t.Errorf("Upload.PartKey(%d) = %q, want %q", n, got, key)
				}
				if !strings.HasPrefix(key, upload.PartsPrefix(tt.atom, tt.id)) {
					t.Errorf("PartKey(%d) = %q, want it under %q", n, key, upload.PartsPrefix(tt.atom, tt.id))
				}
				got, err := upload.ParseKey(key)
				want := upload.Key{AtomID: tt.atom, UploadID: tt.id, Kind: upload.KeyPart, Part: n}
				if err != nil || got != want {
					t.Errorf("ParseKey(PartKey(%d)) = %+v, %v, want %+v, nil", n, got, err, want)
				}
			}
			key := upload.FullKey(tt.atom, tt.id)
			if key != prefix+"full" {
				t.Errorf("FullKey() = %q, want %q", key, prefix+"full")
			}
			if got := u.FullKey(); got != key {
				t.Errorf("Upload.FullKey() = %q, want %q", got, key)
			}
			got, err := upload.ParseKey(key)
			want := upload.Key{AtomID: tt.atom, UploadID: tt.id, Kind: upload.KeyFull}
			if err != nil || got != want {
				t.Errorf("ParseKey(FullKey()) = %+v, %v, want %+v, nil", got, err, want)
			}
		})
	}
}

func TestValidAtomID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{id: "a", want: true},
		{id: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0", want: true},
		{id: "A_b-9", want: true},
		{id: strings.Repeat("a", 100), want: true},
		{id: strings.Repeat("a", 101), want: false},
		{id: "", want: false},
		{id: "-a", want: false},
		{id: "_a", want: false},
		{id: "a/b", want: false},
		{id: "a.b", want: false},
		{id: "a b", want: false},
		{id: "é", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			if got := upload.ValidAtomID(tt.id); got != tt.want {
				t.Errorf("ValidAtomID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestValidUploadID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want bool
	}{
		{id: testUploadID, want: true},
		{id: "00000000000000000000000000", want: true},
		{id: "7ZZZZZZZZZZZZZZZZZZZZZZZZZ", want: true},
		{id: "", want: false},
		{id: testUploadID[:25], want: false},
		{id: testUploadID + "0", want: false},
		{id: strings.ToLower(testUploadID), want: false},
		{id: "01JQ8Z5W9K3M7N2P4R6T8V0XYI", want: false}, // I is not Crockford base32
		{id: "01JQ8Z5W9K3M7N2P4R6T8V0XYL", want: false}, // nor L
		{id: "01JQ8Z5W9K3M7N2P4R6T8V0XYO", want: false}, // nor O
		{id: "01JQ8Z5W9K3M7N2P4R6T8V0XYU", want: false}, // nor U
		{id: "01JQ8Z5W9K3M7N2P4R6T8V0XY-", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			if got := upload.ValidUploadID(tt.id); got != tt.want {
				t.Errorf("ValidUploadID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

// failingReader is an entropy source that always fails.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestNewID(t *testing.T) {
	t.Parallel()
	earlier := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	later := earlier.Add(time.Millisecond)
	entropy := bytes.NewReader(bytes.Repeat([]byte{0xA5}, 64))

	first, err := upload.NewID(earlier, entropy)
	if err != nil {
		t.Fatalf("NewID(%v) error = %v, want nil", earlier, err)
	}
	second, err := upload.NewID(later, entropy)
	if err != nil {
		t.Fatalf("NewID(%v) error = %v, want nil", later, err)
	}
	for _, id := range []string{first, second} {
		if !upload.ValidUploadID(id) {
			t.Errorf("NewID() = %q, which ValidUploadID refuses", id)
		}
	}
	if first >= second {
		t.Errorf("NewID(earlier) = %q, NewID(later) = %q, want the earlier id to sort first", first, second)
	}

	tests := []struct {
		name    string
		now     time.Time
		entropy io.Reader
	}{
		{name: "entropy fails", now: earlier, entropy: failingReader{}},
		{name: "entropy runs out", now: earlier, entropy: bytes.NewReader([]byte{1, 2, 3})},
		{name: "time beyond what a ULID holds", now: time.Date(10900, 1, 1, 0, 0, 0, 0, time.UTC), entropy: bytes.NewReader(make([]byte, 16))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := upload.NewID(tt.now, tt.entropy)
			if err == nil {
				t.Errorf("NewID() = %q, nil, want an error", id)
			}
			if id != "" {
				t.Errorf("NewID() id = %q with an error, want \"\"", id)
			}
		})
	}
}
