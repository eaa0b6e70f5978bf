package proxy

import "errors"

// chunkedFraming follows a chunked body as it passes through unchanged, to
// find where it ends: the upstream connection is reused only when the
// body ended exactly where the challenge said it would.
type chunkedFraming struct {
	state     chunkState
	size      int64 // of the chunk whose size line is being read
	digits    int
	remaining int64 // data bytes left in the current chunk
	lineLen   int
}

type chunkState uint8

const (
	chunkSize    chunkState = iota // hex digits of a size line
	chunkSizeWS                    // spaces after the size
	chunkSizeExt                   // an extension, up to CR
	chunkSizeLF
	chunkData
	chunkDataCR
	chunkDataLF
	chunkTrailerStart // a trailer line, or the final CR
	chunkTrailerLine
	chunkTrailerLF
	chunkEndLF
	chunkDone
)

// maxChunkLine bounds a size line with its extensions and a trailer line.
const maxChunkLine = 4096

var errBadChunk = errors.New("malformed chunked response body")

// feed consumes b and says how many of its bytes belong to the body and
// whether the body ended with them.
func (f *chunkedFraming) feed(b []byte) (int, bool, error) {
	i := 0
	for i < len(b) {
		c := b[i]
		switch f.state {
		case chunkSize:
			if v, ok := hexValue(c); ok {
				if f.digits >= 15 {
					return i, false, errBadChunk
				}
				f.size, f.digits = f.size<<4|int64(v), f.digits+1
				f.lineLen++
				break
			}
			if f.digits == 0 || (c != ' ' && c != '\t' && c != ';' && c != '\r') {
				return i, false, errBadChunk
			}
			f.state = chunkSizeWS
			continue
		case chunkSizeWS:
			f.lineLen++
			if f.lineLen > maxChunkLine {
				return i, false, errBadChunk
			}
			switch c {
			case ' ', '\t':
			case ';':
				f.state = chunkSizeExt
			case '\r':
				f.state = chunkSizeLF
			default:
				return i, false, errBadChunk
			}
		case chunkSizeExt:
			f.lineLen++
			if f.lineLen > maxChunkLine || c == '\n' {
				return i, false, errBadChunk
			}
			if c == '\r' {
				f.state = chunkSizeLF
			}
		case chunkSizeLF:
			if c != '\n' {
				return i, false, errBadChunk
			}
			f.lineLen = 0
			if f.size == 0 {
				f.state = chunkTrailerStart
			} else {
				f.state, f.remaining = chunkData, f.size
			}
			f.size, f.digits = 0, 0
		case chunkData:
			n := min(int64(len(b)-i), f.remaining)
			f.remaining -= n
			i += int(n)
			if f.remaining == 0 {
				f.state = chunkDataCR
			}
			continue
		case chunkDataCR:
			if c != '\r' {
				return i, false, errBadChunk
			}
			f.state = chunkDataLF
		case chunkDataLF:
			if c != '\n' {
				return i, false, errBadChunk
			}
			f.state = chunkSize
		case chunkTrailerStart:
			if c == '\r' {
				f.state = chunkEndLF
			} else {
				f.state, f.lineLen = chunkTrailerLine, 0
				continue
			}
		case chunkTrailerLine:
			f.lineLen++
			if f.lineLen > maxChunkLine || c == '\n' {
				return i, false, errBadChunk
			}
			if c == '\r' {
				f.state = chunkTrailerLF
			}
		case chunkTrailerLF:
			if c != '\n' {
				return i, false, errBadChunk
			}
			f.state = chunkTrailerStart
		case chunkEndLF:
			if c != '\n' {
				return i, false, errBadChunk
			}
			f.state = chunkDone
			return i + 1, true, nil
		case chunkDone:
			return i, true, nil
		}
		i++
	}
	return i, f.state == chunkDone, nil
}

func hexValue(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
