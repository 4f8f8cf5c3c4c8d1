//go:build tools

// Package tools pins nektos/act, the workflow engine forgejo-runner forked: the sandbox runs real
// workflow jobs with it, on the host executor (ringtail) and the docker executor (indri).
package tools

import _ "github.com/nektos/act"
