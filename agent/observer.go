package agent

import (
	"time"

	"github.com/rs/zerolog"

	"berth/agent/challenge"
)

// observer turns what the lifecycle reports into log lines and metrics.
type observer struct {
	log     zerolog.Logger
	metrics *metrics
}

var _ challenge.Observer = observer{}

func (o observer) logger(name string) zerolog.Logger {
	if name == "" {
		return o.log
	}
	return o.log.With().Str(fieldChallenge, name).Logger()
}

func (o observer) Event(ev challenge.Event) { logEvent(o.logger(ev.Challenge), ev) }

func (o observer) Log(level challenge.Level, name, msg string, err error, fields ...challenge.Field) {
	lvl := map[challenge.Level]zerolog.Level{challenge.LevelDebug: zerolog.DebugLevel, challenge.LevelInfo: zerolog.InfoLevel,
		challenge.LevelWarn: zerolog.WarnLevel, challenge.LevelError: zerolog.ErrorLevel}[level]
	log := o.logger(name)
	e := log.WithLevel(lvl)
	if err != nil {
		e = e.Err(err)
	}
	for _, f := range fields {
		e = e.Interface(f.Key, f.Value)
	}
	e.Msg(msg)
}

func (o observer) Restarted(name, cause string) {
	o.metrics.restarts.WithLabelValues(name, cause).Inc()
}

func (o observer) Probed(name string, pass bool, took time.Duration) {
	o.metrics.probeDuration.WithLabelValues(name).Observe(took.Seconds())
	result := "pass"
	if !pass {
		result = "fail"
	}
	o.metrics.probes.WithLabelValues(name, result).Inc()
}

func (o observer) SwapEnded(name, result string, took time.Duration) {
	o.metrics.swaps.WithLabelValues(name, result).Inc()
	o.metrics.swapDuration.WithLabelValues(name).Observe(took.Seconds())
}

func (o observer) Pulled(name string, took time.Duration) {
	o.metrics.pullDuration.WithLabelValues(name).Observe(took.Seconds())
}
