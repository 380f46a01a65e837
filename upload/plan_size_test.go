package upload

import "testing"

func TestValidPartSize(t *testing.T) {
	for _, tt := range []struct {
		name string
		n    int64
		ok   bool
	}{
		{"negative", -ChunkAlign, false},
		{"zero", 0, false},
		{"one chunk", ChunkAlign, false},
		{"5 MiB - 256 KiB", MinPartSize - ChunkAlign, false},
		{"5 MiB - 1", MinPartSize - 1, false},
		{"5 MiB", MinPartSize, true},
		{"5 MiB + 1", MinPartSize + 1, false},
		{"5 MiB + 256 KiB", MinPartSize + ChunkAlign, true},
		{"8 MiB, the default", DefaultPartSize, true},
		{"8 MiB + 128 KiB", DefaultPartSize + ChunkAlign/2, false},
		{"5 GiB - 256 KiB", MaxPartSize - ChunkAlign, true},
		{"5 GiB - 1", MaxPartSize - 1, false},
		{"5 GiB", MaxPartSize, true},
		{"5 GiB + 1", MaxPartSize + 1, false},
		{"5 GiB + 256 KiB", MaxPartSize + ChunkAlign, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidPartSize(tt.n)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidPartSize(%d) = %v, want nil", tt.n, err)
				}
				return
			}
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ValidPartSize(%d) = %v, want an %s error", tt.n, err, EINVALID)
			}
		})
	}
}

func TestValidChunkSize(t *testing.T) {
	for _, tt := range []struct {
		name string
		n    int64
		ok   bool
	}{
		{"negative", -ChunkAlign, false},
		{"zero", 0, false},
		{"1", 1, false},
		{"256 KiB - 1", ChunkAlign - 1, false},
		{"256 KiB", ChunkAlign, true},
		{"256 KiB + 1", ChunkAlign + 1, false},
		{"512 KiB", 2 * ChunkAlign, true},
		{"5 MiB", MinPartSize, true},
		{"64 MiB", 64 * MiB, true},
		{"above the largest part", MaxPartSize + ChunkAlign, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidChunkSize(tt.n)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidChunkSize(%d) = %v, want nil", tt.n, err)
				}
				return
			}
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ValidChunkSize(%d) = %v, want an %s error", tt.n, err, EINVALID)
			}
		})
	}
}

// TestPlannedPartSizesAreValid ties PartSize to ValidPartSize: every part
// size the plan chooses passes the rule the configuration is checked with.
func TestPlannedPartSizesAreValid(t *testing.T) {
	for _, size := range []int64{1, MinPartSize, MaxParts*DefaultPartSize + 1, MaxFileSize} {
		for _, preferred := range []int64{0, 1, MinPartSize, DefaultPartSize + 1, MaxPartSize} {
			ps, err := PartSize(size, preferred)
			if err != nil {
				t.Fatalf("PartSize(%d, %d): %v", size, preferred, err)
			}
			if err := ValidPartSize(ps); err != nil {
				t.Errorf("PartSize(%d, %d) = %d: %v", size, preferred, ps, err)
			}
		}
	}
}
