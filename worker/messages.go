package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"atomuploads/upload"
)

// s3Event is an S3 event notification as AWS puts it on a queue (event
// version 2.x), or the s3:TestEvent sent when a notification is set up.
type s3Event struct {
	Event   string     `json:"Event"` // "s3:TestEvent"
	Records []s3Record `json:"Records"`
}

type s3Record struct {
	EventSource string `json:"eventSource"`
	EventName   string `json:"eventName"`
	S3          struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			Size      int64  `json:"size"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

// Key returns the record's object key, URL-decoded ('+' is a space).
func (r s3Record) Key() (string, error) {
	return url.QueryUnescape(r.S3.Object.Key)
}

// Kinds of the service's own messages.
const (
	kindRelay         = "relay"         // go on relaying to YouTube after a pause
	kindYouTubePoll   = "youtubePoll"   // ask YouTube how processing goes
	kindTranscodePoll = "transcodePoll" // ask the transcoder how the job goes
)

// ownMessage is a message the service sends itself on the same queue.
type ownMessage struct {
	AtomUploads *task `json:"atomUploads"`
}

type task struct {
	Kind     string `json:"kind"`
	AtomID   string `json:"atomId"`
	UploadID string `json:"uploadId"`
	Failures int    `json:"failures,omitempty"` // consecutive failed attempts so far
}

func (t task) body() string {
	b, _ := json.Marshal(ownMessage{AtomUploads: &t})
	return string(b)
}

// message is a parsed queue message: exactly one of its fields is set.
type message struct {
	test bool
	s3   []s3Record
	task *task
}

// parse reads a message body; anything that is neither an S3 event nor one
// of the service's own messages is an error that says what it is.
func parse(body string) (message, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &probe); err != nil {
		return message{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, ok := probe["atomUploads"]; ok {
		var m ownMessage
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			return message{}, fmt.Errorf("malformed atomUploads message: %w", err)
		}
		t := m.AtomUploads
		switch {
		case t == nil:
			return message{}, errors.New("atomUploads message without a task")
		case t.Kind != kindRelay && t.Kind != kindYouTubePoll && t.Kind != kindTranscodePoll:
			return message{}, fmt.Errorf("unknown atomUploads kind %q", t.Kind)
		case !upload.ValidAtomID(t.AtomID) || !upload.ValidUploadID(t.UploadID):
			return message{}, fmt.Errorf("atomUploads %s message with atomId %q and uploadId %q", t.Kind, t.AtomID, t.UploadID)
		}
		return message{task: t}, nil
	}
	var ev s3Event
	if err := json.Unmarshal([]byte(body), &ev); err != nil {
		return message{}, fmt.Errorf("malformed S3 event: %w", err)
	}
	switch {
	case ev.Event == "s3:TestEvent":
		return message{test: true}, nil
	case len(ev.Records) > 0:
		return message{s3: ev.Records}, nil
	}
	return message{}, fmt.Errorf("neither an S3 event nor an atomUploads message (keys %s)", keys(probe))
}

// uploads are the uploads a message is about.
func (m message) uploads() []upload.Key {
	if m.task != nil {
		return []upload.Key{{AtomID: m.task.AtomID, UploadID: m.task.UploadID}}
	}
	var out []upload.Key
	for _, r := range m.s3 {
		key, err := r.Key()
		if err != nil {
			continue
		}
		if k, err := upload.ParseKey(key); err == nil {
			out = append(out, k)
		}
	}
	return out
}

func keys(m map[string]json.RawMessage) string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	return strings.Join(k, ", ")
}
