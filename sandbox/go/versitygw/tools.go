//go:build tools

// Package tools pins versitygw, the S3-compatible server (POSIX backend, internal IAM) the sandbox
// runs as the shared Pulumi state backend.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
