package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/aws/smithy-go"

	"atomuploads/upload"
	"atomuploads/youtube"
)

// TestCause: why an attempt failed, in the words a record may show: never
// an SDK's, a server's or a Go error's own text.
func TestCause(t *testing.T) {
	t.Parallel()
	api := func(service, code string) error {
		return fmt.Errorf("head part 0 of x: %w", &smithy.OperationError{ServiceID: service, OperationName: "Op",
			Err: &smithy.GenericAPIError{Code: code, Message: "the service's own words, request id 4F2A"}})
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "none", err: nil, want: ""},
		{name: "the lease lost", err: fmt.Errorf("put bytes 0-9: %w", upload.ErrLeaseLost), want: "another worker took the work over"},
		{
			name: "the lease lost, not renewed",
			err:  fmt.Errorf("%w: could not renew it for 20s: %w", upload.ErrLeaseLost, errors.New("dial tcp: i/o timeout")),
			want: "another worker took the work over",
		},
		{name: "a domain error", err: fmt.Errorf("ask: %w", upload.Errorf(upload.EUNAVAILABLE, "YouTube did not answer")), want: "YouTube did not answer"},
		{
			name: "the store's throttling",
			err:  errors.Join(upload.Errorf(upload.EUNAVAILABLE, "the progress table is busy; try again"), api("DynamoDB", "ProvisionedThroughputExceededException")),
			want: "the progress table is busy; try again",
		},
		{
			name: "an internal domain error keeps its words to the logs",
			err:  upload.Errorf(upload.EINTERNAL, "encode item: secret detail"),
			want: "a dependency could not be reached (see the service's logs)",
		},
		{name: "the YouTube session gone", err: fmt.Errorf("put bytes 0-9: %w", youtube.ErrSessionGone), want: "the YouTube upload session expired"},
		{
			name: "YouTube's reason",
			err:  fmt.Errorf("start session: %w", &youtube.Error{Status: 503, Reason: "backendError", Message: "YouTube answered 503 backendError: raw body", Temporary: true}),
			want: "YouTube answered backendError",
		},
		{
			name: "YouTube's status without a reason",
			err:  &youtube.Error{Status: 502, Message: "YouTube answered 502: <html>bad gateway</html>"},
			want: "YouTube answered 502",
		},
		{
			name: "YouTube not reached",
			err:  &youtube.Error{Message: "YouTube unreachable: dial tcp 142.250.0.1:443: connect: connection refused", Temporary: true},
			want: "YouTube could not be reached",
		},
		{name: "S3", err: api("S3", "AccessDenied"), want: "S3 refused: AccessDenied"},
		{name: "DynamoDB", err: api("DynamoDB", "AccessDeniedException"), want: "the progress table refused: AccessDeniedException"},
		{name: "SQS", err: api("SQS", "AWS.SimpleQueueService.NonExistentQueue"), want: "the queue refused: AWS.SimpleQueueService.NonExistentQueue"},
		{name: "another AWS service", err: api("MediaConvert", "TooManyRequestsException"), want: "MediaConvert refused: TooManyRequestsException"},
		{name: "an API error of no operation", err: &smithy.GenericAPIError{Code: "Throttling"}, want: "AWS refused: Throttling"},
		{name: "a context deadline", err: fmt.Errorf("ask YouTube: %w", context.DeadlineExceeded), want: "a dependency did not answer in time"},
		{
			name: "an SDK call that timed out",
			err:  &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: context.DeadlineExceeded},
			want: "a dependency did not answer in time",
		},
		{name: "a network timeout", err: fmt.Errorf("read part 1: %w", &net.DNSError{Err: "i/o timeout", Name: "s3", IsTimeout: true}), want: "a dependency did not answer in time"},
		{name: "a panic", err: errors.New("panic in step asset: runtime error: invalid memory address"), want: "an internal error (see the service's logs)"},
		{name: "anything else", err: errors.New("connection reset by peer"), want: "a dependency could not be reached (see the service's logs)"},
		{
			name: "a temporary error: its cause",
			err:  &temporaryError{fmt.Errorf("put bytes: %w", &youtube.Error{Status: 500, Reason: "backendError"})},
			want: "YouTube answered backendError",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := cause(tt.err); got != tt.want {
				t.Errorf("cause(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

// TestMarkOf: the progress that work of each kind moves forward.
func TestMarkOf(t *testing.T) {
	t.Parallel()
	u := &upload.Upload{Advances: 100, Destinations: []upload.Destination{
		{Type: upload.YouTube, Advances: 20},
		{Type: upload.S3Bucket, Advances: 3},
	}}
	want := map[Kind]int64{
		KindPart: 120, KindReassemble: 100,
		KindRelay: 20, KindYouTubePoll: 20, KindAsset: 0, // no asset added: the polls' advances are not its progress
		KindFull: 3, KindTranscodePoll: 3,
	}
	for _, k := range ownKinds {
		if got := markOf(u, k); got != want[k] {
			t.Errorf("markOf(%s) = %d, want %d", k, got, want[k])
		}
		if got := markOf(nil, k); got != 0 {
			t.Errorf("markOf(nil, %s) = %d, want 0", k, got)
		}
	}
	u.Destinations[0].AssetAdded = true
	if got := markOf(u, KindAsset); got != 1 {
		t.Errorf("markOf(asset) of an added asset = %d, want 1", got)
	}
	s3Only := &upload.Upload{Advances: 7, Destinations: []upload.Destination{{Type: upload.S3Bucket, Advances: 3}}}
	if got := markOf(s3Only, KindRelay); got != 0 {
		t.Errorf("markOf of a relay without a YouTube destination = %d, want 0", got)
	}
	if got := markOf(s3Only, KindPart); got != 7 {
		t.Errorf("markOf of a part without a YouTube destination = %d, want 7", got)
	}
}
