//go:build tools

// Package tools pins what the provider's main package imports. The build
// script copies that main package (it embeds generated JSON that upstream
// does not commit) next to this module and builds it here.
package tools

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)
