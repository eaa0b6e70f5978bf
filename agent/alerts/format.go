package alerts

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"berth/agent/challenge"
	"berth/configs"
)

// Chat bodies. Discord refuses content beyond 2000 characters; Slack
// truncates text beyond 40000 and advises staying under 4000.
const (
	discordContentLimit = 2000
	slackTextLimit      = 4000
)

// slackBody is a Slack incoming-webhook message. Mrkdwn off keeps
// challenge text from rendering as markup; control sequences (<!channel>,
// <@U…>) are still parsed, which is why the text escapes &, < and >.
type slackBody struct {
	Text   string `json:"text"`
	Mrkdwn bool   `json:"mrkdwn"`
}

// discordBody is a Discord webhook message. An empty parse list means no
// mention in content pings anyone, whatever the escaping missed.
type discordBody struct {
	Content         string          `json:"content"`
	AllowedMentions allowedMentions `json:"allowed_mentions"`
}

type allowedMentions struct {
	Parse []string `json:"parse"`
}

// encode renders p as the configured webhook expects it.
func encode(format string, p alertPayload) ([]byte, error) {
	switch format {
	case configs.AlertFormatSlack:
		return json.Marshal(slackBody{Text: truncate(alertText(p, slackEscape), slackTextLimit)})
	case configs.AlertFormatDiscord:
		return json.Marshal(discordBody{Content: truncate(alertText(p, discordEscape), discordContentLimit),
			AllowedMentions: allowedMentions{Parse: []string{}}})
	default:
		return json.Marshal(p)
	}
}

// alertText is the one-line chat message. Everything after the agent id
// and the type may come from the challenge (its name is validated, the
// message and error may quote container output), so it is made single-line
// and printable, then escaped for the chat's markup.
func alertText(p alertPayload, escape func(string) string) string {
	clean := func(s string) string { return escape(challenge.Printable(s, false)) }
	var b strings.Builder
	// The type is berth's own word; an underscore inside a word opens no
	// markup in either chat.
	fmt.Fprintf(&b, "[berth %s] %s", clean(p.Agent), p.Type)
	if p.Challenge != "" {
		fmt.Fprintf(&b, " challenge %s", clean(p.Challenge))
	}
	if p.Message != "" {
		fmt.Fprintf(&b, ": %s", clean(p.Message))
	}
	if p.Error != "" {
		fmt.Fprintf(&b, " (error: %s)", clean(p.Error))
	}
	if p.Suppressed > 0 {
		fmt.Fprintf(&b, " [%d more held back]", p.Suppressed)
	}
	return b.String()
}

// slackEscape is Slack's own escaping: with &, < and > escaped, no <!here>,
// <@U…> or <url|label> sequence survives; bare @here is plain text unless
// link_names is set, and the zero-width space keeps it so regardless.
// mrkdwn has no escape character: a zero-width space before each of its
// marks keeps it from opening bold, italics, strike or code, should a
// client render the text as mrkdwn anyway.
func slackEscape(s string) string {
	return breakMentions(slackReplacer.Replace(s))
}

var slackReplacer = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;",
	"*", "\u200b*", "_", "\u200b_", "~", "\u200b~", "`", "\u200b`")

// discordMarkup are the characters Discord's markdown gives meaning to
// inside a line (the text is one line that berth starts, so # and - never
// open it); a backslash before any of them shows it as typed, and the
// escaped colon stops :emoji: and bare links.
const discordMarkup = "\\*_~`|<>[]():"

// discordEscape backslash-escapes markdown and breaks @mentions with a
// zero-width space, so <@id>, <@&role>, @everyone and @here show as text.
func discordEscape(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		if strings.ContainsRune(discordMarkup, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return breakMentions(b.String())
}

// breakMentions puts a zero-width space after every @.
func breakMentions(s string) string { return strings.ReplaceAll(s, "@", "@\u200b") }

// truncate cuts s to at most limit characters, marking the cut.
func truncate(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	r := []rune(s)[:limit-1]
	// A cut escape would escape the ellipsis; harmless, but drop it.
	if r[len(r)-1] == '\\' {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
