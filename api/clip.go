package api

import (
	"strconv"
	"unicode/utf8"
)

// maxShown caps every string of a client's making that the API logs or
// repeats in a message (ids, methods, header values): a request can carry
// megabytes in one of them, a log line must not. A valid atom id (100
// characters at most) is never cut.
const maxShown = 128

// clip returns s, or its first maxShown bytes (whole UTF-8 characters) and
// how long it was.
func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
