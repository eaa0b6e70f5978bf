package proxy

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// The fast loop takes only heads it forwards exactly as the http.Server
// path would; every other head goes to that path.
func TestParseRequestHeadTakesOnlyWhatItForwardsExactly(t *testing.T) {
	const base = "Host: proxy:7080\r\nUser-Agent: t\r\n\r\n"
	tests := []struct {
		name string
		head string
		fast bool
	}{
		{"plain GET", "GET /c/x HTTP/1.1\r\n" + base, true},
		{"HEAD", "HEAD /c/x HTTP/1.1\r\n" + base, true},
		{"query and escapes", "GET /c/a%2Fb?x=1&y=%20 HTTP/1.1\r\n" + base, true},
		{"keep-alive and close", "GET /c/ HTTP/1.1\r\nConnection: keep-alive, close\r\n" + base, true},
		{"zero length", "GET /c/ HTTP/1.1\r\nContent-Length: 0\r\n" + base, true},
		{"POST", "POST /c/x HTTP/1.1\r\nContent-Length: 2\r\n" + base, false},
		{"GET with a body", "GET /c/x HTTP/1.1\r\nContent-Length: 5\r\n" + base, false},
		{"chunked", "GET /c/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n" + base, false},
		{"upgrade", "GET /c/ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" + base, false},
		{"connection names a header", "GET /c/ HTTP/1.1\r\nConnection: X-Secret\r\n" + base, false},
		{"expect", "GET /c/ HTTP/1.1\r\nExpect: 100-continue\r\n" + base, false},
		{"HTTP/1.0", "GET /c/x HTTP/1.0\r\n" + base, false},
		{"absolute form", "GET http://x/c/x HTTP/1.1\r\n" + base, false},
		{"no host", "GET /c/x HTTP/1.1\r\nUser-Agent: t\r\n\r\n", false},
		{"two hosts", "GET /c/x HTTP/1.1\r\nHost: a\r\n" + base, false},
		{"bad escape", "GET /c/%zz HTTP/1.1\r\n" + base, false},
		{"raw UTF-8 path", "GET /c/\xc3\xa4 HTTP/1.1\r\n" + base, false},
		{"semicolon query", "GET /c/?a=1;b=2 HTTP/1.1\r\n" + base, false},
		{"fragment", "GET /c/#x HTTP/1.1\r\n" + base, false},
		{"obs-fold", "GET /c/ HTTP/1.1\r\nX-A: 1\r\n  2\r\n" + base, false},
		{"space before colon", "GET /c/ HTTP/1.1\r\nX-A : 1\r\n" + base, false},
		{"control byte in value", "GET /c/ HTTP/1.1\r\nX-A: 1\x00\r\n" + base, false},
		{"bare LF", "GET /c/ HTTP/1.1\nHost: x\n\n", false},
		{"lower-case method", "get /c/ HTTP/1.1\r\n" + base, false},
	}
	var r fastRequest
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRequestHead([]byte(tt.head), &r); got != tt.fast {
				t.Fatalf("fast = %v, want %v for %q", got, tt.fast, tt.head)
			}
		})
	}
}

func TestParseResponseHead(t *testing.T) {
	var r fastResponse
	head := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\n\r\n"
	if err := parseResponseHead([]byte(head), &r); err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, s := range r.keep {
		kept = append(kept, head[s.start:s.end])
	}
	if got := strings.Join(kept, ""); got != "Content-Length: 5\r\nX-End: 2\r\n" {
		t.Fatalf("kept %q: hop-by-hop headers, and those Connection names, must go", got)
	}
	if r.code != 200 || r.contentLength != 5 || !r.closeAfter || r.chunked {
		t.Fatalf("parsed %+v", r)
	}
	for _, bad := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", // smuggling
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/2 200 OK\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
	} {
		if err := parseResponseHead([]byte(bad), &r); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

const chunkedBody = "5;ext=1\r\nhello\r\n0000B \r\n world, 11!\r\n0\r\nX-Trailer: t\r\n\r\n"

// Chunked bodies are passed on unchanged; the framing must find their
// end however the bytes arrive.
func TestChunkedFramingFindsTheEndAcrossAnySplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	stream := []byte(chunkedBody + "NEXT")
	for round := range 200 {
		var f chunkedFraming
		consumed, done := 0, false
		for i := 0; i < len(stream) && !done; {
			j := min(len(stream), i+1+rng.IntN(8))
			if round == 0 {
				j = i + 1 // byte by byte
			}
			k, d, err := f.feed(stream[i:j])
			if err != nil {
				t.Fatalf("round %d: %v at %d", round, err, i)
			}
			consumed += k
			done = d
			if !done && k != j-i {
				t.Fatalf("round %d: took %d of %d bytes before the end", round, k, j-i)
			}
			i = j
		}
		if !done || consumed != len(chunkedBody) {
			t.Fatalf("round %d: done %v after %d bytes, want the end at %d", round, done, consumed, len(chunkedBody))
		}
	}
}

func TestChunkedFramingRefusesMalformedBodies(t *testing.T) {
	for _, bad := range []string{
		"x\r\n",                     // not hex
		"5\r\nhelloX\r\n",           // no CRLF after the data
		"5\nhello\r\n",              // bare LF
		"1234567890abcdef1\r\n",     // size overflows
		"5 x\r\nhello\r\n0\r\n\r\n", // junk after the size is an extension only after ';'
		"0\r\nX: y\nZ\r\n\r\n",      // bare LF in a trailer
		"5;" + strings.Repeat("e", maxChunkLine) + "\r\n",
	} {
		var f chunkedFraming
		_, _, err := f.feed([]byte(bad))
		if !errors.Is(err, errBadChunk) {
			t.Errorf("%q: err %v, want errBadChunk", bad, err)
		}
	}
	var f chunkedFraming
	if _, done, err := f.feed([]byte(chunkedBody[:len(chunkedBody)-1])); done || err != nil {
		t.Fatalf("a body short of its last byte: done %v, err %v", done, err)
	}
	if k, done, err := f.feed(bytes.Repeat([]byte("\n"), 3)); !done || err != nil || k != 1 {
		t.Fatalf("last byte: took %d, done %v, err %v", k, done, err)
	}
}
