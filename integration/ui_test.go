package integration_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"berth/integration/testenv"
)

// uiToken is the admin token of the status page tests.
const uiToken = "ui-s3cret-token"

// startBrowser runs headless Chromium until the test ends.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := requireTool(t, "chromium", "chromium", "chromium-browser", "google-chrome")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // as root, Chromium refuses to start its sandbox
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// The browser lives as long as the context of its first call, so that
	// one has no timeout; each step below has its own.
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// browserStep bounds one step in the browser.
const browserStep = 30 * time.Second

// run runs browser steps, failing the test with what the page shows.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		pageFailure(t, ctx, what, err)
	}
}

// eval evaluates a JS expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		pageFailure(t, ctx, expr, err)
	}
	return v
}

// pageFailure fails the test with the page's text.
func pageFailure(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(sctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	t.Fatalf("%s: %v\npage text:\n%s", what, err, text)
}

// waitJS waits until the page's expression is true.
func waitJS(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(sctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		pageFailure(t, ctx, "waiting for "+what, err)
	}
}

// card is a JS expression for the page's card of challenge name.
func card(name string) string { return `document.querySelector('.card[data-name="` + name + `"]')` }

// cardText is a JS expression for the text of one field of name's card.
func cardText(name, class string) string {
	return `(` + card(name) + `?.querySelector('.` + class + `')?.textContent ?? '')`
}

// confirmDialog accepts the page's confirmation, after checking it asks.
func confirmDialog(t *testing.T, ctx context.Context, mustMention string) {
	t.Helper()
	waitJS(t, ctx, "the confirmation", `document.getElementById('confirm').open`, 5*time.Second)
	q := eval[string](t, ctx, `document.getElementById('confirm-text').textContent`)
	if !strings.Contains(q, mustMention) {
		t.Fatalf("confirmation %q does not mention %q", q, mustMention)
	}
	run(t, ctx, "confirming", chromedp.Click(chromedp.CSS("#confirm-ok")))
}

// TestUIInBrowser drives the status page in headless Chromium against a
// running berth: log in, see each challenge's state, see a killed container
// come back as a restart without reloading, swap and roll back from the
// page, filter, and fit a phone's width. Screenshots go to the test's temp
// dir (and to BERTH_UI_SCREENSHOT_DIR when set).
func TestUIInBrowser(t *testing.T) {
	testenv.RequireDocker(t)
	requireTool(t, "chromium", "chromium", "chromium-browser", "google-chrome")
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	reg.PushChallenge(t, "berth-it/echo", "1.1.0", nil)
	reg.PushChallenge(t, "berth-it/sick", "1.0.0", map[string]string{"HEALTH_FAIL": "1"})
	sick := `  - name: pwn-heap
    image: ` + reg.Host + `/berth-it/sick
    version: "1.0.0"
    pull_policy: always
    port: 8080
    health: {path: /health, interval: 500ms, timeout: 1s, start_period: 1s, start_interval: 100ms, failure_threshold: 1}
    restart: {on_unhealthy: false, stop_timeout: 2s}
    resources: {cpus: 0.5, memory: 64m, pids: 64}
`
	cfg := berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", "")+
		challengeYAML("web-login", reg.Host+"/berth-it/echo", "1.0.0", "")+sick)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(uiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = rewriteConfig(t, cfg, `api: {listen: "127.0.0.1:0"}`, `api: {listen: "127.0.0.1:0", token_file: `+tokenFile+`}`)
	ra := startAgent(t, cfg)
	// Started after berth, the browser closes first and ends the page's stream.
	ctx := startBrowser(t)
	shots := t.TempDir()

	// A wrong token is refused; the right one opens the page.
	run(t, ctx, "opening /ui/", chromedp.Navigate(ra.api+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	run(t, ctx, "logging in with a wrong token", chromedp.SendKeys(chromedp.CSS("#token"), "wrong"), chromedp.Click(chromedp.CSS(`#login-form button`)))
	waitJS(t, ctx, "the wrong token refused", `document.getElementById('login-error').textContent.includes('Wrong token')`, 10*time.Second)
	run(t, ctx, "logging in", chromedp.SendKeys(chromedp.CSS("#token"), uiToken), chromedp.Click(chromedp.CSS(`#login-form button`)))
	waitJS(t, ctx, "the page live", `document.getElementById('main').offsetParent !== null && document.getElementById('login').offsetParent === null && document.getElementById('conn').dataset.state === 'live'`, 10*time.Second)
	// The cookie is out of the page's reach; the token appears nowhere in it.
	cookies := eval[string](t, ctx, `document.cookie`)
	html := eval[string](t, ctx, `document.documentElement.outerHTML`)
	if cookies != "" || strings.Contains(html, uiToken) {
		t.Fatalf("the page can read the session (%q) or shows the token", cookies)
	}

	// Each challenge renders with its real state.
	for _, name := range []string{"echo", "web-login"} {
		waitJS(t, ctx, name+" running and healthy", card(name)+`?.dataset.state === 'running' && `+card(name)+`?.dataset.health === 'healthy'`, 90*time.Second)
	}
	waitJS(t, ctx, "pwn-heap unhealthy", card("pwn-heap")+`?.dataset.health === 'unhealthy'`, 60*time.Second)
	waitJS(t, ctx, "echo's version, upstream and a sparkline",
		cardText("echo", "version")+` === '1.0.0' && `+cardText("echo", "upstream")+`.startsWith('127.0.0.1:') && `+
			card("echo")+`.querySelectorAll('.spark polyline').length === 1`, 20*time.Second)
	// Trouble first: the unhealthy challenge leads.
	first := eval[string](t, ctx, `document.querySelector('.card').dataset.name`)
	if first != "pwn-heap" {
		t.Errorf("first card %q, want the unhealthy pwn-heap", first)
	}

	// A container killed behind berth's back shows as a restart, live.
	eval[int](t, ctx, `window.berthTestMark = 1`)
	ids := strings.Fields(testenv.Docker(t, "ps", "-q", "--filter", "label=io.berth.agent="+id, "--filter", "label=io.berth.challenge=echo"))
	if len(ids) != 1 {
		t.Fatalf("echo containers: %q", ids)
	}
	testenv.DockerKill(t, ids[0])
	waitJS(t, ctx, "echo's restart on the page", cardText("echo", "restarts")+` === '1' && `+cardText("echo", "exit")+` === '137' && `+
		card("echo")+`.dataset.health === 'healthy'`, 60*time.Second)
	waitJS(t, ctx, "the exited event listed", `[...document.querySelectorAll('#events li')].some(li => li.textContent.includes('exited') && li.textContent.includes('echo'))`, 10*time.Second)
	if eval[int](t, ctx, `window.berthTestMark || 0`) != 1 {
		t.Fatal("the page reloaded to show the restart")
	}

	// A state change without the CSRF token is refused, even from the page.
	code := eval[int](t, ctx, `fetch('/v1/challenges/echo/restart', {method: 'POST'}).then(r => r.status)`, chromedp.EvalAwaitPromise)
	if code != 403 {
		t.Errorf("restart without the CSRF token: %d, want 403", code)
	}

	// Swap from the page, with its confirmation.
	run(t, ctx, "asking for a swap", chromedp.SendKeys(chromedp.CSS(`.card[data-name="echo"] .swap-version`), "1.1.0"),
		chromedp.Click(chromedp.CSS(`.card[data-name="echo"] .swap-btn`)))
	confirmDialog(t, ctx, "1.1.0")
	waitJS(t, ctx, "the swap to 1.1.0 on the page", cardText("echo", "version")+` === '1.1.0' && `+cardText("echo", "swap")+`.includes('completed')`, 90*time.Second)
	takeScreenshot(t, ctx, shots, "berth-ui.png", chromedp.FullScreenshot(100))

	// Roll back from the page.
	run(t, ctx, "asking for a rollback", chromedp.Click(chromedp.CSS(`.card[data-name="echo"] .rollback`)))
	confirmDialog(t, ctx, "1.0.0")
	waitJS(t, ctx, "the rollback on the page", cardText("echo", "version")+` === '1.0.0' && `+cardText("echo", "swap")+`.includes('completed')`, 90*time.Second)

	// The filter narrows the cards to matching ones.
	run(t, ctx, "filtering", chromedp.SendKeys(chromedp.CSS("#filter"), "pwn"))
	waitJS(t, ctx, "only pwn-heap shown", `[...document.querySelectorAll('.card')].filter(c => c.offsetParent !== null).map(c => c.dataset.name).join() === 'pwn-heap'`, 5*time.Second)
	eval[bool](t, ctx, `(f => { f.value = ''; return f.dispatchEvent(new Event('input')); })(document.getElementById('filter'))`)
	waitJS(t, ctx, "every card shown again", `[...document.querySelectorAll('.card')].filter(c => c.offsetParent !== null).length === 3`, 5*time.Second)

	// At a phone's width nothing overflows sideways.
	run(t, ctx, "phone width", chromedp.EmulateViewport(390, 844))
	waitJS(t, ctx, "no horizontal overflow at 390px", `document.documentElement.scrollWidth <= window.innerWidth`, 5*time.Second)
	takeScreenshot(t, ctx, shots, "berth-ui-phone.png", chromedp.CaptureScreenshot())
}

// takeScreenshot saves a PNG shot under dir, and a copy under
// BERTH_UI_SCREENSHOT_DIR when set.
func takeScreenshot(t *testing.T, ctx context.Context, dir, name string, shot chromedp.Action[[]byte]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	png, err := chromedp.Run(sctx, shot)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	for _, d := range []string{dir, os.Getenv("BERTH_UI_SCREENSHOT_DIR")} {
		if d == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %s", filepath.Join(dir, name))
}
