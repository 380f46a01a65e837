package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"atomuploads/api"
	"atomuploads/upload"
)

// panicky is a table whose Get panics (a bug in a handler's path), and
// whose List works.
type panicky struct{ api.Uploads }

func (panicky) Get(_ context.Context, atomID, _ string) (*upload.Upload, error) {
	var parts []int
	return nil, fmt.Errorf("part %d", parts[len(atomID)]) // index out of range
}

func (panicky) List(_ context.Context, _, _ string, _ []upload.Status, _ int, _ func(*upload.Upload) error) (string, error) {
	return "", nil
}

// TestPanicIsA500AndTheServerServesOn: a handler that panics answers 500
// with the request id, its stack is logged once with that id, and the
// server goes on serving.
func TestPanicIsA500AndTheServerServesOn(t *testing.T) {
	base, logs := newFakeServer(t, panicky{})
	const path = "/api2/atom/atom-1/uploads/01JZ4Q7V9X8Y6W5T3S2R1P0N9M"
	for range 3 {
		status, rid, body := send(t, base, path, token, nil)
		var msg struct{ Message string }
		_ = json.Unmarshal([]byte(body), &msg)
		if status != 500 || rid == "" || msg.Message != "internal error (request "+rid+")" {
			t.Fatalf("a panicking handler: %d %q (request id %q), want 500 naming the request", status, body, rid)
		}
		var withStack []map[string]any
		for _, e := range logs.Entries(t) {
			if e["requestId"] == rid && e["stack"] != nil {
				withStack = append(withStack, e)
			}
		}
		if len(withStack) != 1 {
			t.Fatalf("%d log lines of request %s with a stack, want 1:\n%s", len(withStack), rid, logs.String())
		}
		e := withStack[0]
		if stack, _ := e["stack"].(string); e["level"] != "error" || !strings.Contains(stack, "panicky.Get") ||
			!strings.Contains(e["error"].(string), "index out of range [6] with length 0") {
			t.Errorf("the panic's line: %v, want an error with the panic and a stack through panicky.Get", e)
		}
	}
	if status, _, body := send(t, base, "/api2/atom/atom-1/uploads", token, nil); status != 200 || body != "{\"uploads\":[]}\n" {
		t.Errorf("after the panics, a list: %d %s, want 200", status, body)
	}
	if status, _, _ := send(t, base, "/healthcheck", "", nil); status != 200 {
		t.Errorf("after the panics, healthcheck: %d, want 200", status)
	}
	if n := strings.Count(logs.String(), "[running]"); n != 3 {
		t.Errorf("stacks logged %d times for 3 panics", n)
	}
}

// midPanic hands a record, then panics.
type midPanic struct{ api.Uploads }

func (midPanic) List(_ context.Context, _, _ string, _ []upload.Status, _ int, fn func(*upload.Upload) error) (string, error) {
	if err := fn(bigRecord); err != nil {
		return "", err
	}
	panic("the second page is corrupt")
}

var bigRecord = func() *upload.Upload {
	u, err := upload.New(upload.StartRequest{
		Filename: "clip.mp4", Size: upload.MaxFileSize, ContentType: "video/mp4",
		Destinations: []upload.DestinationRequest{{Type: upload.S3Bucket}},
	}, "atom-1", "01JZ4Q7V9X8Y6W5T3S2R1P0N9M", time.Now(), "eu-west-1", "bucket", 8*upload.MiB)
	if err != nil {
		panic(err)
	}
	return u
}()

// TestPanicAfterTheAnswerBeganCutsIt: a panic once a list is being written
// cuts the answer (the client sees it broken) and is logged once with its
// stack.
func TestPanicAfterTheAnswerBeganCutsIt(t *testing.T) {
	base, logs := newFakeServer(t, midPanic{})
	status, body, err := get(t, base+"/api2/atom/atom-1/uploads")
	if status != 200 || err == nil || json.Valid(body) {
		t.Errorf("a panic mid-list: %d, %d bytes, read error %v; want a broken answer", status, len(body), err)
	}
	lines := logs.With(t, "request failed after its answer began; the answer is cut")
	if len(lines) != 1 || !strings.Contains(lines[0]["stack"].(string), "midPanic.List") {
		t.Errorf("cut lines %v, want one with the stack", lines)
	}
	if status, _, _ := send(t, base, "/healthcheck", "", nil); status != 200 {
		t.Errorf("after the panic, healthcheck: %d, want 200", status)
	}
}
