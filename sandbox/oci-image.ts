/**
 * Writes a small OCI image layout (one layer with one file) for the push
 * tests, so no image has to be downloaded.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function blob(layout: string, data: Buffer): { digest: string; size: number } {
    const hex = createHash("sha256").update(data).digest("hex");
    writeFileSync(join(layout, "blobs", "sha256", hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
}

/** Creates an OCI layout at `layout` whose `latest` tag holds `/probe.txt` = `content`. */
export function writeOciImage(layout: string, content: string): void {
    mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
    const src = mkdtempSync(join(tmpdir(), "cra-oci-"));
    try {
        writeFileSync(join(src, "probe.txt"), content);
        execFileSync("tar", ["--owner=0", "--group=0", "--mtime=@0", "-cf", join(src, "layer.tar"), "-C", src, "probe.txt"]);
        const layerData = readFileSync(join(src, "layer.tar"));
        const layer = blob(layout, layerData);
        const config = blob(
            layout,
            Buffer.from(
                JSON.stringify({
                    architecture: "amd64",
                    os: "linux",
                    config: {},
                    rootfs: { type: "layers", diff_ids: [layer.digest] },
                }),
            ),
        );
        const manifest = blob(
            layout,
            Buffer.from(
                JSON.stringify({
                    schemaVersion: 2,
                    mediaType: "application/vnd.oci.image.manifest.v1+json",
                    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
                    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
                }),
            ),
        );
        writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
        writeFileSync(
            join(layout, "index.json"),
            JSON.stringify({
                schemaVersion: 2,
                manifests: [
                    {
                        mediaType: "application/vnd.oci.image.manifest.v1+json",
                        ...manifest,
                        annotations: { "org.opencontainers.image.ref.name": "latest" },
                    },
                ],
            }),
        );
    } finally {
        rmSync(src, { recursive: true, force: true });
    }
}
