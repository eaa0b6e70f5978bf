package docker

import (
	"context"
	"io"
	"strconv"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// LogOptions select container log output.
type LogOptions struct {
	Follow bool
	// Tail is how many lines from the end to return; 0 returns none (a follow
	// then shows only new output) and TailAll everything.
	Tail int
}

// TailAll asks Logs for the whole log.
const TailAll = -1

// Logs returns the container's stdout and stderr interleaved as plain text.
// The caller must Close the reader; with Follow it ends when ctx ends or the
// container stops.
func (c *Client) Logs(ctx context.Context, id string, opts LogOptions) (io.ReadCloser, error) {
	c.count("container_logs")
	tail := "all"
	if opts.Tail >= 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	raw, err := c.api.ContainerLogs(ctx, id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail,
	})
	if err != nil {
		return nil, classify("logs "+id, err)
	}
	return demux(raw), nil
}

// demux turns a multiplexed log stream into plain text.
func demux(raw io.ReadCloser) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		// Containers run without a TTY, so the stream is multiplexed.
		_, err := stdcopy.StdCopy(pw, pw, raw)
		raw.Close()
		pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, raw: raw}
}

type logReader struct {
	*io.PipeReader
	raw io.Closer
}

func (l *logReader) Close() error {
	l.raw.Close()
	return l.PipeReader.Close()
}
