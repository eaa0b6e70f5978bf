package api

import (
	"encoding/json"
	"net/http"
)

// APIError is the one error type of the admin API: handlers return it and
// the router renders it as {"error": Message, "code": Code} with Status. Any
// other error a handler returns is logged and answered 500 "internal".
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Message }

func apiErr(status int, code, msg string) *APIError {
	return &APIError{Status: status, Code: code, Message: msg}
}

// unknownChallenge answers a request naming a challenge nobody registered.
func unknownChallenge(name string) *APIError {
	return apiErr(http.StatusNotFound, "unknown_challenge", "no challenge named "+quote(name))
}

// ownerBusy answers a request its challenge's owner did not take in time;
// the request was withdrawn and will not run.
func ownerBusy(name string) *APIError {
	return apiErr(http.StatusServiceUnavailable, "busy", "challenge "+name+" is busy; nothing was done; try again")
}

// errorBody is the JSON error shape of the admin API; the stable endpoint
// answers its own errors in the same shape.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
