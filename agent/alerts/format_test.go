package alerts

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"berth/agent/challenge"
	"berth/configs"
)

// hostile is challenge-controlled text that a chat client would render as
// pings, links or markup, spread over lines and coloured.
const hostile = "@everyone @here <!channel> <!here> <@U123> <@&456> <#C9> *bold* _it_ `code` ~~s~~ ||spoiler|| [x](http://evil) \x1b[31mred\x1b[0m\nsecond line"

func startFormat(t *testing.T, format string) *alertHarness {
	t.Helper()
	h := newAlertHarness(t, newAlertReceiver(t, nil))
	h.format = format
	h.build(time.Minute, nil)
	h.serve()
	return h
}

func TestAlertsSlackShape(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startFormat(t, configs.AlertFormatSlack)
	defer h.close()

	h.feed.append(challenge.Event{Type: challenge.EventGaveUp, Challenge: "web", Message: "gave up: " + hostile, Error: "exit 1 " + hostile})
	var body struct {
		Text   *string `json:"text"`
		Mrkdwn *bool   `json:"mrkdwn"`
	}
	raw := h.rc.nextRaw(t)
	if err := json.Unmarshal(raw, &body); err != nil || body.Text == nil {
		t.Fatalf("slack body %s: no text (%v)", raw, err)
	}
	text := *body.Text
	if body.Mrkdwn == nil || *body.Mrkdwn {
		t.Errorf("slack body %s: want mrkdwn false", raw)
	}
	for _, want := range []string{"agent-alerts", "gave_up", "web", "gave up:", "exit 1", "second line"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text %q does not name %q", text, want)
		}
	}
	for _, bad := range []string{"\n", "\x1b", "<!channel>", "<!here>", "<@U123>", "<@&456>", "<#C9>", "<http", "@everyone", "@here", " *bold*", " _it_", " `code`", " ~~s"} {
		if strings.Contains(text, bad) {
			t.Errorf("slack text %q contains %q", text, bad)
		}
	}
	if n := utf8.RuneCountInString(text); n > slackTextLimit {
		t.Errorf("slack text is %d characters, over %d", n, slackTextLimit)
	}
}

func TestAlertsDiscordShape(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startFormat(t, configs.AlertFormatDiscord)
	defer h.close()

	h.feed.append(challenge.Event{Type: challenge.EventOOMKilled, Challenge: "web", Message: "killed " + hostile, Error: "oom"})
	long := strings.Repeat("é<@1>", 2000) // far over 2000 characters once escaped
	h.feed.append(challenge.Event{Type: challenge.EventGaveUp, Challenge: "web", Message: long})

	type discord struct {
		Content         *string `json:"content"`
		AllowedMentions *struct {
			Parse []string `json:"parse"`
		} `json:"allowed_mentions"`
	}
	decode := func() string {
		t.Helper()
		raw := h.rc.nextRaw(t)
		var body discord
		if err := json.Unmarshal(raw, &body); err != nil || body.Content == nil {
			t.Fatalf("discord body %.200s: no content (%v)", raw, err)
		}
		if body.AllowedMentions == nil || body.AllowedMentions.Parse == nil || len(body.AllowedMentions.Parse) != 0 {
			t.Errorf("discord body %.200s: want allowed_mentions.parse []", raw)
		}
		if n := utf8.RuneCountInString(*body.Content); n > discordContentLimit || n == 0 {
			t.Errorf("discord content is %d characters, want 1..%d", n, discordContentLimit)
		}
		return *body.Content
	}
	content := decode()
	for _, want := range []string{"agent-alerts", "oom", "web", "killed", "second line"} {
		if !strings.Contains(content, want) {
			t.Errorf("discord content %q does not name %q", content, want)
		}
	}
	for _, bad := range []string{"\n", "\x1b", "@everyone", "@here", "<@U123>", "<@&456>", "<#C9>", " *bold*", " _it_", " `code`", "||spoiler||", "[x](http"} {
		if strings.Contains(content, bad) {
			t.Errorf("discord content %q contains %q", content, bad)
		}
	}
	if content = decode(); !strings.HasSuffix(content, "…") {
		t.Errorf("long discord content not marked as cut: ...%q", content[max(len(content)-20, 0):])
	}
}

// json stays berth's own payload, whether named or left empty.
func TestAlertsJSONFormatIsThePayload(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	h := startFormat(t, configs.AlertFormatJSON)
	defer h.close()

	ev := h.append(challenge.EventSwapFailed, "web")
	raw := h.rc.nextRaw(t)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"agent", "type", "challenge", "message", "error", "seq", "time", "suppressed", "event"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("json body %s lacks %q", raw, k)
		}
	}
	if len(fields) != 9 {
		t.Errorf("json body has %d fields, want 9: %s", len(fields), raw)
	}
	var p alertPayload
	_ = json.Unmarshal(raw, &p)
	wantAlert(t, p, challenge.EventSwapFailed, "web", 0)
	if p.Seq != ev.Seq || p.Message != ev.Message {
		t.Errorf("payload %+v, want event %+v", p, ev)
	}
}

func TestTruncateKeepsRunesWhole(t *testing.T) {
	for _, tt := range []struct {
		in    string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"ééééé", 5, "ééééé"},
		{"éééééé", 5, "éééé…"},
		{"abc\\*def", 5, "abc…"}, // no dangling escape before the cut
	} {
		if got := truncate(tt.in, tt.limit); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
		}
	}
}
