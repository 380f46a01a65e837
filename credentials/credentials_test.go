package credentials_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"atomuploads/credentials"
	"atomuploads/devstack/stacktest"
)

const (
	atomID   = "0e5b3f5c-atom"
	uploadID = "01JZ4Q7V9X8Y6W5T3S2R1P0N9M"
	otherID  = "01JZ4Q7V9X8Y6W5T3S2R1P0N9N"
)

func TestCredentialsWriteOnlyTheirOwnParts(t *testing.T) {
	st := stacktest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	issuer := credentials.NewIssuer(st.STS, "arn:aws:iam::000000000000:role/upload", st.Bucket, 15*time.Minute)
	c, err := issuer.Issue(ctx, atomID, uploadID)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.SessionToken == "" {
		t.Fatalf("incomplete credentials: %v", c)
	}
	if left := time.Until(c.Expiry); left < 14*time.Minute || left > 16*time.Minute {
		t.Errorf("credentials expire in %s, want about 15m", left)
	}
	browser := s3.NewFromConfig(st.AWS, func(o *s3.Options) {
		o.UsePathStyle = true
		o.Credentials = awscreds.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	})
	put := func(key string) error {
		_, err := browser.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(st.Bucket), Key: aws.String(key), Body: strings.NewReader("part bytes")})
		return err
	}
	if err := put("uploads/" + atomID + "/" + uploadID + "/parts/0"); err != nil {
		t.Fatalf("put own part: %v", err)
	}
	for _, key := range []string{
		"uploads/" + atomID + "/" + otherID + "/parts/0", // another upload
		"uploads/" + atomID + "/" + uploadID + "/full",   // the reassembled file
		"uploads/other-atom/" + uploadID + "/parts/0",    // another atom
		"uploads/" + atomID + "/" + uploadID + "/parts",  // the prefix itself
	} {
		if err := put(key); !accessDenied(err) {
			t.Errorf("put %s: error = %v, want AccessDenied", key, err)
		}
	}
	_, err = browser.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(st.Bucket), Key: aws.String("uploads/" + atomID + "/" + uploadID + "/parts/0")})
	if !accessDenied(err) {
		t.Errorf("get own part: error = %v, want AccessDenied (write only)", err)
	}
}

func accessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}

func TestPolicyNamesOnlyTheUploadsParts(t *testing.T) {
	p, err := credentials.Policy("bucket", atomID, uploadID)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Effect   string
			Action   []string
			Resource []string
		}
	}
	if err := json.Unmarshal([]byte(p), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Statement) != 1 || doc.Statement[0].Effect != "Allow" {
		t.Fatalf("policy = %s, want one Allow statement", p)
	}
	want := "arn:aws:s3:::bucket/uploads/" + atomID + "/" + uploadID + "/parts/*"
	if got := doc.Statement[0].Resource; len(got) != 1 || got[0] != want {
		t.Errorf("resources = %v, want [%s]", got, want)
	}
	for _, a := range doc.Statement[0].Action {
		if a == "s3:*" || a == "s3:GetObject" || a == "s3:DeleteObject" {
			t.Errorf("policy allows %s", a)
		}
	}
	for _, bad := range [][2]string{{"*", uploadID}, {atomID, "*"}, {"a/b", uploadID}, {atomID, "../x"}} {
		if _, err := credentials.Policy("bucket", bad[0], bad[1]); err == nil {
			t.Errorf("Policy(%q, %q) accepted ids that widen the resource", bad[0], bad[1])
		}
	}
}

func TestCredentialsJSONAndString(t *testing.T) {
	c := credentials.Credentials{AccessKeyID: "AKIA", SecretAccessKey: "s3cr3t", SessionToken: "tok", Expiry: time.Unix(1275617265, 0)}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"temporaryAccessId":"AKIA","temporarySecretKey":"s3cr3t","sessionToken":"tok","expiry":1275617265}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
	if s := c.String(); strings.Contains(s, "s3cr3t") || strings.Contains(s, "tok") {
		t.Errorf("String() = %q shows a secret", s)
	}
}
