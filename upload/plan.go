package upload

// Limits of the parts plan. Parts are relayed to YouTube as resumable-upload
// chunks and later joined in S3 by multipart copy, so a part size must satisfy
// both services.
const (
	KiB = int64(1) << 10
	MiB = int64(1) << 20
	GiB = int64(1) << 30

	// ChunkAlign is YouTube's resumable chunk granularity: every chunk but
	// the last must be a multiple of it.
	ChunkAlign = 256 * KiB
	// MinPartSize is S3's minimum size of every part of a multipart upload
	// but the last.
	MinPartSize = 5 * MiB
	// MaxPartSize is S3's maximum part size.
	MaxPartSize = 5 * GiB
	// MaxParts is S3's maximum number of parts in a multipart upload.
	MaxParts = 10000
	// MaxFileSize is YouTube's documented ceiling for one video file:
	// 256 GB, decimal.
	MaxFileSize = 256_000_000_000
	// DefaultPartSize is used when the configuration does not say.
	DefaultPartSize = 8 * MiB
)

// Part is one piece of the plan: bytes [Start, End) of the file.
type Part struct {
	Number int
	Start  int64
	End    int64 // exclusive
}

// Size is the number of bytes in the part.
func (p Part) Size() int64 { return p.End - p.Start }

// PartSize returns the part size used for a file of the given size when the
// preferred part size is preferred: preferred rounded up to a multiple of
// ChunkAlign and to at least MinPartSize, then grown (still a multiple of
// ChunkAlign) until the file fits in MaxParts parts.
func PartSize(size, preferred int64) (int64, error) {
	if size <= 0 {
		return 0, Errorf(EINVALID, "size must be at least 1 byte, got %d", size)
	}
	if size > MaxFileSize {
		return 0, Errorf(EINVALID, "size %d is above YouTube's limit of 256 GB (%d bytes)", size, int64(MaxFileSize))
	}
	ps := max(roundUp(preferred, ChunkAlign), MinPartSize)
	if need := ceilDiv(size, MaxParts); ps < need {
		ps = roundUp(need, ChunkAlign)
	}
	if ps > MaxPartSize {
		// Unreachable for sizes within MaxFileSize and a validated preferred
		// size, but the plan must never promise a part S3 refuses.
		return 0, Errorf(EINVALID, "part size %d is above S3's limit of %d bytes", ps, MaxPartSize)
	}
	return ps, nil
}

// ValidPartSize reports whether n may be the size of every part but the last
// of a plan: a multiple of ChunkAlign from MinPartSize to MaxPartSize. The
// error is an EINVALID *Error.
func ValidPartSize(n int64) error {
	if n < MinPartSize || n > MaxPartSize || n%ChunkAlign != 0 {
		return Errorf(EINVALID, "part size %d must be a multiple of %d (256 KiB) between %d (5 MiB) and %d (5 GiB)",
			n, ChunkAlign, MinPartSize, MaxPartSize)
	}
	return nil
}

// ValidChunkSize reports whether n may be the size of every YouTube
// resumable chunk but the last: a positive multiple of ChunkAlign. The error
// is an EINVALID *Error.
func ValidChunkSize(n int64) error {
	if n < ChunkAlign || n%ChunkAlign != 0 {
		return Errorf(EINVALID, "chunk size %d must be a positive multiple of %d (256 KiB)", n, ChunkAlign)
	}
	return nil
}

// Plan splits a file of the given size into parts of PartSize(size, preferred)
// bytes, the last one shorter.
func Plan(size, preferred int64) ([]Part, error) {
	ps, err := PartSize(size, preferred)
	if err != nil {
		return nil, err
	}
	return Parts(size, ps), nil
}

// Parts splits size bytes into parts of partSize; it assumes both are
// positive (use PartSize to get a valid partSize).
func Parts(size, partSize int64) []Part {
	n := PartCount(size, partSize)
	parts := make([]Part, n)
	for i := range parts {
		parts[i] = PartAt(size, partSize, i)
	}
	return parts
}

// PartCount is the number of parts of partSize bytes in size bytes.
func PartCount(size, partSize int64) int {
	if size <= 0 || partSize <= 0 {
		return 0
	}
	return int(ceilDiv(size, partSize))
}

// PartAt returns part n of the plan without building the whole plan.
func PartAt(size, partSize int64, n int) Part {
	start := int64(n) * partSize
	return Part{Number: n, Start: start, End: min(start+partSize, size)}
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func roundUp(n, m int64) int64 {
	if n <= 0 {
		return m
	}
	return ceilDiv(n, m) * m
}
