package upload_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"atomuploads/upload"
)

func TestErrorf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		code      string
		format    string
		args      []any
		wantMsg   string
		wantError string
	}{
		{name: "no args", code: upload.EINVALID, format: "size is required", wantMsg: "size is required", wantError: "invalid: size is required"},
		{name: "formatted", code: upload.ECONFLICT, format: "upload %s is %s", args: []any{"01ABC", "complete"}, wantMsg: "upload 01ABC is complete", wantError: "conflict: upload 01ABC is complete"},
		{name: "percent verb kept literal through %s", code: upload.EINTERNAL, format: "%s", args: []any{"100%"}, wantMsg: "100%", wantError: "internal: 100%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := upload.Errorf(tt.code, tt.format, tt.args...)
			if err.Code != tt.code {
				t.Errorf("Errorf().Code = %q, want %q", err.Code, tt.code)
			}
			if err.Message != tt.wantMsg {
				t.Errorf("Errorf().Message = %q, want %q", err.Message, tt.wantMsg)
			}
			if got := err.Error(); got != tt.wantError {
				t.Errorf("Errorf().Error() = %q, want %q", got, tt.wantError)
			}
		})
	}
}

func TestErrorCodeAndMessage(t *testing.T) {
	t.Parallel()
	domain := upload.Errorf(upload.ENOTFOUND, "no upload 01ABC for atom a1")
	infra := errors.New("operation error DynamoDB: GetItem, https response error StatusCode: 500, secret-ish detail")
	tests := []struct {
		name     string
		err      error
		wantCode string
		wantMsg  string
	}{
		{name: "nil", err: nil, wantCode: "", wantMsg: ""},
		{name: "domain error", err: domain, wantCode: upload.ENOTFOUND, wantMsg: "no upload 01ABC for atom a1"},
		{name: "wrapped domain error", err: fmt.Errorf("get record: %w", domain), wantCode: upload.ENOTFOUND, wantMsg: "no upload 01ABC for atom a1"},
		{name: "twice wrapped domain error", err: fmt.Errorf("api: %w", fmt.Errorf("store: %w", domain)), wantCode: upload.ENOTFOUND, wantMsg: "no upload 01ABC for atom a1"},
		{name: "joined with a non-domain error first", err: errors.Join(infra, domain), wantCode: upload.ENOTFOUND, wantMsg: "no upload 01ABC for atom a1"},
		{name: "first domain error in the chain wins", err: fmt.Errorf("%w: %w", upload.Errorf(upload.ECONFLICT, "changed"), domain), wantCode: upload.ECONFLICT, wantMsg: "changed"},
		{name: "non-domain error", err: infra, wantCode: upload.EINTERNAL, wantMsg: "internal error"},
		{name: "wrapped non-domain error", err: fmt.Errorf("put item: %w", infra), wantCode: upload.EINTERNAL, wantMsg: "internal error"},
		{name: "domain error as a value wrapped by a plain error", err: fmt.Errorf("plain %v", domain), wantCode: upload.EINTERNAL, wantMsg: "internal error"}, //nolint:errorlint // the point: a domain error flattened to text is no longer one
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := upload.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode(%v) = %q, want %q", tt.err, got, tt.wantCode)
			}
			got := upload.ErrorMessage(tt.err)
			if got != tt.wantMsg {
				t.Errorf("ErrorMessage(%v) = %q, want %q", tt.err, got, tt.wantMsg)
			}
			if strings.Contains(got, "DynamoDB") || strings.Contains(got, "StatusCode") {
				t.Errorf("ErrorMessage(%v) = %q, which leaks infrastructure text", tt.err, got)
			}
		})
	}
}
