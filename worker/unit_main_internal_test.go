package worker

import (
	"flag"
	"os"
	"testing"
	"time"
)

// TestMain shortens the pauses between a relay turn's own retries in a
// -short run, which has only the stack-free tests: with the production
// curve (500 ms doubling to 8 s, six tries) a test of a turn that gives up
// would wait 8–15 s. The number of tries, which is what the tests check,
// stays the same. The integration tests keep the production curve.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		relayStepRetry.Base, relayStepRetry.Cap = time.Millisecond, 8*time.Millisecond
	}
	os.Exit(m.Run())
}
