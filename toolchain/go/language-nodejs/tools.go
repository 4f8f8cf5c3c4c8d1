//go:build tools

// Package tools pins the nodejs language host's main package. Since v3.69 the
// host is a module of its own that the Go module proxy does not serve, so it
// is taken from the last sdk/v3 release that still carried it (see
// toolchain/README.md).
package tools

import _ "github.com/pulumi/pulumi/sdk/v3/nodejs/cmd/pulumi-language-nodejs"
