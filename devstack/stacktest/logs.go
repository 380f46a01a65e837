package stacktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logs collects the JSON log lines of a test's logger, as the service
// writes them.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewLogger returns a zap JSON logger (debug level) writing into Logs.
func NewLogger(tb testing.TB) (*zap.Logger, *Logs) {
	tb.Helper()
	l := &Logs{}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(l), zap.DebugLevel))
	tb.Cleanup(func() {
		if tb.Failed() {
			// The last lines of what the service did, for whoever reads
			// the failure (CI's tail shows them).
			lines := strings.Split(strings.TrimSpace(l.String()), "\n")
			tb.Logf("the last %d of %d log lines:\n%s", min(len(lines), 150), len(lines), strings.Join(lines[max(len(lines)-150, 0):], "\n"))
		}
	})
	return log, l
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is every line so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Entries decodes every line.
func (l *Logs) Entries(tb testing.TB) []map[string]any {
	tb.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatalf("log line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// With returns the entries whose message is msg.
func (l *Logs) With(tb testing.TB, msg string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, e := range l.Entries(tb) {
		if e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}
