package alerts

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"berth/agent/challenge"
	"berth/supervisor"
)

// deliverAll posts queued alerts one at a time until ctx ends.
func (a *Alerter) deliverAll(ctx context.Context, queue <-chan alertPayload) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("alerts: delivery panicked: %v", v)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-queue:
			a.deliver(ctx, p)
		}
	}
}

// deliver tries one alert up to a.attempts times and logs one line if every
// attempt failed.
func (a *Alerter) deliver(ctx context.Context, p alertPayload) {
	body, err := encode(a.format, p)
	if err != nil {
		a.count(ResultFailed)
		a.log.Error().Err(err).Str(challenge.FieldEvent, p.Type).Uint64(challenge.FieldSeq, p.Seq).Msg("alert not delivered: cannot encode")
		return
	}
	backoff := a.retryBackoff
	attempt := 0
	for {
		attempt++
		retry, perr := a.post(ctx, body, p.Seq)
		if perr == nil {
			a.count(ResultDelivered)
			a.log.Debug().Str(challenge.FieldEvent, p.Type).Str(challenge.FieldChallenge, p.Challenge).Uint64(challenge.FieldSeq, p.Seq).
				Int(fieldAttempts, attempt).Int(fieldSuppressed, p.Suppressed).Msg("alert delivered")
			return
		}
		err = perr
		if !retry || attempt >= a.attempts || ctx.Err() != nil {
			break
		}
		if !supervisor.Sleep(ctx, a.clock, backoff) {
			break
		}
		backoff *= 2
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("berth is stopping: %w", err)
	}
	a.count(ResultFailed)
	a.log.Warn().Err(err).Str(challenge.FieldEvent, p.Type).Str(challenge.FieldChallenge, p.Challenge).Uint64(challenge.FieldSeq, p.Seq).
		Int(fieldAttempts, attempt).Msg("alert not delivered")
}

// post sends one attempt. retry reports whether another attempt may help:
// network errors (timeouts included) and 5xx answers.
func (a *Alerter) post(ctx context.Context, body []byte, seq uint64) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("alerts: cannot build the webhook request; check agent.alerts.webhook_url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", alertUserAgent)
	// Retries may repeat an alert the receiver did take; the seq lets it dedupe.
	req.Header.Set("X-Berth-Event-Seq", fmt.Sprint(seq))
	resp, err := a.client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token; keep the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("post to webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, alertBodyLimit))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500:
		return true, fmt.Errorf("webhook answered %s", resp.Status)
	default:
		return false, fmt.Errorf("webhook answered %s; not retried", resp.Status)
	}
}
