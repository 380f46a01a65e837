package main

import (
	"context"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"atomuploads/devstack"
	"atomuploads/store"
	"atomuploads/worker"
)

// inProcess is one worker instance in this process, configured as the
// service is by default (config.yaml), on clients that count their calls
// and with the service's logger (JSON at info, sampled), whose lines are
// counted and then discarded. The bench can profile it and count what it
// does, which it cannot do inside a service process.
type inProcess struct {
	calls *calls
	logs  *logCounter
	db    *store.Store // on the counted client
	stop  func()
}

// serviceDefaults is the worker configuration of config.yaml.
func serviceDefaults(r devstack.Resources, c devstack.Created, owner string) (worker.Config, worker.PoolConfig) {
	return worker.Config{
			QueueURL: c.QueueURL, Bucket: r.Bucket, Owner: owner, LeaseTTL: 20 * time.Second, PollInterval: 30 * time.Second,
			ReassemblyParallelism: 8, MaxChunkBytes: maxChunk, MaxTranscodeAttempts: 3, MaxAttempts: 20, MaxReceiveCount: 5,
			RetryBackoff: 10 * time.Second, MaxRetryDelay: 5 * time.Minute,
		}, worker.PoolConfig{
			QueueURL: c.QueueURL, Concurrency: 16, Visibility: time.Minute, WaitTime: 20 * time.Second,
		}

}

// startWorker starts an in-process worker on the resources; tune may
// change its configuration.
func (b *bench) startWorker(r devstack.Resources, c devstack.Created, tune func(*worker.Config, *worker.PoolConfig)) *inProcess {
	w := &inProcess{calls: newCalls(), logs: newLogCounter()}
	clients := counted(b.aws, w.calls)
	w.db = store.New(clients.DynamoDB, r.Table, 0)
	cfg, pcfg := serviceDefaults(r, c, "bench")
	if tune != nil {
		tune(&cfg, &pcfg)
	}
	log := w.logs.logger()
	d := worker.New(cfg, worker.Deps{Store: w.db, Queue: clients.SQS, S3: clients.S3, YouTube: b.client, Log: log})
	pool := worker.NewPool(clients.SQS, pcfg, d, log)
	if err := pool.Start(context.Background()); err != nil {
		panic(err) // only a second Start fails
	}
	w.stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pool.Stop(ctx)
	}
	return w
}

// logCounter counts log entries by message, and keeps the fields of a few
// (and their time, as the field "_time").
type logCounter struct {
	mu    sync.Mutex
	n     map[string]int
	kept  map[string][]map[string]any
	watch map[string]bool
}

func newLogCounter() *logCounter {
	return &logCounter{n: map[string]int{}, kept: map[string][]map[string]any{}, watch: map[string]bool{"reassembled": true, "part complete": true}}
}

// logger is the service's logger (main.newLogger: production JSON,
// sampled, at info) writing to nowhere, teed with the counter. BENCH_LOG=1
// writes the lines to stderr instead.
func (l *logCounter) logger() *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey, enc.EncodeTime = "time", zapcore.ISO8601TimeEncoder
	out := io.Discard
	if os.Getenv("BENCH_LOG") != "" {
		out = os.Stderr
	}
	json := zapcore.NewSamplerWithOptions(zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(out), zap.InfoLevel), time.Second, 100, 100)
	return zap.New(zapcore.NewTee(json, &countCore{l: l}), zap.Fields(zap.String("service", "atom-uploads")))
}

// fields are the fields of the watched entries with the message.
func (l *logCounter) fields(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kept[msg]
}

type countCore struct {
	l      *logCounter
	fields []zapcore.Field // from With
}

func (c *countCore) Enabled(lvl zapcore.Level) bool { return lvl >= zap.InfoLevel }
func (c *countCore) Sync() error                    { return nil }

func (c *countCore) With(fields []zapcore.Field) zapcore.Core {
	return &countCore{l: c.l, fields: append(slices.Clip(c.fields), fields...)}
}

func (c *countCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *countCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	c.l.n[e.Message]++
	if c.l.watch[e.Message] {
		m := zapcore.NewMapObjectEncoder()
		for _, f := range append(slices.Clip(c.fields), fields...) {
			f.AddTo(m)
		}
		m.Fields["_time"] = e.Time
		c.l.kept[e.Message] = append(c.l.kept[e.Message], m.Fields)
	}
	return nil
}
