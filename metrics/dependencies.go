package metrics

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// Dependency records one call to a dependency: its operation (an AWS
// operation name, or an HTTP method), and whether it answered well.
func (m *Metrics) Dependency(dep, operation string, ok bool) {
	if m == nil {
		return
	}
	outcome := "ok"
	if !ok {
		outcome = "error"
	}
	m.dependencyRequests.WithLabelValues(dependencies.of(dep), operationLabel(operation), outcome).Inc()
	m.health.Observe(dep, ok)
	if dep == DepSQS && operation == "ReceiveMessage" {
		m.health.Observe(DepSQSReceive, ok)
	}
}

// operationPattern is an AWS operation's name or an HTTP method: nothing
// that could hold an id.
var operationPattern = regexp.MustCompile(`^[A-Za-z]{1,48}$`)

func operationLabel(op string) string {
	if operationPattern.MatchString(op) {
		return op
	}
	return Other
}

// AWSMiddleware is an option of the AWS SDK's clients (append it to
// aws.Config.APIOptions) that records every operation's outcome as a
// Dependency call of its service: dynamodb, s3, sqs, sts, mediaconvert.
// An operation answered well is one that succeeded or that the service
// refused for the request's own sake (a failed condition, a missing key):
// the service was there and took the credentials. Throttling, server
// errors, refused credentials and unreachable endpoints are failures.
func AWSMiddleware(m *Metrics) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		if m == nil {
			return nil
		}
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("atomuploadsMetrics",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				m.Dependency(awsDependency(awsmiddleware.GetServiceID(ctx)), awsmiddleware.GetOperationName(ctx), answeredWell(ctx, err))
				return out, md, err
			}), middleware.After)
	}
}

// awsDependency names the dependency of an AWS service id.
func awsDependency(serviceID string) string {
	switch strings.ToLower(strings.ReplaceAll(serviceID, " ", "")) {
	case "dynamodb":
		return DepDynamoDB
	case "s3":
		return DepS3
	case "sqs":
		return DepSQS
	case "sts":
		return DepSTS
	case "mediaconvert":
		return DepMediaConvert
	}
	return Other
}

// Error codes that say the service refused the caller, not the request.
var credentialCodes = set("AccessDenied", "AccessDeniedException", "ExpiredToken", "ExpiredTokenException",
	"InvalidAccessKeyId", "InvalidClientTokenId", "InvalidToken", "SignatureDoesNotMatch",
	"UnrecognizedClientException", "MissingAuthenticationToken", "IncompleteSignature")

// answeredWell reports whether an AWS call reached a working service that
// took the caller's credentials.
func answeredWell(ctx context.Context, err error) bool {
	if err == nil {
		return true
	}
	if ctx.Err() != nil {
		return true // the caller gave up (shutdown, a deadline of its own): nothing known of the service
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorFault() == smithy.FaultServer || credentialCodes[ae.ErrorCode()] {
		return false
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() >= 500 || re.HTTPStatusCode() == http.StatusTooManyRequests) {
		return false
	}
	code := ae.ErrorCode()
	return !strings.Contains(code, "Throttl") && !strings.Contains(code, "LimitExceeded") && code != "SlowDown" && code != "RequestLimitExceeded"
}

// Transport wraps base (http.DefaultTransport when nil) so that every
// request it makes is recorded as a Dependency call of the dependency
// that name gives the request (DepYouTube, DepYouTubeToken, DepAtomAPI).
// A response below 400 (or 308, YouTube's Resume Incomplete) is a call
// answered well.
func Transport(m *Metrics, name func(*http.Request) string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if m == nil {
		return base
	}
	return &transport{m: m, name: name, base: base}
}

type transport struct {
	m    *Metrics
	name func(*http.Request) string
	base http.RoundTripper
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(r)
	if err != nil && r.Context().Err() != nil {
		return res, err // the caller gave up: nothing known of the dependency
	}
	t.m.Dependency(t.name(r), r.Method, err == nil && res.StatusCode < 400)
	return res, err
}
