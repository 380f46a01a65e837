package worker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"atomuploads/metrics"
	"atomuploads/upload"
)

// Kind names a unit of work. Every message of the queue is parsed into a
// Task of one Kind, and every Kind has exactly one step.
type Kind string

// Kinds of work. S3 events become KindPart and KindFull; every kind can
// also be one of the service's own messages, which it sends itself on the
// same queue as {"atomUploads": {"kind": …, "atomId": …, "uploadId": …}}
// (KindFull as "transcode").
const (
	KindPart          Kind = "part"          // a part object was created: check and mark it complete
	KindFull          Kind = "transcode"     // the original was assembled: start its transcode
	KindRelay         Kind = "relay"         // relay the parts that are in S3 to YouTube
	KindReassemble    Kind = "reassemble"    // join the parts into the original
	KindTranscodePoll Kind = "transcodePoll" // ask the transcoder how the job goes
	KindYouTubePoll   Kind = "youtubePoll"   // ask YouTube how processing goes
	KindAsset         Kind = "asset"         // add the YouTube video to the atom
)

// ownKinds are the kinds the service sends itself.
var ownKinds = []Kind{KindPart, KindFull, KindRelay, KindReassemble, KindTranscodePoll, KindYouTubePoll, KindAsset}

// Task is one unit of work of one upload.
type Task struct {
	Kind     Kind
	AtomID   string
	UploadID string
	// Part is the part number of a KindPart task.
	Part int
	// Attempt counts the attempts of this work so far that made no
	// progress (0 for a first try, and after any attempt that did).
	Attempt int
	// Mark is the upload's progress (markOf) when the message was sent,
	// if Marked (S3's events and plain follow-ups carry none): an attempt
	// that ended after the upload moved past it made progress.
	Mark   int64
	Marked bool
	// Cause is why the last attempt failed, in domain words.
	Cause string
	// Hop: the task is a link of the one chain of delayed messages that
	// drives parked work until it resumes. Other messages that find the
	// work parked leave it to the chain.
	Hop bool
	// GaveUp: the service gave the work up and put the task on the
	// dead-letter queue itself, after recording why.
	GaveUp bool
	// Created is when S3 created the object of an S3 event's task (the
	// event's time); zero for the service's own messages.
	Created time.Time
}

// ownMessage is a message the service sends itself on the same queue.
type ownMessage struct {
	AtomUploads *ownTask `json:"atomUploads"`
}

type ownTask struct {
	Kind     Kind   `json:"kind"`
	AtomID   string `json:"atomId"`
	UploadID string `json:"uploadId"`
	Part     *int   `json:"part,omitempty"`
	Attempt  int    `json:"failures,omitempty"`
	Mark     *int64 `json:"mark,omitempty"`
	Cause    string `json:"cause,omitempty"`
	Hop      bool   `json:"hop,omitempty"`
	GaveUp   bool   `json:"gaveUp,omitempty"`
}

// body is the task as a message body.
func (t Task) body() string {
	o := &ownTask{Kind: t.Kind, AtomID: t.AtomID, UploadID: t.UploadID, Attempt: t.Attempt, Cause: t.Cause, Hop: t.Hop, GaveUp: t.GaveUp}
	if t.Kind == KindPart {
		o.Part = &t.Part
	}
	if t.Marked {
		o.Mark = &t.Mark
	}
	b, err := json.Marshal(ownMessage{AtomUploads: o})
	if err != nil {
		panic(fmt.Sprintf("encode task: %v", err)) // strings and ints always encode
	}
	return string(b)
}

// s3Event is an S3 event notification as AWS puts it on a queue (event
// version 2.x), or the s3:TestEvent sent when a notification is set up.
type s3Event struct {
	Event   string     `json:"Event"` // "s3:TestEvent"
	Records []s3Record `json:"Records"`
}

type s3Record struct {
	EventSource string `json:"eventSource"`
	EventName   string `json:"eventName"`
	// EventTime is when S3 finished the request (ISO 8601, milliseconds):
	// when the object was created.
	EventTime string `json:"eventTime"`
	S3        struct {
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

// created is when S3 created the record's object; zero when the event
// does not say.
func (r s3Record) created() time.Time {
	t, err := time.Parse(time.RFC3339Nano, r.EventTime)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Key returns the record's object key, URL-decoded ('+' is a space).
func (r s3Record) Key() (string, error) {
	return url.QueryUnescape(r.S3.Object.Key)
}

// message is a parsed queue message: exactly one of its fields is set.
type message struct {
	test bool
	s3   []s3Record
	task *Task
}

// errUnknownKind marks an own message of a kind this version does not
// know (perhaps sent by a newer one): it is dead-lettered, not dropped.
var errUnknownKind = errors.New("unknown atomUploads kind")

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
		case !slices.Contains(ownKinds, t.Kind):
			return message{}, fmt.Errorf("%w %q", errUnknownKind, t.Kind)
		case !upload.ValidAtomID(t.AtomID) || !upload.ValidUploadID(t.UploadID):
			return message{}, fmt.Errorf("atomUploads %s message with atomId %q and uploadId %q", t.Kind, t.AtomID, t.UploadID)
		case t.Attempt < 0:
			return message{}, fmt.Errorf("atomUploads %s message with %d failures", t.Kind, t.Attempt)
		case t.Kind == KindPart && (t.Part == nil || *t.Part < 0):
			return message{}, fmt.Errorf("atomUploads part message without a part number")
		}
		task := &Task{Kind: t.Kind, AtomID: t.AtomID, UploadID: t.UploadID, Attempt: t.Attempt, Cause: t.Cause, Hop: t.Hop, GaveUp: t.GaveUp}
		if t.Part != nil {
			task.Part = *t.Part
		}
		if t.Mark != nil {
			task.Mark, task.Marked = *t.Mark, true
		}
		return message{task: task}, nil
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

func keys(m map[string]json.RawMessage) string {
	k := make([]string, 0, len(m))
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return strings.Join(k, ", ")
}

// taskOfKey is the task of an S3 event's key, if the key is of an upload.
func taskOfKey(key string) (Task, bool) {
	k, err := upload.ParseKey(key)
	if err != nil {
		return Task{}, false
	}
	t := Task{Kind: KindFull, AtomID: k.AtomID, UploadID: k.UploadID}
	if k.Kind == upload.KeyPart {
		t.Kind, t.Part = KindPart, k.Part
	}
	return t, true
}

func parseKeyErr(key string) error {
	_, err := upload.ParseKey(key)
	return err
}

// kind is the kind of the message's (first) task, for the metrics;
// metrics.KindNone when it carries none.
func (m message) kind() string {
	if t := m.tasks(); len(t) > 0 {
		return string(t[0].Kind)
	}
	return metrics.KindNone
}

// tasks are the tasks a message carries.
func (m message) tasks() []Task {
	if m.task != nil {
		return []Task{*m.task}
	}
	var out []Task
	for _, r := range m.s3 {
		key, err := r.Key()
		if err != nil {
			continue
		}
		if t, ok := taskOfKey(key); ok {
			out = append(out, t)
		}
	}
	return out
}
