// Package client is the command-line side of the atom-uploads REST contract
// (api/openapi.yaml): `atom-uploads upload` does what the browser media tool
// does with a large video. It starts an upload through the API, puts the
// planned parts straight into S3 with the upload's temporary credentials
// (refreshed through the API before they expire), shows progress, then
// follows the record until every destination is done.
//
// Client holds the pieces, each a method taking a context first: Start, Get,
// Credentials, PutParts and Follow. Main parses the command line and runs
// them in order. The bearer token and the temporary credentials are never
// printed. The bodies sent and received are those of package rest, the wire
// format the API renders.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"atomuploads/api/rest"
)

// Destination types of the contract.
const (
	YouTube  = "youtube"
	S3Bucket = "s3Bucket"
)

// Upload statuses: uploading → processing → complete | failed | cancelled,
// and uploading → expired (no part arrived for the service's
// uploads.abandonAfter).
const (
	StatusUploading  = "uploading"
	StatusProcessing = "processing"
	StatusComplete   = "complete"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
	StatusExpired    = "expired"
)

// Terminal reports whether an upload status is final.
func Terminal(status string) bool {
	return status == StatusComplete || status == StatusFailed || status == StatusCancelled || status == StatusExpired
}

// APIError is an error answer of the API: its status and {"message"}.
type APIError struct {
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// Client talks to the atom-uploads API and puts parts into S3. The zero
// value of every field but BaseURL and Token has a working default.
type Client struct {
	BaseURL    string       // e.g. http://127.0.0.1:8080
	Token      string       // bearer token of the API; never printed
	HTTPClient *http.Client // for the API; nil: a client with a 30 s timeout

	S3Endpoint   string       // S3 endpoint URL for a local stack; empty: AWS
	S3PathStyle  bool         // path-style S3 addressing (MinIO)
	S3HTTPClient *http.Client // for the part PUTs; nil: the SDK's default

	// RefreshBefore is how long before the credentials' expiry they are
	// refreshed through the API (default 5 minutes).
	RefreshBefore time.Duration
	// Attempts is how many times a part is tried (default 4), waiting
	// RetryBackoff (default 1 s) and twice as long after each failure.
	Attempts     int
	RetryBackoff time.Duration
}

const (
	defaultAPITimeout    = 30 * time.Second
	defaultRefreshBefore = 5 * time.Minute
	defaultAttempts      = 4
	defaultRetryBackoff  = time.Second
	maxErrorBody         = 64 << 10
	maxRecordBody        = 16 << 20
)

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: defaultAPITimeout}
}

func uploadsPath(atomID string) string {
	return "/api2/atom/" + url.PathEscape(atomID) + "/uploads"
}

func uploadPath(atomID, uploadID string) string {
	return uploadsPath(atomID) + "/" + url.PathEscape(uploadID)
}

// Start starts an upload of the file described by req for the atom. The
// record it returns carries the first temporary credentials.
func (c *Client) Start(ctx context.Context, atomID string, req rest.StartRequest) (*rest.Upload, error) {
	var rec rest.Upload
	if err := c.do(ctx, http.MethodPost, uploadsPath(atomID), req, http.StatusCreated, &rec); err != nil {
		return nil, fmt.Errorf("start upload: %w", err)
	}
	if err := check(&rec); err != nil {
		return nil, fmt.Errorf("start upload: %w", err)
	}
	if rec.Credentials == nil {
		return nil, fmt.Errorf("start upload %s: the API returned no credentials", rec.ID)
	}
	return &rec, nil
}

// Get returns the upload's record.
func (c *Client) Get(ctx context.Context, atomID, uploadID string) (*rest.Upload, error) {
	var rec rest.Upload
	if err := c.do(ctx, http.MethodGet, uploadPath(atomID, uploadID), nil, http.StatusOK, &rec); err != nil {
		return nil, fmt.Errorf("get upload %s: %w", uploadID, err)
	}
	if err := check(&rec); err != nil {
		return nil, fmt.Errorf("get upload %s: %w", uploadID, err)
	}
	return &rec, nil
}

// Credentials returns fresh temporary credentials for the upload's parts.
// The API refuses them (409) once the upload takes no more parts.
func (c *Client) Credentials(ctx context.Context, atomID, uploadID string) (rest.Credentials, error) {
	var out rest.CredentialsResponse
	if err := c.do(ctx, http.MethodPost, uploadPath(atomID, uploadID)+"/credentials", nil, http.StatusOK, &out); err != nil {
		return rest.Credentials{}, fmt.Errorf("refresh credentials of upload %s: %w", uploadID, err)
	}
	cr := out.Credentials
	if cr == nil || cr.AccessKeyID == "" || cr.SecretAccessKey == "" || cr.SessionToken == "" {
		return rest.Credentials{}, fmt.Errorf("refresh credentials of upload %s: the API returned incomplete credentials", uploadID)
	}
	return *cr, nil
}

// check rejects a record the rest of the client could not work with.
func check(r *rest.Upload) error {
	if r.ID == "" || r.Bucket == "" {
		return errors.New("the API returned a record without id or bucket")
	}
	var next int64
	for i, p := range r.Parts {
		if p.Start != next || p.End <= p.Start || p.Key == "" {
			return fmt.Errorf("the API returned an inconsistent parts plan at part %d", i)
		}
		next = p.End
	}
	if next != r.Size {
		return fmt.Errorf("the API's parts plan covers %d bytes, not the upload's %d", next, r.Size)
	}
	return nil
}

// do sends one API request with a JSON body (when in is not nil) and decodes
// the answer into out when it has the wanted status.
func (c *Client) do(ctx context.Context, method, path string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.httpClient().Do(req)
	if err != nil {
		return err // *url.Error: method, URL (no secrets) and cause
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		return apiError(res)
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, maxRecordBody)).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}

func apiError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	var m rest.Error
	msg := ""
	if json.Unmarshal(b, &m) == nil {
		msg = m.Message
	}
	if msg == "" {
		msg = strings.TrimSpace(string(b))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
	}
	if msg == "" {
		msg = "(no message)"
	}
	return &APIError{StatusCode: res.StatusCode, Message: msg}
}
