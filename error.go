package tollgate

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors returned by adapters. Callers branch on them with errors.Is;
// adapters wrap them with context (fmt.Errorf("redeem ticket: %w", ErrNotFound)).
var (
	// ErrNotFound: the thing does not exist, has expired or was already used.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule was broken (e.g. a username taken).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a backing store cannot be reached; callers fail closed.
	ErrUnavailable = errors.New("store unavailable")
	// ErrReused: a spent single-use secret (refresh token) was presented again.
	ErrReused = errors.New("reused")
)

// Code is one of the snake_case error codes of docs/api.md. Codes are API:
// clients branch on them, so a code's text never changes.
type Code string

// The contract's codes (docs/api.md, "Errors", "JSON protocol", close codes).
const (
	CodeInvalidRequest     Code = "invalid_request"
	CodeInvalidCredentials Code = "invalid_credentials"
	CodeUnauthenticated    Code = "unauthenticated"
	CodeTokenExpired       Code = "token_expired"
	CodeInvalidTicket      Code = "invalid_ticket"
	CodeOriginNotAllowed   Code = "origin_not_allowed"
	CodeForbidden          Code = "forbidden"
	CodeBlocked            Code = "blocked"
	CodeRateLimited        Code = "rate_limited"
	CodeUnavailable        Code = "unavailable"
	CodeUsernameTaken      Code = "username_taken"
	CodeNotFound           Code = "not_found"
	CodeMethodNotAllowed   Code = "method_not_allowed"
	CodeTooLarge           Code = "too_large"
	CodeNotJoined          Code = "not_joined"
	CodeTooLong            Code = "too_long"
	CodeSessionRevoked     Code = "session_revoked"
	CodeUserDisabled       Code = "user_disabled"
	CodeAuthTimeout        Code = "auth_timeout"
	CodeSlowConsumer       Code = "slow_consumer"
	CodeMessageTooBig      Code = "message_too_big"
	CodeShuttingDown       Code = "shutting_down"
	CodeNormal             Code = "normal"
	CodeInternal           Code = "internal"
)

// WebSocket close codes used by tollgate (RFC 6455, section 7.4.1).
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001
	ClosePolicy        = 1008
	CloseMessageTooBig = 1009
	CloseInternalError = 1011
)

// codeInfo is how a code meets HTTP and WebSocket.
// status 0: never an HTTP answer. close 0: on a socket it is an error frame and
// the socket stays open.
type codeInfo struct {
	status  int
	close   int
	message string // the default, client-safe message
}

// codes is the one place a Code meets HTTP and WebSocket. A table test checks
// that every Code constant is here.
var codes = map[Code]codeInfo{
	CodeInvalidRequest:     {400, 0, "The request is invalid."},
	CodeInvalidCredentials: {401, 0, "Invalid username or password."},
	CodeUnauthenticated:    {401, ClosePolicy, "Authentication is required."},
	CodeTokenExpired:       {401, ClosePolicy, "The token has expired."},
	CodeInvalidTicket:      {401, ClosePolicy, "The ticket is invalid, expired or already used."},
	CodeOriginNotAllowed:   {403, ClosePolicy, "The request's Origin is not allowed."},
	CodeForbidden:          {403, 0, "Not allowed."},
	CodeBlocked:            {403, ClosePolicy, "Temporarily blocked."},
	CodeRateLimited:        {429, 0, "Too many requests."},
	CodeUnavailable:        {503, CloseInternalError, "Service temporarily unavailable."},
	CodeUsernameTaken:      {409, 0, "That username is taken."},
	CodeNotFound:           {404, 0, "Not found."},
	CodeMethodNotAllowed:   {405, 0, "Method not allowed."},
	CodeTooLarge:           {413, 0, "The request body is too large."},
	CodeNotJoined:          {0, 0, "Join the room first."},
	CodeTooLong:            {0, 0, "The text is too long."},
	CodeSessionRevoked:     {401, ClosePolicy, "The session was revoked."},
	CodeUserDisabled:       {403, ClosePolicy, "The user is disabled."},
	CodeAuthTimeout:        {0, ClosePolicy, "Authentication did not arrive in time."},
	CodeSlowConsumer:       {0, ClosePolicy, "The connection could not keep up."},
	CodeMessageTooBig:      {0, CloseMessageTooBig, "The frame is too large."},
	CodeShuttingDown:       {503, CloseGoingAway, "The server is shutting down."},
	CodeNormal:             {0, CloseNormal, "Bye."},
	CodeInternal:           {500, CloseInternalError, "Internal error."},
}

// HTTPStatus is the HTTP status for c; 500 for a code that is never an HTTP answer.
func (c Code) HTTPStatus() int {
	if i, ok := codes[c]; ok && i.status != 0 {
		return i.status
	}
	return 500
}

// CloseCode is the WebSocket close code for c, or 0 when c is answered with
// an error frame and the socket stays open.
func (c Code) CloseCode() int { return codes[c].close }

// Message is the default client-safe text for c.
func (c Code) Message() string {
	if i, ok := codes[c]; ok {
		return i.message
	}
	return codes[CodeInternal].message
}

// Known reports whether c is in the code table.
func (c Code) Known() bool { _, ok := codes[c]; return ok }

// Error is a failure a client may see. Message is safe to show; Err goes to
// the log only and must not hold a secret either.
type Error struct {
	Code       Code
	Message    string        // empty: Code.Message()
	RetryAfter time.Duration // rate_limited, blocked
	Err        error         // the cause, for logs
}

// Errorf returns an *Error with code c and a client-safe message.
func Errorf(c Code, format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// NewError returns an *Error with code c and its default message.
func NewError(c Code) *Error { return &Error{Code: c} }

// WrapError returns an *Error with code c whose log-only cause is err.
func WrapError(c Code, err error) *Error { return &Error{Code: c, Err: err} }

func (e *Error) Error() string {
	if e.Err != nil {
		return string(e.Code) + ": " + e.Err.Error()
	}
	return string(e.Code) + ": " + e.ClientMessage()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ClientMessage is the text shown to the client.
func (e *Error) ClientMessage() string {
	if e.Message != "" {
		return e.Message
	}
	return e.Code.Message()
}

// ErrorCode returns the code of err: the Code of an *Error in its chain,
// unavailable for ErrUnavailable, otherwise internal. Foreign errors never
// reach a client as anything but internal.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, ErrUnavailable) {
		return CodeUnavailable
	}
	return CodeInternal
}

// AsError returns err as an *Error, mapping foreign errors as ErrorCode does
// and keeping the foreign error as the log-only cause.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: ErrorCode(err), Err: err}
}
