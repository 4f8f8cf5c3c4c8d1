// Writes the JSON that the Kubernetes provider's main package embeds
// (schema-embed.json, terraform-mapping-embed.json) from the files its module
// ships, as upstream's generate step does: the schema with its version set,
// both minified.
// Usage: node gen-embed.js VERSION SRC_DIR OUT_DIR
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const [version, src, out] = process.argv.slice(2);
if (!version || !src || !out) {
    console.error("usage: node gen-embed.js VERSION SRC_DIR OUT_DIR");
    process.exit(2);
}
const schema = JSON.parse(fs.readFileSync(path.join(src, "schema.json"), "utf8"));
schema.version = version;
fs.writeFileSync(path.join(out, "schema-embed.json"), JSON.stringify(schema));
const mapping = JSON.parse(fs.readFileSync(path.join(src, "terraform-mapping.json"), "utf8"));
fs.writeFileSync(path.join(out, "terraform-mapping-embed.json"), JSON.stringify(mapping));
