package main

import "testing"

func TestParseWrkReadsRateLatenciesAndErrors(t *testing.T) {
	out := `Running 10s test @ http://127.0.0.1:8080/version
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.05ms    1.54ms  40.12ms   94.33%
    Req/Sec     7.89k     1.02k    9.81k    70.00%
  Latency Distribution
     50%  797.00us
     75%    1.10ms
     90%    1.70ms
     99%    1.02s
  157000 requests in 10.01s, 20.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  15654.12
Transfer/sec:      2.00MB
`
	s, err := parseWrk(out)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkStat{RPS: 15654, P50MS: 0.797, P99MS: 1020, Errors: 7}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

func TestParseWrkNeedsTheLatencyDistribution(t *testing.T) {
	if _, err := parseWrk("Requests/sec:  100.00\n"); err == nil {
		t.Fatal("no error for output without --latency")
	}
}
