package worker

import (
	"fmt"
	"strings"
	"testing"

	"atomuploads/youtube"
)

// TestCauseOfAVideoYouTubeDoesNotHave: YouTube answered that it has no
// such video (the poll's error); the cause must say so, not that a
// dependency could not be reached.
func TestCauseOfAVideoYouTubeDoesNotHave(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("ask YouTube how video %s is processed: %w", "vid1", youtube.ErrVideoNotFound)
	if got, want := cause(err), "YouTube has no such video"; !strings.HasPrefix(got, want) {
		t.Errorf("cause(%v) = %q, want it to begin %q", err, got, want)
	}
}
