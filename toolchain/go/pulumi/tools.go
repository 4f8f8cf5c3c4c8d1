//go:build tools

// Package tools pins the Pulumi CLI's main package so that `go mod tidy`
// records every module it needs. Nothing here is compiled into the project.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
