package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"atomuploads/api/rest"
	"atomuploads/upload"
)

// Records are written to the answer as they are rendered, never built
// whole: a record's parts plan (up to 10,000 parts, about 1.2 MB of JSON)
// is written a part at a time, and a list a record at a time as the store
// reads them. So an answer's memory is about one record's, whatever the
// size of the upload or the page. The bytes are those encoding/json writes
// for the rest types (render_test.go holds them to it).

// recordView is how much of a record an answer renders.
type recordView int

const (
	viewFull    recordView = iota // the contract's record, with the whole parts plan
	viewSummary                   // no parts: partsTotal, partsComplete, partsMissing
)

func viewParam(c echo.Context) (recordView, error) {
	switch c.QueryParam("view") {
	case "", "full":
		return viewFull, nil
	case "summary":
		return viewSummary, nil
	}
	return viewFull, upload.Errorf(upload.EINVALID, "view must be full or summary")
}

// view renders an upload record as the contract has it, without the parts
// plan (which recordWriter streams) and without credentials.
func view(u *upload.Upload) rest.Upload {
	v := rest.Upload{
		ID:          u.ID,
		AtomID:      u.AtomID,
		Filename:    u.Filename,
		Size:        u.Size,
		ContentType: u.ContentType,
		Status:      string(u.Status),
		Error:       u.Error,
		CreatedAt:   u.CreatedAt.UTC().Format(time.RFC3339),
		UpdatedAt:   u.UpdatedAt.UTC().Format(time.RFC3339),
		Region:      u.Region,
		Bucket:      u.Bucket,
	}
	for _, d := range u.Destinations {
		dv := rest.Destination{
			Type:     string(d.Type),
			Status:   string(d.Status),
			Progress: math.Round(d.Progress*100) / 100,
			Error:    d.Error,
		}
		if dv.Error == "" {
			dv.Error = d.AssetError // the video is fine; the atom did not get it
		}
		switch d.Type {
		case upload.YouTube:
			n := d.UploadedBytes
			dv.Details = rest.Details{VideoID: d.VideoID, URL: d.URL(), UploadedBytes: &n, ProcessingStatus: d.ProcessingStatus,
				ProcessingTimeLeftMs: d.ProcessingTimeLeftMs, SHA256: d.SHA256}
		case upload.S3Bucket:
			dv.Details = rest.Details{JobID: d.JobID, Outputs: outputs(d), SHA256: d.SHA256, Playback: d.Playback}
		}
		if d.WaitingFor != "" && !d.Status.Terminal() {
			dv.Details.WaitingFor, dv.Details.ResumeAt = d.WaitingFor, d.ResumeAt.UTC().Format(time.RFC3339)
		}
		v.Destinations = append(v.Destinations, dv)
	}
	return v
}

// summarize adds the summary view's account of the parts plan to v.
func summarize(u *upload.Upload, v *rest.Upload) {
	total, complete := u.PartCount(), 0
	missing := []rest.PartRange{}
	for n := range total {
		if u.Completed[n] {
			complete++
			continue
		}
		if k := len(missing) - 1; k >= 0 && missing[k][1] == n-1 {
			missing[k][1] = n
		} else {
			missing = append(missing, rest.PartRange{n, n})
		}
	}
	v.PartsTotal, v.PartsComplete, v.PartsMissing = &total, &complete, missing
}

// writeError is a failure to write the answer: the client went away or
// stopped reading. The answer has begun, so it cannot become a status.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write the answer: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// errWriter keeps the first error of the writer under it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = &writeError{err}
	}
	return n, e.err
}

// recordWriter writes JSON to an answer through a buffer of its own.
type recordWriter struct {
	ew  errWriter
	w   *bufio.Writer
	buf []byte
}

func newRecordWriter(w io.Writer) *recordWriter {
	rw := &recordWriter{ew: errWriter{w: w}}
	rw.w = bufio.NewWriterSize(&rw.ew, 32<<10)
	return rw
}

// err is the first error of writing the answer, if any; writes after it are
// no-ops.
func (rw *recordWriter) err() error { return rw.ew.err }

func (rw *recordWriter) raw(s string) { _, _ = rw.w.WriteString(s) }

// json writes v as encoding/json does, without a newline.
func (rw *recordWriter) json(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	_, _ = rw.w.Write(b)
	return nil
}

// record writes u in the given view, with creds when not nil. The bytes are
// those of json.Marshal of the whole rest.Upload.
func (rw *recordWriter) record(u *upload.Upload, v recordView, creds *rest.Credentials) error {
	head := view(u)
	if v == viewSummary {
		summarize(u, &head)
	}
	b, err := json.Marshal(head)
	if err != nil {
		return fmt.Errorf("encode upload %s: %w", u.ID, err)
	}
	// Every field of rest.Upload after parts is a summary field (in head)
	// or the credentials (written after the parts): the order is the
	// struct's.
	_, _ = rw.w.Write(b[:len(b)-1]) // without the closing brace
	if v == viewFull {
		if err := rw.parts(u); err != nil {
			return err
		}
	}
	if creds != nil {
		rw.raw(`,"credentials":`)
		if err := rw.json(creds); err != nil {
			return err
		}
	}
	rw.raw("}")
	return rw.err()
}

// parts writes `,"parts":[…]`, a part at a time, as encoding/json writes a
// []rest.Part.
func (rw *recordWriter) parts(u *upload.Upload) error {
	prefix, err := json.Marshal(upload.PartsPrefix(u.AtomID, u.ID))
	if err != nil {
		return fmt.Errorf("encode upload %s: %w", u.ID, err)
	}
	prefix = prefix[:len(prefix)-1] // the opening quote and the escaped prefix
	rw.raw(`,"parts":[`)
	for n := range u.PartCount() {
		p := upload.PartAt(u.Size, u.PartSize, n)
		b := rw.buf[:0]
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"start":`...)
		b = strconv.AppendInt(b, p.Start, 10)
		b = append(b, `,"end":`...)
		b = strconv.AppendInt(b, p.End, 10)
		b = append(b, `,"key":`...)
		b = append(b, prefix...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, `","complete":`...)
		b = strconv.AppendBool(b, u.Completed[n])
		b = append(b, '}')
		_, _ = rw.w.Write(b)
		rw.buf = b
		if n%1024 == 1023 && rw.err() != nil {
			return rw.err() // the client is gone: stop rendering
		}
	}
	rw.raw("]")
	return nil
}

// flush ends the answer with a newline, as echo's JSON does.
func (rw *recordWriter) flush() error {
	rw.raw("\n")
	if err := rw.w.Flush(); err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return we
		}
		return &writeError{err}
	}
	return nil
}

// startJSON commits the answer's status and returns a writer for its body.
func startJSON(c echo.Context, status int) *recordWriter {
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	res.WriteHeader(status)
	return newRecordWriter(res)
}

// writeRecord answers with one record. Everything that can fail with a
// status must have been done before: the answer is committed here.
func writeRecord(c echo.Context, status int, u *upload.Upload, v recordView, creds *rest.Credentials) error {
	rw := startJSON(c, status)
	if err := rw.record(u, v, creds); err != nil {
		return err
	}
	return rw.flush()
}

// outputs describes a destination's transcode outputs. A record from before
// outputs were described has only their keys: each gets the kind its name
// says.
func outputs(d upload.Destination) []rest.Output {
	if len(d.Files) > 0 {
		out := make([]rest.Output, len(d.Files))
		for i, f := range d.Files {
			out[i] = rest.Output{Key: f.Key, Kind: f.Kind, Width: f.Width, Height: f.Height, Bitrate: f.Bitrate}
		}
		return out
	}
	var out []rest.Output
	for _, k := range d.Outputs {
		out = append(out, rest.Output{Key: k, Kind: kindOf(k)})
	}
	return out
}

// kindOf is the kind of output a key names.
func kindOf(key string) string {
	switch {
	case strings.HasSuffix(key, "/master.m3u8"):
		return "hls"
	case strings.HasSuffix(key, "_audio.m3u8"):
		return "hlsAudio"
	case strings.HasSuffix(key, ".m3u8"):
		return "hlsVideo"
	case strings.HasSuffix(key, ".jpg"):
		return "poster"
	}
	return "mp4"
}
