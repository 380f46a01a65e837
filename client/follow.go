package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"atomuploads/api/rest"
)

// DefaultPoll is how often Follow reads the record by default.
const DefaultPoll = 2 * time.Second

// maxFollowFailures is how many reads in a row may fail (network, 5xx)
// before Follow gives up.
const maxFollowFailures = 5

// Follow reads the upload's record every `every` and writes a line to out
// for each change of the upload's status and of each destination's status,
// progress, video URL or error, until the upload's status is complete,
// failed or cancelled. It returns that last record. Transient failures to
// read it are retried; a 4xx answer ends Follow with the error.
func (c *Client) Follow(ctx context.Context, atomID, uploadID string, every time.Duration, out io.Writer) (*rest.Upload, error) {
	if every <= 0 {
		every = DefaultPoll
	}
	var prev *rest.Upload
	failures := 0
	for {
		rec, err := c.Get(ctx, atomID, uploadID)
		switch {
		case err == nil:
			failures = 0
			printChanges(out, prev, rec)
			if Terminal(rec.Status) {
				return rec, nil
			}
			prev = rec
		case ctx.Err() != nil:
			return prev, ctx.Err()
		case permanent(err):
			return prev, fmt.Errorf("follow: %w", err)
		default:
			failures++
			if failures >= maxFollowFailures {
				return prev, fmt.Errorf("follow: %d reads in a row failed, the last: %w", failures, err)
			}
			fmt.Fprintf(out, "could not read upload %s (will try again): %v\n", uploadID, err)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return prev, ctx.Err()
		case <-t.C:
		}
	}
}

// permanent reports whether reading again cannot help.
func permanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode < 500 && ae.StatusCode != http.StatusTooManyRequests
}

// printChanges writes what differs between prev (nil at first) and rec.
func printChanges(w io.Writer, prev, rec *rest.Upload) {
	if prev == nil || prev.Status != rec.Status || prev.Error != rec.Error {
		line := "upload " + rec.ID + ": " + rec.Status
		if rec.Error != "" {
			line += ": " + rec.Error
		}
		fmt.Fprintln(w, line)
	}
	for i, d := range rec.Destinations {
		var was *rest.Destination
		if prev != nil && i < len(prev.Destinations) && prev.Destinations[i].Type == d.Type {
			was = &prev.Destinations[i]
		}
		if was == nil || was.Status != d.Status || round1(was.Progress) != round1(d.Progress) || was.Error != d.Error {
			fmt.Fprintln(w, destinationLine(d))
		}
		if d.Details.URL != "" && (was == nil || was.Details.URL != d.Details.URL) {
			fmt.Fprintf(w, "%s: video %s\n", d.Type, d.Details.URL)
		}
	}
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// destinationLine is "youtube: upload 25.6%", "s3Bucket: failed: why".
func destinationLine(d rest.Destination) string {
	line := d.Type + ": " + d.Status
	switch d.Status {
	case "upload", "transcoding":
		line += fmt.Sprintf(" %.1f%%", d.Progress)
		if d.Details.ProcessingStatus != "" {
			line += " (" + d.Details.ProcessingStatus + ")"
		}
	}
	if d.Error != "" {
		line += ": " + d.Error
	}
	return line
}

// PrintSummary writes the final state of an upload: its status, then each
// destination with its YouTube URL or transcode outputs.
func PrintSummary(w io.Writer, rec *rest.Upload) {
	line := fmt.Sprintf("upload %s %s: %s, %s", rec.ID, rec.Status, rec.Filename, humanBytes(rec.Size))
	if rec.Error != "" {
		line += ": " + rec.Error
	}
	fmt.Fprintln(w, line)
	for _, d := range rec.Destinations {
		s := "  " + d.Type + ": " + d.Status
		if d.Error != "" {
			s += ": " + d.Error
		}
		if d.Details.URL != "" {
			s += "  " + d.Details.URL
		}
		if len(d.Details.Outputs) > 0 {
			keys := make([]string, len(d.Details.Outputs))
			for i, o := range d.Details.Outputs {
				keys[i] = o.Key
			}
			s += "  outputs: " + strings.Join(keys, ", ")
		}
		fmt.Fprintln(w, s)
	}
}

// exitCode is the command's status for a final record.
func exitCode(rec *rest.Upload) int {
	if rec.Status == StatusComplete {
		return 0
	}
	return 1
}
