package atomapi

import "testing"

// The expected value was computed independently:
//
//	printf 'Tue, 15 Nov 1994 08:12:31 GMT\n/api2/atoms/abc/assets' |
//	  openssl dgst -sha256 -hmac 'shared-secret' -binary | base64
func TestSignKnownAnswer(t *testing.T) {
	got := sign("shared-secret", "Tue, 15 Nov 1994 08:12:31 GMT", "/api2/atoms/abc/assets")
	const want = "HMAC bVkIKbcMq2mG+Aze+QzB7Hk39w+1hExj+AXUK+QsOnA="
	if got != want {
		t.Errorf("sign = %q, want %q", got, want)
	}
}
