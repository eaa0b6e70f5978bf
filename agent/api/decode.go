package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"berth/configs"
)

// maxJSONBody bounds an admin API request body; a challenge spec is far smaller.
const maxJSONBody = 1 << 20

// maxEcho bounds how much of a client's own input an error message repeats.
const maxEcho = 80

// decodeJSONBody decodes the request body, which must be one JSON object of at
// most limit bytes, into dst. Unknown fields, repeated keys and data after the
// object are refused. Errors are 413 too_large or 400 bad_request naming the
// field or byte offset; they never carry Go type names, paths or stacks.
func decodeJSONBody(r *http.Request, dst any, limit int64) *APIError {
	if r.Body == nil || r.Body == http.NoBody {
		return badRequest("request body is empty; expected a JSON object")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge(min(limit, tooBig.Limit))
		}
		return badRequest("could not read the request body")
	}
	if int64(len(body)) > limit {
		return tooLarge(limit)
	}
	start := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(start) == 0:
		return badRequest("request body is empty; expected a JSON object")
	case start[0] != '{':
		return badRequest("request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if rest := bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return badRequest(fmt.Sprintf("unexpected data after the JSON object at byte %d", dec.InputOffset()))
	}
	if key, at := repeatedKey(body); key != "" {
		return badRequest(fmt.Sprintf("key %s is set twice (byte %d)", quote(clip(key)), at))
	}
	return nil
}

func badRequest(msg string) *APIError { return apiErr(http.StatusBadRequest, "bad_request", msg) }

func tooLarge(limit int64) *APIError {
	return apiErr(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body is larger than %d bytes", limit))
}

// jsonError turns a decoding error into a message about the client's JSON.
func jsonError(err error) *APIError {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var invalid *json.InvalidUnmarshalError
	switch {
	case errors.As(err, &syntax):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d: %s", syntax.Offset, clip(strings.TrimPrefix(syntax.Error(), "json: "))))
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return badRequest(fmt.Sprintf("%s: expected %s, got %s (byte %d)", clip(field), jsonKind(typ.Type), clip(typ.Value), typ.Offset))
	case errors.As(err, &invalid):
		return apiErr(http.StatusInternalServerError, "internal", "internal error; see berth's log")
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest("malformed JSON: the body ends before the object does")
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if strings.HasPrefix(msg, "unknown field ") {
		return badRequest(clip(msg))
	}
	// A value's own UnmarshalJSON (such as a size) explains what it wanted.
	return badRequest("invalid value: " + clip(msg))
}

// jsonKind names the JSON a Go type expects, never the Go type itself.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a value"
}

// repeatedKey returns a key that appears twice in one object of a valid JSON
// document, and its offset. encoding/json keeps the last one silently, so a
// proxy that keeps the first would read another request than berth.
func repeatedKey(body []byte) (string, int64) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // the next string token is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", 0
		}
		var top *frame
		if len(stack) > 0 {
			top = &stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, frame{object: true, keys: map[string]bool{}, expect: true})
			case '[':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top == nil || !top.object {
			continue
		}
		if top.expect {
			key, _ := tok.(string)
			if top.keys[key] {
				return key, dec.InputOffset()
			}
			top.keys[key] = true
			top.expect = false
			continue
		}
		top.expect = true // a scalar value ends the pair
	}
}

// clip bounds an echo of client input so an error never repeats a huge body.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// validateChallengeName refuses a path or body name that can never name a
// challenge, before any lookup.
func validateChallengeName(name string) *APIError {
	if configs.ValidName(name) {
		return nil
	}
	if name == "" {
		return badRequest("challenge name is required")
	}
	return badRequest(fmt.Sprintf("challenge name %s is invalid: use 1-63 lowercase letters, digits and dashes, starting with a letter or digit", quote(clip(name))))
}

// validateVersion refuses a version that is neither an image tag nor a semver
// constraint, with the same rules as the config file.
func validateVersion(v string) *APIError {
	if err := configs.CheckVersion(v); err != nil {
		return badRequest("version: " + err.Error()) // CheckVersion bounds what it repeats
	}
	return nil
}
