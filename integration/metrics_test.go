package integration_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/integration/testenv"
)

func TestMetricsExposeSupervision(t *testing.T) {
	testenv.RequireDocker(t)
	reg := testenv.StartRegistry(t)
	id := testenv.AgentID(t)
	reg.PushChallenge(t, "berth-it/echo", "1.0.0", nil)
	ra := startAgent(t, berthConfig(t, id, challengeYAML("echo", reg.Host+"/berth-it/echo", "1.0.0", "")))
	v := waitServing(t, ra.api, "echo", 60*time.Second, nil)
	getBody(t, ra.proxy+"/echo/version")
	testenv.DockerKill(t, v.ContainerID)
	waitServing(t, ra.api, "echo", 30*time.Second, func(v challengeView) bool { return v.Restarts >= 1 })

	status, body := getBody(t, ra.api+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`berth_challenge_up{challenge="echo"} 1`,
		`berth_challenge_health{challenge="echo",status="healthy"} 1`,
		`berth_restarts_total{cause="exited",challenge="echo"} 1`,
		`berth_health_probe_duration_seconds_bucket{challenge="echo"`,
		`berth_health_probes_total{challenge="echo",result="pass"}`,
		`berth_image_pull_duration_seconds_count{challenge="echo"} 1`,
		`berth_docker_api_requests_total{op="container_inspect"}`,
		`berth_docker_api_requests_total{op="events"}`,
		`berth_docker_connected 1`,
		`berth_proxy_requests_total{challenge="echo",code="200"} 1`,
		"# HELP berth_checkpoint_duration_seconds",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
