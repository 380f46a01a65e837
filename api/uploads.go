package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"atomuploads/api/rest"
	"atomuploads/credentials"
	"atomuploads/upload"
)

// credentialsView renders temporary credentials, the expiry in unix seconds.
func credentialsView(c credentials.Credentials) *rest.Credentials {
	return &rest.Credentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Expiry:          c.Expiry.Unix(),
	}
}

// bind decodes a JSON body strictly: one object, no unknown fields.
func bind(c echo.Context, dst any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return echo.NewHTTPError(http.StatusRequestTimeout, "the request body did not arrive in time; send it again")
		}
		return fmt.Errorf("read body: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return upload.Errorf(upload.EINVALID, "send a JSON body")
	}
	if ct := c.Request().Header.Get(echo.HeaderContentType); ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return upload.Errorf(upload.EINVALID, "send the body as application/json, not %s", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return upload.Errorf(upload.EINVALID, "body is not valid JSON at byte %d", syn.Offset)
		case errors.As(err, &typ):
			return upload.Errorf(upload.EINVALID, "field %q must be a %s", typ.Field, typ.Type)
		}
		// Unknown fields land here: "json: unknown field "x"".
		return upload.Errorf(upload.EINVALID, "body is not a valid request: %v", err)
	}
	if dec.More() {
		return upload.Errorf(upload.EINVALID, "send one JSON object")
	}
	return nil
}

func atomParam(c echo.Context) (string, error) {
	id := c.Param("atomId")
	if !upload.ValidAtomID(id) {
		return "", upload.Errorf(upload.EINVALID, "atomId %q must be 1-100 letters, digits, '-' or '_'", clip(id))
	}
	return id, nil
}

func ids(c echo.Context) (string, string, error) {
	atomID, err := atomParam(c)
	if err != nil {
		return "", "", err
	}
	id := c.Param("uploadId")
	if !upload.ValidUploadID(id) {
		return "", "", upload.Errorf(upload.EINVALID, "uploadId %q is not an upload id (26 characters, 0-9 and A-Z)", clip(id))
	}
	return atomID, id, nil
}

func (s *Server) start(c echo.Context) error {
	atomID, err := atomParam(c)
	if err != nil {
		return err
	}
	var req rest.StartRequest
	if err := bind(c, &req); err != nil {
		return err
	}
	sr, err := s.startRequest(req)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := s.now()
	id, err := upload.NewID(now, s.entropy)
	if err != nil {
		return fmt.Errorf("new upload id: %w", err)
	}
	u, err := upload.New(sr, atomID, id, now, s.cfg.Region, s.cfg.Bucket, s.cfg.PartSize)
	if err != nil {
		return err
	}
	// Credentials first: a record is only created for an upload that can
	// actually be sent.
	creds, err := s.issuer.Issue(ctx, atomID, id)
	if err != nil {
		return err
	}
	if err := s.uploads.Create(ctx, u); err != nil {
		return err
	}
	s.log.Info("upload started", zap.String("atomId", atomID), zap.String("uploadId", id),
		zap.Int64("bytes", u.Size), zap.Int("parts", u.PartCount()), zap.String("status", string(u.Status)))
	c.Response().Header().Set(echo.HeaderLocation, c.Request().URL.Path+"/"+id)
	return writeRecord(c, http.StatusCreated, u, viewFull, credentialsView(creds))
}

// startRequest checks what the domain cannot know: which destinations this
// service has enabled, and fields that belong to another destination type.
func (s *Server) startRequest(req rest.StartRequest) (upload.StartRequest, error) {
	sr := upload.StartRequest{Filename: req.Filename, Size: req.Size, ContentType: req.ContentType, SHA256: req.SHA256}
	var problems []string
	for i, d := range req.Destinations {
		t := upload.DestinationType(d.Type)
		switch {
		case t == upload.YouTube && !s.cfg.YouTube:
			problems = append(problems, fmt.Sprintf("destinations[%d]: youtube destinations are not enabled on this service", i))
		case t == upload.S3Bucket && !s.cfg.Transcode:
			problems = append(problems, fmt.Sprintf("destinations[%d]: s3Bucket destinations are not enabled on this service (no transcoding)", i))
		case t == upload.S3Bucket && (d.Title != "" || d.Description != "" || len(d.Tags) > 0 || d.CategoryID != "" || d.PrivacyStatus != ""):
			problems = append(problems, fmt.Sprintf("destinations[%d]: title, description, tags, categoryId and privacyStatus apply only to youtube destinations", i))
		}
		sr.Destinations = append(sr.Destinations, upload.DestinationRequest{
			Type: t,
			YouTube: upload.YouTubeMetadata{
				Title: d.Title, Description: d.Description, Tags: d.Tags,
				CategoryID: d.CategoryID, PrivacyStatus: d.PrivacyStatus,
			},
		})
	}
	if len(problems) > 0 {
		return sr, upload.Errorf(upload.EINVALID, "%s", strings.Join(problems, "; "))
	}
	return sr, nil
}

// Bounds of GET …/uploads?limit=.
const (
	defaultListLimit = 20
	maxListLimit     = 100
)

// listStatuses are the upload statuses a list can be filtered by. expired
// (an abandoned upload) is in the contract's additions (design.md) and
// arrives in the domain with the issue that asks for it; filtering by it
// finds nothing until then.
var listStatuses = []upload.Status{
	upload.StatusUploading, upload.StatusProcessing, upload.StatusComplete,
	upload.StatusFailed, upload.StatusCancelled, "expired",
}

// listRequest is a checked GET …/uploads.
type listRequest struct {
	atomID   string
	limit    int
	after    string
	statuses []upload.Status
	view     recordView
}

func parseList(c echo.Context) (listRequest, error) {
	var r listRequest
	var err error
	if r.atomID, err = atomParam(c); err != nil {
		return r, err
	}
	r.limit = defaultListLimit
	if q := c.QueryParam("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxListLimit {
			return r, upload.Errorf(upload.EINVALID, "limit must be a whole number from 1 to %d", maxListLimit)
		}
		r.limit = n
	}
	if q := c.QueryParam("cursor"); q != "" {
		if r.after, err = decodeCursor(q); err != nil {
			return r, err
		}
	}
	if r.statuses, err = statusParam(c.QueryParams()["status"]); err != nil {
		return r, err
	}
	if r.view, err = viewParam(c); err != nil {
		return r, err
	}
	return r, nil
}

// statusParam reads status=a,b and status=a&status=b alike.
func statusParam(values []string) ([]upload.Status, error) {
	var out []upload.Status
	for _, v := range values {
		for _, name := range strings.Split(v, ",") {
			st := upload.Status(strings.TrimSpace(name))
			if !slices.Contains(listStatuses, st) {
				names := make([]string, len(listStatuses))
				for i, s := range listStatuses {
					names[i] = string(s)
				}
				return nil, upload.Errorf(upload.EINVALID, "status %q is not one of %s (comma-separated, or status= repeated)",
					clip(string(st)), strings.Join(names, ", "))
			}
			if !slices.Contains(out, st) {
				out = append(out, st)
			}
		}
	}
	return out, nil
}

// A cursor is the last upload id of a page, base64url-encoded: opaque to
// clients, and it can only say where to go on within the atom of the path.
const maxCursorLen = 64

func encodeCursor(uploadID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(uploadID))
}

func decodeCursor(s string) (string, error) {
	if len(s) <= maxCursorLen {
		if b, err := base64.RawURLEncoding.DecodeString(s); err == nil && upload.ValidUploadID(string(b)) {
			return string(b), nil
		}
	}
	return "", upload.Errorf(upload.EINVALID, "cursor is not one this API gave; start again without it")
}

// list answers a page of the atom's uploads, each record written as the
// store reads it. Nothing is written before the store has read its first
// page, so a failure to read the table is still a clean status; a failure
// after that cuts the answer short (accessLog).
func (s *Server) list(c echo.Context) error {
	r, err := parseList(c)
	if err != nil {
		return err
	}
	// The request timeout bounds each wait for the table, not the whole
	// answer, whose delivery the server's write timeout bounds.
	ctx, pause, resume, stop := s.stallContext(c)
	defer stop()
	var rw *recordWriter
	next, err := s.uploads.List(ctx, r.atomID, r.after, r.statuses, r.limit, func(u *upload.Upload) error {
		pause()
		defer resume()
		if rw == nil {
			rw = startJSON(c, http.StatusOK)
			rw.raw(`{"uploads":[`)
		} else {
			rw.raw(",")
		}
		return rw.record(u, r.view, nil)
	})
	if err != nil {
		return stalled(ctx, err)
	}
	if rw == nil {
		rw = startJSON(c, http.StatusOK)
		rw.raw(`{"uploads":[`)
	}
	rw.raw("]")
	if next != "" {
		rw.raw(`,"nextCursor":`)
		if err := rw.json(encodeCursor(next)); err != nil {
			return err
		}
	}
	rw.raw("}")
	return rw.flush()
}

func (s *Server) get(c echo.Context) error {
	atomID, id, err := ids(c)
	if err != nil {
		return err
	}
	v, err := viewParam(c)
	if err != nil {
		return err
	}
	u, err := s.uploads.Get(c.Request().Context(), atomID, id)
	if err != nil {
		return err
	}
	return writeRecord(c, http.StatusOK, u, v, nil)
}

func (s *Server) refresh(c echo.Context) error {
	atomID, id, err := ids(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	u, err := s.uploads.Get(ctx, atomID, id)
	if err != nil {
		return err
	}
	switch {
	case u.Status == upload.StatusExpired:
		return upload.Errorf(upload.ECONFLICT, "upload %s has expired (%s): it takes no more parts, so it gets no credentials; start a new upload", id, u.Error)
	case u.Status != upload.StatusUploading:
		return upload.Errorf(upload.ECONFLICT, "upload %s is %s: it takes no more parts, so it gets no credentials", id, u.Status)
	}
	creds, err := s.issuer.Issue(ctx, atomID, id)
	if err != nil {
		return err
	}
	s.log.Info("credentials refreshed", zap.String("atomId", atomID), zap.String("uploadId", id))
	return c.JSON(http.StatusOK, rest.CredentialsResponse{Credentials: credentialsView(creds)})
}

func (s *Server) cancel(c echo.Context) error {
	atomID, id, err := ids(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var session string
	u, err := s.uploads.Update(ctx, atomID, id, func(u *upload.Upload) error {
		if d := u.Destination(upload.YouTube); d != nil {
			session = d.Session
		}
		return u.Cancel(s.now())
	})
	if err != nil {
		return err
	}
	s.log.Info("upload cancelled", zap.String("atomId", atomID), zap.String("uploadId", id), zap.String("status", string(u.Status)))
	// The worker stops relaying once it sees the status; aborting the
	// session also stops a chunk in flight. Best effort: an abandoned
	// session expires on YouTube's side anyway.
	if session != "" && s.sessions != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.sessions.Cancel(actx, session); err != nil {
			s.log.Warn("abort YouTube session", zap.String("atomId", atomID), zap.String("uploadId", id),
				zap.String("destination", string(upload.YouTube)), zap.Error(err))
		}
	}
	return writeRecord(c, http.StatusOK, u, viewFull, nil)
}
