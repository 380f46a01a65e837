package worker_test

import (
	"testing"

	"go.uber.org/zap"

	"atomuploads/upload"
	"atomuploads/worker"
)

// BenchmarkRelayMetrics relays a 40 MiB upload (8 parts, 8 MiB chunks)
// through the in-process fakes, without metrics and with them: the cost
// of the relay's instrumentation (the metric calls of each chunk and part,
// the status comparison of each write) next to the work of a chunk. The
// fakes do no network I/O, so this is the worst case for the ratio.
//
//	go test -run '^$' -bench RelayMetrics -benchtime 20x ./worker/
func BenchmarkRelayMetrics(b *testing.B) {
	const size = 40 * upload.MiB
	for _, withMetrics := range []bool{false, true} {
		name := "metrics=off"
		if withMetrics {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			e := newUnitEnv(b, unitOpts{cfg: func(c *worker.Config) { c.MaxChunkBytes = 8 * upload.MiB }})
			e.log = zap.NewNop()
			e.d = e.instance(e.cfg.Owner)
			if withMetrics {
				e.withMetrics()
			}
			file := unitFile(b, size)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				u := e.create(size, ytDest())
				e.allIn(u, file)
				b.StartTimer()
				e.mustHandle(ownBody(worker.KindRelay, u, 0))
			}
		})
	}
}
