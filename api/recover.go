package api

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
)

// maxStackShown caps a logged stack.
const maxStackShown = 16 << 10

// panicError is a handler's panic, made an error: errorHandler answers 500
// with the request id and logs it once, with its stack.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.value) }

// recoverPanic turns a panic of what runs after it (the handler and the
// inner middleware) into a panicError, so that one bad request is a 500 and
// an access line, not a dropped connection and a stack without a request
// id in net/http's log. http.ErrAbortHandler, the deliberate cut of an
// answer, goes on up to net/http.
func recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if p := recover(); p != nil {
				if e, ok := p.(error); ok && errors.Is(e, http.ErrAbortHandler) {
					panic(p)
				}
				err = &panicError{value: p, stack: debug.Stack()}
			}
		}()
		return next(c)
	}
}

// stackField logs the stack of a panicError, capped; nothing for another
// error.
func stackField(err error) zap.Field {
	var pe *panicError
	if !errors.As(err, &pe) {
		return zap.Skip()
	}
	return zap.String("stack", clipTo(string(pe.stack), maxStackShown))
}
