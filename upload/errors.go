package upload

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to exactly one HTTP status in package api and to a
// log level in package worker; nothing else interprets them.
const (
	EINVALID      = "invalid"      // the caller sent something that cannot be accepted
	ENOTFOUND     = "not_found"    // no such upload (or not for this atom)
	ECONFLICT     = "conflict"     // the record changed underneath, or the move is not allowed now
	EUNAUTHORIZED = "unauthorized" // missing or wrong credentials
	EUNAVAILABLE  = "unavailable"  // a dependency did not answer; try again
	EINTERNAL     = "internal"     // a bug or an unexpected dependency error
)

// Error is the domain error: a code for machines and a message for people.
// The message is safe to show to the API caller: it never carries secrets or
// wrapped infrastructure text.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic text for errors that are not domain errors (their text may hold
// infrastructure details that callers must not see).
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
