package upload

import (
	"testing"
)

func TestPartSizeBoundaries(t *testing.T) {
	const def = 8 * MiB
	tests := []struct {
		name      string
		size      int64
		preferred int64
		wantSize  int64 // part size
		wantParts int
		wantErr   bool
	}{
		{name: "zero bytes", size: 0, preferred: def, wantErr: true},
		{name: "negative", size: -1, preferred: def, wantErr: true},
		{name: "one byte", size: 1, preferred: def, wantSize: def, wantParts: 1},
		{name: "exactly 5 MiB", size: 5 * MiB, preferred: def, wantSize: def, wantParts: 1},
		{name: "exactly 5 MiB with 5 MiB parts", size: 5 * MiB, preferred: 5 * MiB, wantSize: 5 * MiB, wantParts: 1},
		{name: "5 MiB + 1 with 5 MiB parts", size: 5*MiB + 1, preferred: 5 * MiB, wantSize: 5 * MiB, wantParts: 2},
		{name: "preferred below S3 minimum", size: 100 * MiB, preferred: 1 * MiB, wantSize: 5 * MiB, wantParts: 20},
		{name: "preferred not 256 KiB aligned", size: 100 * MiB, preferred: 6*MiB + 1, wantSize: 6*MiB + 256*KiB, wantParts: 16},
		{name: "zero preferred", size: 1, preferred: 0, wantSize: MinPartSize, wantParts: 1},
		{name: "exactly 10,000 parts", size: MaxParts * def, preferred: def, wantSize: def, wantParts: MaxParts},
		{name: "10,000 parts + 1 byte grows the part", size: MaxParts*def + 1, preferred: def, wantSize: def + ChunkAlign, wantParts: 9697},
		{name: "the ceiling", size: MaxFileSize, preferred: def, wantSize: 98 * ChunkAlign, wantParts: 9965},
		{name: "the ceiling + 1", size: MaxFileSize + 1, preferred: def, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, err := Plan(tt.size, tt.preferred)
			if tt.wantErr {
				if ErrorCode(err) != EINVALID {
					t.Fatalf("Plan(%d, %d) error = %v, want an %s error", tt.size, tt.preferred, err, EINVALID)
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan(%d, %d): %v", tt.size, tt.preferred, err)
			}
			if got := len(parts); got != tt.wantParts {
				t.Errorf("parts = %d, want %d", got, tt.wantParts)
			}
			if got := parts[0].Size(); len(parts) > 1 && got != tt.wantSize {
				t.Errorf("part size = %d, want %d", got, tt.wantSize)
			}
			checkPlan(t, tt.size, parts)
		})
	}
}

// checkPlan asserts the invariants of every plan: contiguous parts from 0 to
// size, each but the last a multiple of 256 KiB and at least 5 MiB, none
// above 5 GiB, at most 10,000 of them.
func checkPlan(t testing.TB, size int64, parts []Part) {
	t.Helper()
	if len(parts) == 0 || len(parts) > MaxParts {
		t.Fatalf("plan has %d parts, want 1..%d", len(parts), MaxParts)
	}
	var next int64
	for i, p := range parts {
		if p.Number != i || p.Start != next || p.End <= p.Start {
			t.Fatalf("part %d = %+v, want number %d starting at %d", i, p, i, next)
		}
		if p.Size() > MaxPartSize {
			t.Fatalf("part %d is %d bytes, above %d", i, p.Size(), MaxPartSize)
		}
		if i < len(parts)-1 && (p.Size()%ChunkAlign != 0 || p.Size() < MinPartSize) {
			t.Fatalf("part %d is %d bytes: not a multiple of 256 KiB of at least 5 MiB", i, p.Size())
		}
		next = p.End
	}
	if next != size {
		t.Fatalf("plan ends at %d, want %d", next, size)
	}
}

func TestPartAtMatchesParts(t *testing.T) {
	const size, ps = 50*MiB + 17, 8 * MiB
	parts := Parts(size, ps)
	for i, p := range parts {
		if got := PartAt(size, ps, i); got != p {
			t.Errorf("PartAt(%d) = %+v, want %+v", i, got, p)
		}
	}
	u := &Upload{Size: size, PartSize: ps}
	for _, off := range []int64{0, ps - 1, ps, size - 1} {
		p, ok := u.PartContaining(off)
		if !ok || off < p.Start || off >= p.End {
			t.Errorf("PartContaining(%d) = %+v, %v", off, p, ok)
		}
	}
	if _, ok := u.PartContaining(size); ok {
		t.Errorf("PartContaining(size) found a part, want none")
	}
}

func FuzzPlan(f *testing.F) {
	f.Add(int64(1), int64(8*MiB))
	f.Add(int64(MaxFileSize), int64(0))
	f.Add(int64(MaxParts*8*MiB+1), int64(8*MiB))
	f.Fuzz(func(t *testing.T, size, preferred int64) {
		// Config validation keeps the preferred size within 0..MaxPartSize.
		preferred = max(preferred, -preferred) % (MaxPartSize + 1)
		parts, err := Plan(size, preferred)
		if size <= 0 || size > MaxFileSize {
			if err == nil {
				t.Fatalf("Plan(%d) accepted an out-of-range size", size)
			}
			return
		}
		if err != nil {
			t.Fatalf("Plan(%d, %d): %v", size, preferred, err)
		}
		if len(parts) > 200000 {
			t.Fatalf("too many parts")
		}
		checkPlan(t, size, parts)
	})
}
