// Command probe is a tiny static HTTP health probe for images built FROM
// scratch, which have no shell or curl. The benchmark's autoheal-like baseline
// uses it as the image's HEALTHCHECK: probe URL exits 0 on a 2xx/3xx answer and
// 1 otherwise. Like `curl -f` it sets no timeout of its own, so Docker's
// HEALTHCHECK timeout (30s by default) decides when a hung check fails.
package main
