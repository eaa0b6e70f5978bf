// Package scripts holds berth's shell scripts: the demo (demo.sh), Docker
// start-up for CI and fresh machines (ensure-docker.sh). It contains no Go
// code and imports nothing.
package scripts
