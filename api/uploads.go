package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"atomuploads/api/rest"
	"atomuploads/credentials"
	"atomuploads/upload"
)

// view renders an upload record as the contract has it, without
// credentials.
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
		switch d.Type {
		case upload.YouTube:
			n := d.UploadedBytes
			dv.Details = rest.Details{VideoID: d.VideoID, URL: d.URL(), UploadedBytes: &n, ProcessingStatus: d.ProcessingStatus}
		case upload.S3Bucket:
			dv.Details = rest.Details{JobID: d.JobID, Outputs: d.Outputs, Playback: d.Playback}
			for _, f := range d.Files {
				dv.Details.Renditions = append(dv.Details.Renditions,
					rest.Rendition{Key: f.Key, Kind: f.Kind, Width: f.Width, Height: f.Height, Bitrate: f.Bitrate})
			}
		}
		v.Destinations = append(v.Destinations, dv)
	}
	parts := u.Parts()
	v.Parts = make([]rest.Part, len(parts))
	for i, p := range parts {
		v.Parts[i] = rest.Part{Start: p.Start, End: p.End, Key: u.PartKey(i), Complete: u.Completed[i]}
	}
	return v
}

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
		return "", upload.Errorf(upload.EINVALID, "atomId %q must be 1-100 letters, digits, '-' or '_'", id)
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
		return "", "", upload.Errorf(upload.EINVALID, "uploadId %q is not an upload id (26 characters, 0-9 and A-Z)", id)
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
	v := view(u)
	v.Credentials = credentialsView(creds)
	c.Response().Header().Set(echo.HeaderLocation, c.Request().URL.Path+"/"+id)
	return c.JSON(http.StatusCreated, v)
}

// startRequest checks what the domain cannot know: which destinations this
// service has enabled, and fields that belong to another destination type.
func (s *Server) startRequest(req rest.StartRequest) (upload.StartRequest, error) {
	sr := upload.StartRequest{Filename: req.Filename, Size: req.Size, ContentType: req.ContentType}
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
	defaultListLimit = 50
	maxListLimit     = 100
)

func (s *Server) list(c echo.Context) error {
	atomID, err := atomParam(c)
	if err != nil {
		return err
	}
	limit := defaultListLimit
	if q := c.QueryParam("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxListLimit {
			return upload.Errorf(upload.EINVALID, "limit must be a whole number from 1 to %d", maxListLimit)
		}
		limit = n
	}
	uploads, err := s.uploads.List(c.Request().Context(), atomID, limit)
	if err != nil {
		return err
	}
	list := rest.UploadList{Uploads: make([]rest.Upload, 0, len(uploads))}
	for _, u := range uploads {
		list.Uploads = append(list.Uploads, view(u))
	}
	return c.JSON(http.StatusOK, list)
}

func (s *Server) get(c echo.Context) error {
	atomID, id, err := ids(c)
	if err != nil {
		return err
	}
	u, err := s.uploads.Get(c.Request().Context(), atomID, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, view(u))
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
	if u.Status != upload.StatusUploading {
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
	return c.JSON(http.StatusOK, view(u))
}
