// Package credentials issues the browser's temporary AWS credentials for one
// upload: STS AssumeRole on the upload role with an inline session policy
// that allows writing only that upload's parts. The effective permissions
// are the intersection of the role's policy and the session policy, so the
// credentials can put uploads/<atomId>/<uploadId>/parts/* and nothing else,
// and they expire after the configured duration. Credentials are returned
// to the caller and never stored or logged.
//
// IAM: the service's task role needs sts:AssumeRole on the upload role; the
// upload role trusts the task role and allows s3:PutObject,
// s3:AbortMultipartUpload and s3:ListMultipartUploadParts on
// arn:aws:s3:::<bucket>/uploads/*.
package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/aws-sdk-go-v2/service/sts/types"
	"github.com/aws/smithy-go"

	"atomuploads/upload"
)

// STSAPI is what the issuer needs of STS.
type STSAPI interface {
	AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, optFns ...func(*sts.Options)) (*sts.AssumeRoleOutput, error)
}

// Credentials are temporary AWS credentials for the browser, named as the
// media tool expects them.
type Credentials struct {
	AccessKeyID     string    `json:"temporaryAccessId"`
	SecretAccessKey string    `json:"temporarySecretKey"`
	SessionToken    string    `json:"sessionToken"`
	Expiry          time.Time `json:"-"`
}

// MarshalJSON renders the expiry as unix seconds, as the contract has it.
func (c Credentials) MarshalJSON() ([]byte, error) {
	type plain Credentials
	return json.Marshal(struct {
		plain
		Expiry int64 `json:"expiry"`
	}{plain(c), c.Expiry.Unix()})
}

// String never shows the secrets.
func (c Credentials) String() string {
	return fmt.Sprintf("credentials(expiry %s)", c.Expiry.UTC().Format(time.RFC3339))
}

// Issuer issues credentials.
type Issuer struct {
	sts      STSAPI
	roleARN  string
	bucket   string
	duration time.Duration
}

// NewIssuer returns an issuer for uploads into bucket, assuming roleARN for
// duration (15 minutes to 12 hours; the role's maximum session duration
// must allow it).
func NewIssuer(c STSAPI, roleARN, bucket string, duration time.Duration) *Issuer {
	return &Issuer{sts: c, roleARN: roleARN, bucket: bucket, duration: duration}
}

// Issue returns credentials that can write only the parts of one upload.
func (i *Issuer) Issue(ctx context.Context, atomID, uploadID string) (Credentials, error) {
	policy, err := Policy(i.bucket, atomID, uploadID)
	if err != nil {
		return Credentials{}, err
	}
	out, err := i.sts.AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn:         aws.String(i.roleARN),
		RoleSessionName: aws.String(sessionName(uploadID)),
		Policy:          aws.String(policy),
		DurationSeconds: aws.Int32(int32(i.duration / time.Second)),
	})
	if err != nil {
		return Credentials{}, fmt.Errorf("assume upload role for %s: %w", uploadID, stsError(err))
	}
	c := out.Credentials
	if c == nil {
		return Credentials{}, fmt.Errorf("assume upload role for %s: STS returned no credentials", uploadID)
	}
	return Credentials{
		AccessKeyID:     aws.ToString(c.AccessKeyId),
		SecretAccessKey: aws.ToString(c.SecretAccessKey),
		SessionToken:    aws.ToString(c.SessionToken),
		Expiry:          aws.ToTime(c.Expiration),
	}, nil
}

// sessionName identifies the upload in CloudTrail (at most 64 characters).
func sessionName(uploadID string) string { return "atom-uploads-" + uploadID }

// Actions the browser may take on its parts: a single PUT, or a multipart
// upload of a large part (create, upload part and complete are s3:PutObject).
var Actions = []string{"s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}

type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid      string   `json:"Sid"`
	Effect   string   `json:"Effect"`
	Action   []string `json:"Action"`
	Resource []string `json:"Resource"`
}

// Policy is the inline session policy for one upload.
func Policy(bucket, atomID, uploadID string) (string, error) {
	if !upload.ValidAtomID(atomID) || !upload.ValidUploadID(uploadID) {
		// The ids end up in an IAM resource: never let a wildcard in.
		return "", upload.Errorf(upload.EINVALID, "no credentials for atom %q upload %q", atomID, uploadID)
	}
	b, err := json.Marshal(policyDoc{
		Version: "2012-10-17",
		Statement: []statement{{
			Sid:      "PutOwnParts",
			Effect:   "Allow",
			Action:   Actions,
			Resource: []string{"arn:aws:s3:::" + bucket + "/" + upload.PartsPrefix(atomID, uploadID) + "*"},
		}},
	})
	return string(b), err
}

// stsError turns STS errors into domain errors where the caller can act on
// them; others are returned as they are (an internal error for the API).
func stsError(err error) error {
	var (
		expired *types.ExpiredTokenException
		region  *types.RegionDisabledException
		ae      smithy.APIError
	)
	switch {
	case errors.As(err, &expired), errors.As(err, &region):
		return errors.Join(upload.Errorf(upload.EUNAVAILABLE, "temporary credentials cannot be issued now; try again"), err)
	case errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer:
		return errors.Join(upload.Errorf(upload.EUNAVAILABLE, "STS is unavailable; try again"), err)
	}
	return err
}
