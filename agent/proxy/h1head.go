package proxy

import (
	"bytes"
	"strconv"
)

// The fast loop parses heads itself, with no allocation, and serves only
// what it can forward exactly as the http.Server path would: anything it
// does not recognise goes to that path, which answers it or rejects it
// with the right error.

// span is a byte range of a head.
type span struct{ start, end int }

// fastRequest is a request head the fast loop serves.
type fastRequest struct {
	head       []byte // through the blank line
	head1      bool   // HEAD: the response has no body
	method     span
	path       span // escaped, from the first '/'
	query      span // after '?', empty if none; hasQuery says whether '?' was there
	hasQuery   bool
	host       span
	keep       []span // header lines forwarded as they are, each with its CRLF
	closeAfter bool   // Connection: close
}

func (r *fastRequest) reset(head []byte) {
	*r = fastRequest{head: head, keep: r.keep[:0]}
}

func (r *fastRequest) bytes(s span) []byte { return r.head[s.start:s.end] }

// parseRequestHead reports whether head is a request the fast loop serves:
// HTTP/1.1, GET or HEAD in origin form, no body, no upgrade, nothing
// hop-by-hop beyond Connection: keep-alive or close, and headers as strict
// as net/http requires.
func parseRequestHead(head []byte, r *fastRequest) bool {
	r.reset(head)
	line, rest, ok := cutLine(head, 0)
	if !ok {
		return false
	}
	sp1 := bytes.IndexByte(head[line.start:line.end], ' ')
	if sp1 <= 0 {
		return false
	}
	r.method = span{line.start, line.start + sp1}
	switch string(r.bytes(r.method)) {
	case "GET":
	case "HEAD":
		r.head1 = true
	default:
		return false
	}
	targetStart := r.method.end + 1
	sp2 := bytes.IndexByte(head[targetStart:line.end], ' ')
	if sp2 <= 0 || string(head[targetStart+sp2+1:line.end]) != "HTTP/1.1" {
		return false
	}
	if !r.parseTarget(targetStart, targetStart+sp2) {
		return false
	}
	hosts := 0
	for {
		var hl span
		hl, rest, ok = cutLine(head, rest)
		if !ok {
			return false
		}
		if hl.start == hl.end {
			break // the blank line
		}
		colon := bytes.IndexByte(head[hl.start:hl.end], ':')
		if colon <= 0 || !validFieldName(head[hl.start:hl.start+colon]) {
			return false // also obs-fold: a line starting with a space
		}
		name := head[hl.start : hl.start+colon]
		value := trimOWS(head, span{hl.start + colon + 1, hl.end})
		if !validFieldValue(r.bytes(value)) {
			return false
		}
		switch {
		case asciiEqualFold(name, "host"):
			hosts++
			r.host = value
			if !validHost(r.bytes(value)) {
				return false
			}
		case asciiEqualFold(name, "connection"):
			if !r.connectionTokens(r.bytes(value)) {
				return false
			}
		case asciiEqualFold(name, "content-length"):
			if string(r.bytes(value)) != "0" {
				return false
			}
		case asciiEqualFold(name, "keep-alive"), asciiEqualFold(name, "proxy-connection"), asciiEqualFold(name, "forwarded"),
			asciiEqualFold(name, "x-forwarded-for"), asciiEqualFold(name, "x-forwarded-host"), asciiEqualFold(name, "x-forwarded-proto"):
			// Hop-by-hop, or replaced: a client's own X-Forwarded-* is not
			// trusted, as with ReverseProxy's Rewrite.
		case asciiEqualFold(name, "transfer-encoding"), asciiEqualFold(name, "upgrade"), asciiEqualFold(name, "expect"),
			asciiEqualFold(name, "te"), asciiEqualFold(name, "trailer"),
			asciiEqualFold(name, "proxy-authorization"), asciiEqualFold(name, "proxy-authenticate"):
			return false
		default:
			r.keep = append(r.keep, span{hl.start, hl.end + 2})
		}
	}
	return hosts == 1 && rest == len(head)
}

// parseTarget takes an origin-form target whose path is already in the
// form net/http would forward (so the split on '/' is the same) and whose
// query ReverseProxy would leave alone.
func (r *fastRequest) parseTarget(start, end int) bool {
	if r.head[start] != '/' {
		return false
	}
	q := bytes.IndexByte(r.head[start:end], '?')
	pathEnd := end
	if q >= 0 {
		pathEnd = start + q
		r.hasQuery = true
		r.query = span{pathEnd + 1, end}
		if !validQuery(r.bytes(r.query)) {
			return false
		}
	}
	r.path = span{start, pathEnd}
	return validEscapedPath(r.bytes(r.path))
}

func (r *fastRequest) connectionTokens(v []byte) bool {
	for len(v) > 0 {
		tok := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		tok = bytes.TrimSpace(tok)
		switch {
		case len(tok) == 0, asciiEqualFold(tok, "keep-alive"):
		case asciiEqualFold(tok, "close"):
			r.closeAfter = true
		default:
			return false // names another header as hop-by-hop
		}
	}
	return true
}

// cutLine finds the CRLF-ended line at from; bare LFs are refused.
func cutLine(b []byte, from int) (span, int, bool) {
	i := bytes.IndexByte(b[from:], '\n')
	if i < 1 || b[from+i-1] != '\r' {
		return span{}, 0, false
	}
	return span{from, from + i - 1}, from + i + 1, true
}

func trimOWS(b []byte, s span) span {
	for s.start < s.end && (b[s.start] == ' ' || b[s.start] == '\t') {
		s.start++
	}
	for s.end > s.start && (b[s.end-1] == ' ' || b[s.end-1] == '\t') {
		s.end--
	}
	return s
}

// asciiEqualFold compares b with a lower-case ASCII name.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// tokenChars are RFC 9110's tchar.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validFieldName(b []byte) bool {
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// validFieldValue refuses control bytes but tab, as net/http does.
func validFieldValue(b []byte) bool {
	for _, c := range b {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHost keeps to the bytes net/http accepts in Host.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] && !bytes.ContainsRune([]byte("[]:;=,()@/"), rune(c)) {
			return false
		}
	}
	return true
}

// pathChars are the bytes net/url keeps unescaped in a path (with '%'
// escapes checked apart), so the escaped path is the target as sent.
var pathChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "-._~!$&'()*+,;=:@/" {
		t[c] = true
	}
	return t
}()

func validEscapedPath(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '%' {
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
			i += 2
			continue
		}
		if !pathChars[c] {
			return false
		}
	}
	return true
}

// validQuery is a query ReverseProxy forwards unchanged: no ';', valid
// escapes, printable ASCII.
func validQuery(b []byte) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '%':
			if i+2 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) {
				return false
			}
			i += 2
		case c == ';' || c == '#' || c <= ' ' || c >= 0x7f:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// fastResponse is an upstream response head.
type fastResponse struct {
	code          int
	reason        span
	keep          []span // header lines forwarded, each with its CRLF
	contentLength int64  // -1: none
	chunked       bool
	closeAfter    bool // the upstream will close, or is HTTP/1.0
	dropNamed     []span
}

// parseResponseHead parses a response head; an error says what is wrong.
func parseResponseHead(head []byte, r *fastResponse) error {
	*r = fastResponse{keep: r.keep[:0], dropNamed: r.dropNamed[:0], contentLength: -1}
	line, rest, ok := cutLine(head, 0)
	if !ok || line.end-line.start < 12 || head[line.start+8] != ' ' {
		return errBadResponse
	}
	switch string(head[line.start : line.start+8]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.closeAfter = true
	default:
		return errBadResponse
	}
	code, err := strconv.Atoi(string(head[line.start+9 : line.start+12]))
	if err != nil || code < 100 || code > 999 {
		return errBadResponse
	}
	r.code = code
	r.reason = span{line.start + 12, line.end}
	if r.reason.start < r.reason.end {
		if head[r.reason.start] != ' ' {
			return errBadResponse
		}
		r.reason.start++
	}
	var te []byte
	for {
		var hl span
		hl, rest, ok = cutLine(head, rest)
		if !ok {
			return errBadResponse
		}
		if hl.start == hl.end {
			break
		}
		colon := bytes.IndexByte(head[hl.start:hl.end], ':')
		if colon <= 0 || !validFieldName(head[hl.start:hl.start+colon]) {
			return errBadResponse
		}
		name := head[hl.start : hl.start+colon]
		vs := trimOWS(head, span{hl.start + colon + 1, hl.end})
		value := head[vs.start:vs.end]
		if !validFieldValue(value) {
			return errBadResponse
		}
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || value[0] == '+' || (r.contentLength >= 0 && r.contentLength != n) {
				return errBadResponse
			}
			if r.contentLength < 0 {
				r.keep = append(r.keep, span{hl.start, hl.end + 2})
			}
			r.contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			if te != nil {
				return errBadResponse
			}
			te = value
			r.keep = append(r.keep, span{hl.start, hl.end + 2})
		case asciiEqualFold(name, "connection"):
			for _, tok := range bytes.Split(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				switch {
				case asciiEqualFold(tok, "close"):
					r.closeAfter = true
				case len(tok) > 0 && !asciiEqualFold(tok, "keep-alive"):
					r.dropNamed = append(r.dropNamed, tokenSpan(head, vs, tok))
				}
			}
		case asciiEqualFold(name, "keep-alive"), asciiEqualFold(name, "proxy-connection"), asciiEqualFold(name, "upgrade"),
			asciiEqualFold(name, "proxy-authenticate"), asciiEqualFold(name, "proxy-authorization"), asciiEqualFold(name, "te"):
		default:
			r.keep = append(r.keep, span{hl.start, hl.end + 2})
		}
	}
	if rest != len(head) {
		return errBadResponse
	}
	if te != nil {
		// Chunked is passed on as it is, framing and all; nothing else is
		// understood. A length beside it is a smuggling attempt.
		if !asciiEqualFold(te, "chunked") || r.contentLength >= 0 {
			return errBadResponse
		}
		r.chunked = true
	}
	if len(r.dropNamed) > 0 {
		r.keep = dropNamedHeaders(head, r.keep, r.dropNamed)
	}
	return nil
}

// tokenSpan locates tok, a subslice of head[vs], in head.
func tokenSpan(head []byte, vs span, tok []byte) span {
	off := bytes.Index(head[vs.start:vs.end], tok)
	return span{vs.start + off, vs.start + off + len(tok)}
}

// dropNamedHeaders removes the header lines a Connection header names.
func dropNamedHeaders(head []byte, keep, named []span) []span {
	out := keep[:0]
	for _, l := range keep {
		colon := bytes.IndexByte(head[l.start:l.end], ':')
		name := head[l.start : l.start+colon]
		drop := false
		for _, n := range named {
			if bytes.EqualFold(name, head[n.start:n.end]) {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, l)
		}
	}
	return out
}
